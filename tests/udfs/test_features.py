"""Customer features: computed before the event, decayed affinities, bounded history."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from udfs.features import (
    FEATURE_NAMES,
    HALF_LIFE_MS,
    N_FEATURES,
    PRIOR_SHARE,
    PRIOR_WEIGHT,
    CustomerProfile,
    Product,
    interaction_features,
)

RED_SHOES = Product(1, "shoes", "red", 80.0)
BLUE_TROUSERS = Product(2, "trousers", "blue", 60.0)
H = 3_600_000
PRIOR = PRIOR_WEIGHT * PRIOR_SHARE  # the prior's weight on each value


def smoothed(weight: float, total: float) -> float:
    return math.log((weight + PRIOR) / (total + PRIOR_WEIGHT))


def f(x: list[float], name: str) -> float:
    return x[FEATURE_NAMES.index(name)]


def test_vector_shape_and_cold_start():
    x = interaction_features(CustomerProfile(), RED_SHOES, "add_to_cart", 0)
    assert len(x) == N_FEATURES
    assert f(x, "kind_add_to_cart") == 1.0 and f(x, "kind_click") == 0.0
    assert f(x, "cold_start") == 1.0 and f(x, "product_known") == 1.0
    # no history yet: every value has the prior share
    assert f(x, "log_interactions") == 0.0 and f(x, "log_category_affinity") == math.log(PRIOR_SHARE)


def test_unknown_product_gives_neutral_product_features():
    p = CustomerProfile()
    p.observe_interaction(RED_SHOES, "view", 0, 20)
    x = interaction_features(p, None, "view", H)
    assert f(x, "product_known") == 0.0 and f(x, "log_price") == 0.0
    # as a value never looked at (the customer's one view, decayed over the hour, is the total)
    decay = 0.5 ** (H / HALF_LIFE_MS)
    assert f(x, "log_category_affinity") == pytest.approx(math.log(PRIOR / (decay + PRIOR_WEIGHT)))


def test_affinity_aligns_customer_with_product():
    """Looking for red shoes: a red shoe scores a higher share than blue trousers."""
    p = CustomerProfile()
    for i in range(3):
        p.observe_interaction(RED_SHOES, "click", i * H, 20)
    red = interaction_features(p, RED_SHOES, "view", 2 * H)  # at the last click: no decay yet
    blue = interaction_features(p, BLUE_TROUSERS, "view", 2 * H)
    total = sum(2.0 * 0.5 ** ((2 - i) * H / HALF_LIFE_MS) for i in range(3))  # 3 clicks, decayed
    only, never = smoothed(total, total), smoothed(0.0, total)
    assert f(red, "log_category_affinity") == pytest.approx(only)
    assert f(red, "log_color_affinity") == pytest.approx(only)
    assert f(red, "category_x_color_affinity") == pytest.approx(math.exp(2 * only))
    assert f(blue, "log_category_affinity") == pytest.approx(never) and never < math.log(PRIOR_SHARE) < only
    assert f(blue, "category_x_color_affinity") == pytest.approx(math.exp(2 * never))
    assert f(red, "seen_product") > 0 and f(blue, "seen_product") == 0


def test_more_looks_are_stronger_evidence():
    """Smoothed toward the prior: one look at a category is weak evidence, a dozen strong."""
    def affinity_after(looks: int) -> float:
        p = CustomerProfile()
        for _ in range(looks):
            p.observe_interaction(RED_SHOES, "view", 0, 20)
        return f(interaction_features(p, RED_SHOES, "view", 0), "log_category_affinity")
    a1, a3, a12 = affinity_after(1), affinity_after(3), affinity_after(12)
    assert math.log(PRIOR_SHARE) < a1 < a3 < a12 < 0.0
    assert a1 == pytest.approx(smoothed(1.0, 1.0)) and a12 == pytest.approx(smoothed(12.0, 12.0))


def test_affinities_decay_with_event_time():
    p = CustomerProfile()
    p.observe_interaction(RED_SHOES, "view", 0, 20)
    p.observe_interaction(BLUE_TROUSERS, "view", HALF_LIFE_MS, 20)
    # the red shoe's weight halved before the trousers were added: weights 1/2 and 1
    x = interaction_features(p, BLUE_TROUSERS, "view", HALF_LIFE_MS)
    assert f(x, "log_category_affinity") == pytest.approx(smoothed(1.0, 1.5))
    # a half-life later, scored without a new event: both weights halved again, against the
    # prior's constant weight
    later = interaction_features(p, BLUE_TROUSERS, "view", 2 * HALF_LIFE_MS)
    assert f(later, "log_category_affinity") == pytest.approx(smoothed(0.5, 0.75))


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


CATEGORIES = ("shoes", "bags", "skirts")
event = st.tuples(
    st.sampled_from(("view", "click", "add_to_cart", "order")),
    st.builds(Product, st.integers(1, 5), st.sampled_from(CATEGORIES), st.sampled_from(("red", "blue")),
              st.floats(0.0, 1e7)),  # the parser's range of prices
    st.integers(-(10**12), 4 * 10**12),  # event times in any order, decades apart
)


@given(st.lists(event, max_size=40), event)
def test_any_life_gives_finite_features_and_affinities_that_are_shares(life, now):
    """Whatever a customer did, in whatever order: the vector is finite, and each smoothed
    affinity is a share (0, 1] even when the weights decayed to nothing or the total is huge."""
    p = CustomerProfile()
    for kind, product, ts in life:
        if kind == "order":
            p.observe_order(product, product.product_id, product.price, ts, 20)
        else:
            p.observe_interaction(product, kind, ts, 20)
    kind, product, ts = now
    for x in (interaction_features(p, product, "view", ts), interaction_features(p, None, "view", ts)):
        assert len(x) == N_FEATURES and all(math.isfinite(v) for v in x)
        for name in ("log_category_affinity", "log_color_affinity", "log_price_band_affinity"):
            assert 0.0 < math.exp(f(x, name)) <= 1.0 + 1e-12, name
