"""The report's statistics: ROC-AUC without sklearn's overhead, bootstrap intervals by customer, and
the best estimate of a customer's propensity their labels allow."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from livefit.datagen import PersonalPrior, PurchaseTruth
from models.evaluation import (
    Evaluation,
    PersonalPosterior,
    Scored,
    _auc,
    estimate_fit_from_interactions,
    estimate_personal_from_labels,
    gain_interval,
    rise_interval,
)
from udfs.features import Product


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


def test_personal_posterior_matches_importance_sampling_from_the_prior():
    """The grid posterior's mean equals the same posterior computed another way: draws from the
    prior weighted by the labels' likelihood."""
    prior = PersonalPrior(0.0, 0.8, -0.6, 0.5)
    labels = [(0.1, -1.0, 1), (0.3, -2.5, 0), (0.4, 0.5, 1), (0.7, -3.0, 0), (0.9, -0.5, 1)]
    post = PersonalPosterior(prior)
    for frac, known, y in labels:
        post.learn(frac, known, y)
    rng = np.random.default_rng(11)
    start = rng.normal(prior.start_mean, prior.start_sd, 400_000)
    slope = rng.normal(prior.slope_mean, prior.slope_sd, 400_000)
    log_w = np.zeros_like(start)
    for frac, known, y in labels:
        z = known + start + frac * slope
        log_w -= np.logaddexp(0.0, -z if y else z)
    w = np.exp(log_w - log_w.max())
    for frac in (0.0, 0.5, 1.0):
        sampled = float((w * (start + frac * slope)).sum() / w.sum())
        assert abs(post.mean_at(frac) - sampled) < 0.01, frac


def test_personal_from_labels_uses_only_the_labels_learned_before_each_score():
    truth = PurchaseTruth(personal=1.0, fit=0.0, engagement=0.0)
    rows = [Scored(i, 1, 0, 0, "personalised", 0.5, label=1, truth=truth) for i in range(3)]
    ops = [("score", 0, 0), ("learn", 0, 1), ("score", 1, 0), ("learn", 1, 1), ("learn", 2, 1),
           ("score", 2, 0)]  # 2's label resolved before it was scored: not possible in the job,
    # but the estimate must still follow the order it is given
    ev = Evaluation(7, 0, rows, ops, [], {}, {"segment_drift": 0.6}, history_window_ms=(0, 1000),
                    segments={1: 1})  # regular: no shared drift, the prior's mean is 0
    estimate_personal_from_labels(ev)
    first, second, third = (r.personal_from_labels for r in rows)
    assert abs(first) < 1e-9  # nothing learned yet: the prior's mean
    assert 0 < second < third  # each label bought: the estimate rises with each


def _shopper(kinds_and_products):
    products = {1: Product(1, "dresses", "red", 60.0), 2: Product(2, "trousers", "blue", 60.0),
                3: Product(3, "shoes", "green", 90.0)}
    rows = [Scored(i, 5, 1000 * i, 0, "personalised", 0.5, product_id=p, kind=k)
            for i, (k, p) in enumerate(kinds_and_products)]
    return Evaluation(7, 0, rows, [], [], {}, {}, history_window_ms=(0, 100_000),
                      products=products, segments={5: 1})


def test_fit_from_interactions_learns_what_a_customer_looks_for():
    ev = _shopper([("add_to_cart", 1)] * 8 + [("view", 2)])
    estimate_fit_from_interactions(ev)
    dresses, trousers = ev.scored[7].fit_from_interactions, ev.scored[8].fit_from_interactions
    assert dresses > ev.scored[0].fit_from_interactions  # more evidence of a taste for red dresses
    assert trousers < dresses  # "looking for a red skirt: don't show blue trousers"


def test_fit_from_interactions_uses_only_what_came_before():
    first = [("click", 1), ("view", 3), ("add_to_cart", 1)]
    short, longer = _shopper(first), _shopper(first + [("view", 2), ("click", 2)])
    estimate_fit_from_interactions(short)
    estimate_fit_from_interactions(longer)
    assert [r.fit_from_interactions for r in short.scored] == \
        [r.fit_from_interactions for r in longer.scored[:3]]
