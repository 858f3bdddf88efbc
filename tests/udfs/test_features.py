"""Customer features: computed before the event, decayed affinities, bounded history."""

from __future__ import annotations

import math

import pytest

from udfs.features import (
    FEATURE_NAMES,
    HALF_LIFE_MS,
    N_FEATURES,
    SHARE_FLOOR,
    CustomerProfile,
    Product,
    interaction_features,
)

RED_SHOES = Product(1, "shoes", "red", 80.0)
BLUE_TROUSERS = Product(2, "trousers", "blue", 60.0)
H = 3_600_000
NO_AFFINITY = math.log(SHARE_FLOOR)


def f(x: list[float], name: str) -> float:
    return x[FEATURE_NAMES.index(name)]


def test_vector_shape_and_cold_start():
    x = interaction_features(CustomerProfile(), RED_SHOES, "add_to_cart", 0)
    assert len(x) == N_FEATURES
    assert f(x, "kind_add_to_cart") == 1.0 and f(x, "kind_click") == 0.0
    assert f(x, "cold_start") == 1.0 and f(x, "product_known") == 1.0
    assert f(x, "log_interactions") == 0.0 and f(x, "log_category_share") == NO_AFFINITY


def test_unknown_product_gives_neutral_product_features():
    p = CustomerProfile()
    p.observe_interaction(RED_SHOES, "view", 0, 20)
    x = interaction_features(p, None, "view", H)
    assert f(x, "product_known") == 0.0 and f(x, "log_category_share") == NO_AFFINITY and f(x, "log_price") == 0.0


def test_affinity_aligns_customer_with_product():
    """Looking for red shoes: a red shoe scores a higher share than blue trousers."""
    p = CustomerProfile()
    for i in range(3):
        p.observe_interaction(RED_SHOES, "click", i * H, 20)
    red = interaction_features(p, RED_SHOES, "view", 4 * H)
    blue = interaction_features(p, BLUE_TROUSERS, "view", 4 * H)
    only = math.log(1.0 + SHARE_FLOOR)
    assert f(red, "log_category_share") == only and f(red, "log_color_share") == only
    assert f(red, "category_x_color") == 1.0
    assert f(blue, "log_category_share") == NO_AFFINITY and f(blue, "category_x_color") == 0.0
    assert f(red, "seen_product") > 0 and f(blue, "seen_product") == 0


def test_affinities_decay_with_event_time():
    p = CustomerProfile()
    p.observe_interaction(RED_SHOES, "view", 0, 20)
    p.observe_interaction(BLUE_TROUSERS, "view", HALF_LIFE_MS, 20)
    # the red shoe's weight halved before the trousers were added: shares 1/3 vs 2/3
    x = interaction_features(p, BLUE_TROUSERS, "view", HALF_LIFE_MS)
    assert f(x, "log_category_share") == pytest.approx(math.log(2 / 3 + SHARE_FLOOR))


def test_orders_feed_spend_features():
    p = CustomerProfile()
    p.observe_order(RED_SHOES, 1, 80.0, 0, 20)
    x = interaction_features(p, BLUE_TROUSERS, "view", H)
    assert f(x, "log_orders") > 0 and f(x, "order_rate") == 1.0
    assert f(x, "price_vs_usual_spend") == pytest.approx(math.log(61 / 81))
    assert f(x, "log_hours_since_last") == pytest.approx(math.log(2))


def test_history_is_bounded():
    p = CustomerProfile()
    for i in range(50):
        p.observe_interaction(RED_SHOES, "view", i, history_len=20)
    assert len(p.history) == 20 and p.history[0][0] == 30 and p.n_interactions == 50


def test_price_bands():
    assert [Product(0, "c", "c", x).price_band for x in (5, 19.99, 20, 45, 80, 10_000)] == [0, 0, 1, 2, 3, 7]
