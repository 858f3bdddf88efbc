"""Order anomaly scoring: the fast forest equals sklearn's, and abnormal orders score higher."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest

from tests.helpers import anomaly_model, interaction, offline_model, order
from udfs.anomaly import ORDER_FEATURE_NAMES, FastIsolationForest, order_features
from udfs.customer import CustomerLogic, CustomerState, ScoringParams
from udfs.features import CustomerProfile, Product

SHOE = Product(1, "shoes", "red", 80.0)
NOON = 12 * 3_600_000


@pytest.mark.parametrize("params", [{}, {"max_features": 0.6}, {"max_samples": 64, "n_estimators": 20}])
def test_fast_forest_scores_exactly_like_sklearn(params):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 7))
    forest = IsolationForest(random_state=1, contamination=0.05, **params).fit(X)
    fast = FastIsolationForest(forest)
    T = np.vstack([rng.normal(size=(300, 7)) * 3, X[:50]])
    assert np.abs(fast.score_samples(T) - forest.score_samples(T)).max() < 1e-12
    flagged = [fast.is_anomaly(s) for s in -fast.score_samples(T)]
    assert flagged == (forest.predict(T) == -1).tolist()


_FOREST = IsolationForest(random_state=3).fit(np.random.default_rng(3).normal(size=(500, 7)))
_FAST = FastIsolationForest(_FOREST)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=7, max_size=7))
def test_fast_forest_matches_sklearn_on_any_row(x):
    assert _FAST.anomaly_score_one(x) == pytest.approx(-_FOREST.score_samples([x])[0], abs=1e-12)


def test_order_features_compare_with_the_customers_own_history():
    p = CustomerProfile()
    p.observe_interaction(SHOE, "click", NOON - 60_000, history_len=20)
    p.observe_order(SHOE, 1, 80.0, NOON - 30_000, history_len=20)
    f = dict(zip(ORDER_FEATURE_NAMES, order_features(p, SHOE, 3, 120.0, NOON), strict=True))
    assert f["quantity"] == 3.0
    assert f["price_ratio"] == pytest.approx(120.0 / (3 * 80.0))
    assert f["amount_vs_usual"] == pytest.approx(np.log(121.0 / 81.0))
    assert f["log_minutes_since_product_seen"] == pytest.approx(np.log1p(1.0))  # seen 1 min ago
    blind = dict(zip(ORDER_FEATURE_NAMES, order_features(CustomerProfile(), None, 1, 10.0, NOON,
                                                          product_id=99), strict=True))
    assert blind["price_ratio"] == 1.0 and blind["amount_vs_usual"] == 0.0  # nothing to compare


def test_orders_get_an_anomaly_score_record_and_abnormal_ones_score_higher(score_validator):
    logic = CustomerLogic(offline_model(), ScoringParams(label_horizon_ms=60_000),
                          anomaly_model=anomaly_model())
    s = CustomerState()
    logic.on_interaction(s, interaction(1, NOON - 60_000), SHOE)
    normal = logic.on_order(s, order(10, NOON, amount=80.0), SHOE).records[0]
    night_bulk = logic.on_order(s, order(11, 3 * 3_600_000, product_id=1, amount=400.0), SHOE)
    bulk = night_bulk.records[0]
    for r in (normal, bulk):
        score_validator.validate(r)
        assert r["kind"] == "order" and r["model"] == {"name": "order_anomaly", "version": 1}
    assert bulk["anomaly_score"] > normal["anomaly_score"]
    assert bulk["anomalous"] and not normal["anomalous"]


def test_without_an_anomaly_model_orders_are_still_recorded(score_validator):
    logic = CustomerLogic(offline_model(), ScoringParams())
    rec = logic.on_order(CustomerState(), order(10, NOON), SHOE).records[0]
    score_validator.validate(rec)
    assert rec["anomaly_score"] is None and rec["model"] is None
