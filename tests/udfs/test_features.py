"""Customer features: computed before the event, decayed affinities, bounded history."""

from __future__ import annotations

import pytest

from udfs.features import (
    FEATURE_NAMES,
    HALF_LIFE_MS,
    N_FEATURES,
    CustomerProfile,
    Product,
    interaction_features,
)

RED_SHOES = Product(1, "shoes", "red", 80.0)
BLUE_TROUSERS = Product(2, "trousers", "blue", 60.0)
H = 3_600_000


def f(x: list[float], name: str) -> float:
    return x[FEATURE_NAMES.index(name)]


def test_vector_shape_and_cold_start():
    x = interaction_features(CustomerProfile(), RED_SHOES, "add_to_cart", 0)
    assert len(x) == N_FEATURES
    assert f(x, "kind_add_to_cart") == 1.0 and f(x, "kind_click") == 0.0
    assert f(x, "cold_start") == 1.0 and f(x, "product_known") == 1.0
    assert f(x, "log_interactions") == 0.0 and f(x, "category_share") == 0.0


def test_unknown_product_gives_neutral_product_features():
    p = CustomerProfile()
    p.observe_interaction(RED_SHOES, "view", 0, 20)
    x = interaction_features(p, None, "view", H)
    assert f(x, "product_known") == 0.0 and f(x, "category_share") == 0.0 and f(x, "log_price") == 0.0


def test_affinity_aligns_customer_with_product():
    """Looking for red shoes: a red shoe scores a higher share than blue trousers."""
    p = CustomerProfile()
    for i in range(3):
        p.observe_interaction(RED_SHOES, "click", i * H, 20)
    red = interaction_features(p, RED_SHOES, "view", 4 * H)
    blue = interaction_features(p, BLUE_TROUSERS, "view", 4 * H)
    assert f(red, "category_share") == 1.0 and f(red, "color_share") == 1.0
    assert f(red, "category_x_color") == 1.0
    assert f(blue, "category_share") == 0.0 and f(blue, "category_x_color") == 0.0
    assert f(red, "seen_product") > 0 and f(blue, "seen_product") == 0


def test_affinities_decay_with_event_time():
    p = CustomerProfile()
    p.observe_interaction(RED_SHOES, "view", 0, 20)
    p.observe_interaction(BLUE_TROUSERS, "view", HALF_LIFE_MS, 20)
    # the red shoe's weight halved before the trousers were added: shares 1/3 vs 2/3
    x = interaction_features(p, BLUE_TROUSERS, "view", HALF_LIFE_MS)
    assert f(x, "category_share") == pytest.approx(2 / 3)


def test_orders_feed_spend_features():
    p = CustomerProfile()
    p.observe_order(RED_SHOES, 1, 80.0, 0, 20)
    x = interaction_features(p, BLUE_TROUSERS, "view", H)
    assert f(x, "log_orders") > 0 and f(x, "order_rate") == 1.0
    assert f(x, "price_vs_usual_spend") == pytest.approx(__import__("math").log(61 / 81))
    assert f(x, "log_hours_since_last") == pytest.approx(__import__("math").log(2))


def test_history_is_bounded():
    p = CustomerProfile()
    for i in range(50):
        p.observe_interaction(RED_SHOES, "view", i, history_len=20)
    assert len(p.history) == 20 and p.history[0][0] == 30 and p.n_interactions == 50


def test_price_bands():
    assert [Product(0, "c", "c", x).price_band for x in (5, 19.99, 20, 45, 80, 10_000)] == [0, 0, 1, 2, 3, 7]
