"""Rolling quality metrics agree with sklearn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from udfs.quality import RollingQuality, expected_calibration_error, metrics_record, roc_auc


def test_auc_and_log_loss_match_sklearn_with_ties():
    rng = np.random.default_rng(1)
    p = np.round(rng.random(700), 2)  # many ties
    y = (rng.random(700) < p).astype(int)
    assert roc_auc(p.tolist(), y.tolist()) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    q = RollingQuality(window=10_000)
    for pi, yi in zip(p, y, strict=True):
        q.add("m", float(pi), int(yi))
    s = q.summary()["m"]
    assert s["log_loss"] == pytest.approx(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6)), abs=1e-5)
    assert s["labels"] == 700 and s["positive_rate"] == pytest.approx(y.mean(), abs=1e-5)


def test_window_keeps_only_the_latest_labels_and_one_class_has_no_auc():
    q = RollingQuality(window=3)
    for p, y in [(0.9, 0), (0.8, 0), (0.1, 1), (0.2, 1), (0.3, 1)]:
        q.add("online", p, y)
    s = q.summary()["online"]
    assert s["labels"] == 3 and s["labels_total"] == 5 and s["roc_auc"] is None


def test_calibration_error_is_zero_when_predictions_match_rates():
    assert expected_calibration_error([0.25] * 4, [1, 0, 0, 0]) == pytest.approx(0.0)
    assert expected_calibration_error([0.95] * 2, [0, 0]) == pytest.approx(0.95)


def test_metrics_record_names_subtask_and_model():
    q = RollingQuality()
    q.add("offline", 0.3, 1)
    rec = metrics_record(q.summary(), 1, {"name": "propensity", "version": 2}, 123)
    assert rec["kind"] == "quality" and rec["subtask"] == 1 and "offline" in rec["models"]


def test_calibration_error_matches_its_definition_on_random_predictions():
    rng = np.random.default_rng(3)
    p = rng.random(2000)
    p[:5] = [0.0, 1.0, 0.1, 0.9999, 0.5]  # bin edges, the top one included in the last bin
    y = (rng.random(2000) < p).astype(int)
    bins = [[0.0, 0.0] for _ in range(10)]
    for pi, yi in zip(p, y, strict=True):
        b = bins[min(int(pi * 10), 9)]
        b[0] += pi
        b[1] += yi
    expected = sum(abs(sp - sy) for sp, sy in bins) / len(p)
    assert expected_calibration_error(p.tolist(), y.tolist()) == pytest.approx(expected, abs=1e-12)
