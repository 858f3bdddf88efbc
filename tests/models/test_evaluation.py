"""The report's statistics: ROC-AUC without sklearn's overhead, and bootstrap intervals by customer."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from models.evaluation import Scored, _auc, gain_interval, rise_interval


def rows_of(p_online, p_offline, labels, per_customer=3):
    return [Scored(i, i // per_customer, 0, 0, "personalised", p_online=float(a), p_offline=float(b), label=int(y))
            for i, (a, b, y) in enumerate(zip(p_online, p_offline, labels, strict=True))]


def test_auc_equals_sklearns_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    score = np.round(rng.random(500) + 0.3 * y, 1)  # coarse: many ties
    assert _auc(y, score) == roc_auc_score(y, score)


def test_gain_interval_brackets_a_real_gain_and_a_null_one():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 1500)
    noise = rng.normal(0, 1, 1500)
    offline = 1 / (1 + np.exp(-(y - 0.5 + 2.0 * noise)))
    better = 1 / (1 + np.exp(-(y - 0.5 + 1.0 * noise)))  # the same noise, halved: always better
    ci = gain_interval(rows_of(better, offline, y))
    point = roc_auc_score(y, better) - roc_auc_score(y, offline)
    assert 0 < ci["auc"][0] <= point <= ci["auc"][1]
    assert ci["logloss"][1] < 0  # lower log loss, surely
    same = gain_interval(rows_of(offline, offline, y))
    assert same["auc"] == [0.0, 0.0] and same["logloss"] == [0.0, 0.0]


def test_rise_interval_of_groups_of_different_customers():
    rng = np.random.default_rng(7)
    y1, y2 = rng.integers(0, 2, 600), rng.integers(0, 2, 600)
    first = rows_of(rng.random(600), rng.random(600), y1)  # chance
    last = rows_of(y2 * 0.5 + rng.random(600) * 0.6, rng.random(600), y2)  # mostly right
    lo, hi = rise_interval(first, last)
    assert 0 < lo < hi
