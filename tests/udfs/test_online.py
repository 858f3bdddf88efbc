"""The online residual model: a hand-computed SGD step, shrinkage, and the model contract."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from udfs.online import OnlineResidual, logit, sigmoid


def test_sgd_step_matches_hand_computation():
    m = OnlineResidual(np.array([0.5, -1.0]), b=0.2, n_updates=30)
    x, offline, lr, l2 = [2.0, 1.0], -0.3, 0.1, 0.01
    # z = -0.3 + 0.2 + (0.5*2 - 1*1) = -0.1; p = sigmoid(-0.1) = 0.475021; g = p - 1 = -0.524979
    # w0 = 0.5 - 0.05*(2g + 0.01*0.5) = 0.552248;  w1 = -1 - 0.05*(g - 0.01*1) = -0.973251
    p = 1 / (1 + math.exp(0.1))
    g = p - 1.0
    step = 0.1 / math.sqrt(1 + 30 / 10)  # = 0.05
    expected_w = [0.5 - step * (g * 2.0 + l2 * 0.5), -1.0 - step * (g * 1.0 + l2 * -1.0)]
    m.learn_one(x, offline, y=1, lr=lr, l2=l2)
    assert step == pytest.approx(0.05)
    assert m.w.tolist() == pytest.approx(expected_w, abs=1e-12)
    assert m.w.tolist() == pytest.approx([0.5522479, -0.9732510], abs=1e-6)
    assert m.b == pytest.approx(0.2 - step * g, abs=1e-12)
    assert m.n_updates == 31


def test_new_customer_starts_exactly_at_the_offline_model():
    m = OnlineResidual.zeros(5)
    for z in (-3.0, 0.0, 2.5):
        assert m.predict_proba_one(np.ones(5), z) == pytest.approx(sigmoid(z))


def test_learning_moves_toward_the_labels_and_l2_shrinks():
    rng = np.random.default_rng(0)
    m = OnlineResidual.zeros(3)
    for _ in range(300):
        m.learn_one(rng.normal(size=3), offline_logit=-2.0, y=1)
    assert m.predict_proba_one(np.zeros(3), -2.0) > sigmoid(-2.0)
    shrunk = OnlineResidual(np.array([1.0, 1.0, 1.0]))
    shrunk.learn_one(np.zeros(3), offline_logit=50.0, y=1, lr=0.1, l2=0.5)  # g ~ 0: only L2 acts
    assert np.all(shrunk.w < 1.0)


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
