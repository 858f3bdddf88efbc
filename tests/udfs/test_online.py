"""The online residual model: a hand-computed SGD step, shrinkage, and the model contract."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from udfs.online import OnlineResidual, logit, sigmoid


def test_newton_step_matches_hand_computation():
    m = OnlineResidual.zeros(2)
    m.learn_one([1.0, 0.0], offline_logit=0.0, y=1)  # p = 0.5 before
    x, offline = np.array([2.0, 1.0]), -0.3
    z = offline + m.b + float(m.w @ x)
    p = 1 / (1 + math.exp(-z))
    g, r = p - 1.0, p * (1 - p)
    prec_w = m.precision_w + r * x * x
    prec_b = m.precision_b + r
    expected_w = m.w - g * x / prec_w
    expected_b = m.b - g / prec_b
    assert m.learn_one(x, offline, y=1) == pytest.approx(p)
    assert m.w.tolist() == pytest.approx(expected_w.tolist(), abs=1e-12)
    assert m.b == pytest.approx(expected_b, abs=1e-12)
    assert m.n_updates == 2


def test_step_size_falls_as_evidence_accumulates():
    m = OnlineResidual.zeros(1)
    steps = []
    for _ in range(50):
        before = m.b
        m.learn_one([0.0], offline_logit=-2.0, y=1)
        steps.append(m.b - before)
    assert all(a > b > 0 for a, b in zip(steps, steps[1:], strict=False))


def test_new_customer_starts_exactly_at_the_offline_model():
    m = OnlineResidual.zeros(5)
    for z in (-3.0, 0.0, 2.5):
        assert m.predict_proba_one(np.ones(5), z) == pytest.approx(sigmoid(z))


def test_learning_moves_toward_the_labels_and_the_prior_holds_weights_back():
    rng = np.random.default_rng(0)
    m = OnlineResidual.zeros(3)
    for _ in range(300):
        m.learn_one(rng.normal(size=3), offline_logit=-2.0, y=1)
    assert m.predict_proba_one(np.zeros(3), -2.0) > sigmoid(-2.0)
    # A stronger prior keeps the weights closer to zero on the same evidence.
    weak, strong = OnlineResidual.zeros(2), OnlineResidual.zeros(2)
    for _ in range(20):
        weak.learn_one([1.0, -1.0], 0.0, 1, prior_precision_w=1.0)
        strong.learn_one([1.0, -1.0], 0.0, 1, prior_precision_w=1000.0)
    assert np.all(np.abs(strong.w) < np.abs(weak.w))


@pytest.mark.parametrize("learn_first", [False, True])
def test_model_survives_pickling(learn_first):
    m = OnlineResidual.zeros(4)
    if learn_first:
        m.learn_one([1, 2, 3, 4], 0.0, 1)
    m2 = pickle.loads(pickle.dumps(m))
    x = [0.1, 0.2, 0.3, 0.4]
    assert m2.predict_proba_one(x, 0.3) == m.predict_proba_one(x, 0.3)
    m.learn_one(x, 0.3, 0)
    m2.learn_one(x, 0.3, 0)
    assert m2.w.tolist() == m.w.tolist() and m2.n_updates == m.n_updates


def test_sigmoid_and_logit_are_stable():
    assert sigmoid(-1000) == 0.0 and sigmoid(1000) == 1.0
    assert logit(sigmoid(1.5)) == pytest.approx(1.5)
    assert math.isfinite(logit(0.0)) and math.isfinite(logit(1.0))
