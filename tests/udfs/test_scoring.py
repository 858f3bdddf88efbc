"""The job's fast path for the offline model equals sklearn's own answer."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from tests.helpers import fitted_pipeline
from udfs.features import FEATURE_NAMES, N_FEATURES
from udfs.scoring import OfflineModel


def test_linear_fast_path_matches_sklearn():
    pipe = fitted_pipeline()
    m = OfflineModel(pipe, {"name": "p", "version": 1})
    X = np.random.default_rng(1).normal(size=(50, N_FEATURES))
    fast = np.array([m.logit_one(x) for x in X])
    assert fast == pytest.approx(pipe.decision_function(X), abs=1e-9)
    assert m.logit_many(X) == pytest.approx(pipe.decision_function(X), abs=1e-9)
    logit, scaled = m.logit_and_scaled(X[0].tolist())  # the row the online residual learns on
    assert logit == pytest.approx(pipe.decision_function(X[:1])[0], abs=1e-9)
    assert scaled == pytest.approx(pipe.steps[0][1].transform(X[:1])[0], abs=1e-12)


def test_other_estimators_use_predict_proba():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, N_FEATURES))
    y = (X[:, 0] > 0).astype(int)
    hgb = HistGradientBoostingClassifier(max_iter=10).fit(X, y)
    m = OfflineModel(hgb, {"name": "hgb", "version": 1, "features": list(FEATURE_NAMES)})
    p = hgb.predict_proba(X[:3])[:, 1]
    assert [1 / (1 + np.exp(-m.logit_one(x))) for x in X[:3]] == pytest.approx(p, abs=1e-5)
