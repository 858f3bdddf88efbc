"""Progressive validation of livefit's models on a seeded workload, with delayed labels.

The seeded generator's history is turned into Debezium change events (the bytes the job reads).
The offline models are trained on the first ``train_share`` of that time, exactly as
``livefit train`` does; then every event is run, in commit order, through the job's own
per-event logic (:class:`udfs.runner.LocalRunner`): each interaction is scored first, its label
resolves later (an order within the horizon, or the horizon's timer), and only then is it learned
from. Predictions made after the training window are compared with their labels:

- ``offline``: the personalised offline model alone, as a job without online learning would serve;
- ``online``: what livefit serves (model selection for cold-start customers + the segment's shared
  drift correction + online residual). The job publishes a segment's correction through Kafka
  every ``job.drift_publish_every_labels`` labels; here (``LocalRunner``) it applies from the
  next event on;
- ``river``: River's online logistic regression over the same features and label stream.

Customers are bucketed by how many labels their online model had learned when the event was
scored (the warm-up curve). Orders are scored by the anomaly model and compared with the
generator's ground truth.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from livefit.config import Config, DataConfig
from livefit.datagen import (
    CATEGORIES,
    COLORS,
    KINDS,
    PRICE_PREF_SD,
    PRICE_SENS_RANGE,
    TASTE_CONCENTRATION,
    PersonalPrior,
    PurchaseTruth,
    category_draw,
    color_draw,
    kind_logits,
    personal_prior,
    price_pref_mean,
    purchase_fit,
    taste_drift_share,
)
from livefit.workload import build_workload
from models.train import train_on_history
from udfs.customer import CustomerLogic
from udfs.drift import decay_for
from udfs.features import Product
from udfs.online import sigmoid
from udfs.quality import roc_auc
from udfs.runner import LocalRunner
from udfs.scoring import OfflineModel, OrderAnomalyModel, cold_start_name

WARM_LABELS = 10  # "customers with >= 10 labeled events"
WARMUP_BUCKETS: tuple[tuple[int, int], ...] = (
    (0, 0), (1, 2), (3, 5), (6, 9), (10, 19), (20, 39), (40, 79), (80, 10**9))


@dataclass
class Scored:
    interaction_id: int
    customer_id: int
    event_ts: int
    labels_before: int  # labels the customer's online model had learned when this was scored
    selected: str
    p_online: float
    p_offline: float = math.nan  # the personalised offline model alone
    p_river: float = math.nan
    label: int | None = None
    x: list[float] = field(default_factory=list)
    truth: PurchaseTruth | None = None  # the generator's purchase logit (ground truth)
    product_id: int = 0
    kind: str = ""  # what the customer did: view, click, add_to_cart
    # The best estimate of truth.personal from the customer's labels learned before this score
    # (PersonalPosterior); NaN until estimate_personal_from_labels runs
    personal_from_labels: float = math.nan
    # The best estimate of truth.fit from the customer's interactions up to this one (what they
    # looked at and how they engaged; estimate_fit_from_interactions); NaN until it runs
    fit_from_interactions: float = math.nan


@dataclass
class Evaluation:
    seed: int
    cut_ms: int
    scored: list[Scored]
    ops: list[tuple[str, int, int]]  # ("score", id, 0) / ("learn", id, y) in the job's order
    orders: list[dict[str, Any]]  # order score records after the cut, with "truth"
    manifests: dict[str, dict[str, Any]]
    workload: dict[str, Any]
    drift_offsets: dict[str, float] = field(default_factory=dict)  # each segment's, at the end
    # ground truth for the best estimates (estimate_personal_from_labels,
    # estimate_fit_from_interactions): the generator's history window (epoch ms), its catalog,
    # each customer's segment
    history_window_ms: tuple[int, int] = (0, 0)
    products: dict[int, Product] = field(default_factory=dict)
    segments: dict[int, int] = field(default_factory=dict)

    def evaluated(self) -> list[Scored]:
        return [s for s in self.scored if s.event_ts >= self.cut_ms and s.label is not None]

    def history_frac(self, ts_ms: int) -> float:
        """How far into the generator's history window ``ts_ms`` is (its ``frac``)."""
        lo, hi = self.history_window_ms
        return (ts_ms - lo) / (hi - lo)


def run(seed: int, train_share: float = 0.7, cfg: Config | None = None,
        data: DataConfig | None = None, say: Callable[[str], None] = print) -> Evaluation:
    cfg = cfg or Config()
    data = dataclasses.replace(data or DataConfig(), seed=seed)
    params = cfg.job.scoring_params()
    workload = build_workload(cfg, data)
    t_min = min(e.ts_ms for e in workload.history)
    t_max = max(e.ts_ms for e in workload.history)
    cut_ms = int(t_min + train_share * (t_max - t_min))
    say(f"[report] seed {seed}: {len(workload.records)} change events, {workload.interactions} "
        f"interactions; training on the first {train_share:.0%} of the time")
    with tempfile.TemporaryDirectory(prefix="livefit-report-models-") as model_dir:
        name = cfg.job.model_name
        train_on_history([e for e in workload.history if e.ts_ms < cut_ms], workload.products,
                         model_dir, name, params.label_horizon_ms, params.history_len, say=say,
                         anomaly_name=cfg.job.anomaly_model_name)
        model = OfflineModel.load(model_dir, name)
        cold = OfflineModel.load_optional(model_dir, cold_start_name(name))
        anomaly = OrderAnomalyModel.load_optional(model_dir, cfg.job.anomaly_model_name)
    manifests = {m.name: m.manifest for m in (model, cold, anomaly) if m is not None}
    logic = CustomerLogic(model, params, cold_model=cold, anomaly_model=anomaly)
    drift_every = cfg.job.drift_publish_every_labels
    runner = LocalRunner(logic, cfg.job.max_out_of_orderness_ms, drift_every,
                         decay_for(cfg.job.drift_memory_labels))
    scored: dict[int, Scored] = {}
    ops: list[tuple[str, int, int]] = []
    orders: list[dict[str, Any]] = []

    def take(outcomes: Any) -> None:
        for out in outcomes:
            for r in out.records:
                if r["kind"] == "interaction":
                    iid = r["interaction_id"]
                    scored[iid] = Scored(iid, r["customer_id"], r["event_ts"], r["online_updates"],
                                         r["selected"], r["p_online"],
                                         truth=workload.purchase_truth.get(iid),
                                         product_id=r["product_id"], kind=r["interaction_kind"])
                    ops.append(("score", iid, 0))
                elif r["event_ts"] >= cut_ms:
                    orders.append({**r, "truth": r["order_id"] in workload.anomalous_order_ids})
            for lab in out.labels:
                s = scored[lab["interaction_id"]]
                s.label, s.x = lab["label"], lab["features"]
                s.p_offline = sigmoid(model.logit_one(s.x))
                ops.append(("learn", s.interaction_id, lab["label"]))

    for offset, (topic, key, value, ts) in enumerate(workload.records):
        take(runner.process(topic, offset, ts, key, value))
    take(runner.finish())
    return Evaluation(seed, cut_ms, list(scored.values()), ops, orders, manifests,
                      {"change_events": len(workload.records), "interactions": workload.interactions,
                       "customers": data.customers, "products": data.products,
                       "history_days": data.history_days, "train_share": train_share,
                       "label_horizon_s": cfg.job.label_horizon_s,
                       "segment_drift": data.segment_drift,
                       "drift_publish_every_labels": drift_every},
                      {seg: round(v, 4) for seg, v in sorted(logic.drift.items())},
                      workload.history_window_ms, workload.products, workload.segments)


class PersonalPosterior:
    """The Bayes posterior of one customer's personal propensity given their labels: the most
    their own labels can tell about it, for a learner that knows everything else.

    It knows what no real learner does: how the generator drew the propensity
    (:class:`PersonalPrior`: a straight line over the history, start and slope Gaussian) and,
    for each label, the rest of the generator's true purchase logit. Each label multiplies the
    posterior by its likelihood ``sigmoid(known + start + frac * slope)`` (or one minus it), on a
    grid of 65 x 41 points within 4 standard deviations of the prior means.

    >>> post = PersonalPosterior(PersonalPrior(0.0, 0.8, 0.6, 0.5))  # a segment drifting up
    >>> round(post.mean_at(0.5), 3)  # no label yet: the prior's mean, 0.0 + 0.5 * 0.6
    0.3
    >>> for _ in range(20):
    ...     post.learn(frac=0.5, known_logit=0.0, y=1)
    >>> post.mean_at(0.5) > 1.0  # buying every time: far above the prior's mean
    True
    """

    def __init__(self, prior: PersonalPrior):
        self.start = np.linspace(-4, 4, 65)[:, None] * prior.start_sd + prior.start_mean
        self.slope = np.linspace(-4, 4, 41)[None, :] * prior.slope_sd + prior.slope_mean
        self.log_post = (-0.5 * ((self.start - prior.start_mean) / prior.start_sd) ** 2
                         - 0.5 * ((self.slope - prior.slope_mean) / prior.slope_sd) ** 2)

    def learn(self, frac: float, known_logit: float, y: int) -> None:
        z = known_logit + self.start + frac * self.slope
        self.log_post = self.log_post - np.logaddexp(0.0, -z if y else z)

    def mean_at(self, frac: float) -> float:
        w = np.exp(self.log_post - self.log_post.max())
        return float((w * (self.start + frac * self.slope)).sum() / w.sum())


def estimate_personal_from_labels(ev: Evaluation) -> None:
    """Set each scored row's ``personal_from_labels``: its customer's :class:`PersonalPosterior`
    mean at its time, given the labels learned before it was scored (in the job's order)."""
    if not ev.segments:
        return
    rows = {r.interaction_id: r for r in ev.scored}
    posteriors: dict[int, PersonalPosterior] = {}
    for op, iid, y in ev.ops:
        r = rows[iid]
        if r.truth is None:
            continue
        post = posteriors.get(r.customer_id)
        if post is None:
            post = posteriors[r.customer_id] = PersonalPosterior(
                personal_prior(ev.segments[r.customer_id], ev.workload["segment_drift"]))
        frac = ev.history_frac(r.event_ts)
        if op == "score":
            r.personal_from_labels = post.mean_at(frac)
        else:
            post.learn(frac, r.truth.logit - r.truth.personal, y)


FIT_SAMPLES = 2_000  # on seed 7: +0.0022 warm; 5,000 draws +0.0023, 20,000 +0.0020 (session 35)


def estimate_fit_from_interactions(ev: Evaluation, samples: int = FIT_SAMPLES, seed: int = 0) -> None:
    """Set each scored row's ``fit_from_interactions``: the posterior mean of how well its product
    fits the customer (``PurchaseTruth.fit``), given every interaction of theirs up to and
    including it: which products they looked at (their tastes draw them, as
    ``Shopper.pick_product``) and what they did with each (view, click, cart: the better the
    fit, the more they engage). Labels are left out: the propensity's posterior uses them.

    It knows how the generator draws tastes and price levels, and weighs ``samples`` draws from
    that prior per customer by the likelihood of what they did (importance sampling; with few
    effective draws the estimate is noisier, so the bound it gives is, if anything, low).
    """
    if not ev.products or not ev.segments:
        return
    pids = sorted(ev.products)
    cat = {p: CATEGORIES.index(ev.products[p].category) for p in pids}
    col = {p: COLORS.index(ev.products[p].color) for p in pids}
    log_price = {p: math.log(ev.products[p].price) for p in pids}
    catalog = np.zeros((len(CATEGORIES), len(COLORS)))  # products by category and color
    for p in pids:
        catalog[cat[p], col[p]] += 1
    by_customer: dict[int, list[Scored]] = {}
    for r in ev.scored:
        if r.product_id in cat and r.kind in KINDS:
            by_customer.setdefault(r.customer_id, []).append(r)
    rng = np.random.default_rng(seed)
    alpha = [TASTE_CONCENTRATION] * len(CATEGORIES)
    for cid in sorted(by_customer):
        rows = sorted(by_customer[cid], key=lambda r: (r.event_ts, r.interaction_id))
        early, late, colors = (rng.dirichlet(alpha, samples) for _ in range(3))  # (samples, 8)
        pref = price_pref_mean(ev.segments[cid]) + rng.normal(0, PRICE_PREF_SD, samples)
        sens = rng.uniform(*PRICE_SENS_RANGE, samples)
        share = np.asarray([taste_drift_share(ev.history_frac(r.event_ts)) for r in rows])
        taste = (1 - share[:, None, None]) * early + share[:, None, None] * late  # (rows, samples, 8)
        a = np.asarray([cat[r.product_id] for r in rows])
        b = np.asarray([col[r.product_id] for r in rows])
        at = np.arange(len(rows))
        taste_a, colors_b = taste[at, :, a], colors[:, b].T  # (rows, samples)
        # which product they looked at: its draw against every product's in the catalog
        looked = (np.log(category_draw(taste_a) * color_draw(colors_b))
                  - np.log((category_draw(taste) * (color_draw(colors) @ catalog.T)).sum(-1)))
        prices = np.asarray([log_price[r.product_id] for r in rows])[:, None]
        fit = purchase_fit(taste_a, colors_b, sens, prices, pref, log=np.log)
        logits = np.stack(kind_logits(fit))  # (3, rows, samples)
        k = np.asarray([KINDS.index(r.kind) for r in rows])
        did = logits[k, at] - np.logaddexp.reduce(logits, axis=0)
        loglik = np.cumsum(looked + did, axis=0)  # each row's posterior: everything up to it
        w = np.exp(loglik - loglik.max(axis=1, keepdims=True))
        means = (w * fit).sum(1) / w.sum(1)
        for r, m in zip(rows, means, strict=True):
            r.fit_from_interactions = float(m)


def attach_river(ev: Evaluation, python: str, workdir: Path) -> None:
    """Run River's baseline (models/river_baseline.py) in its venv over the same operations."""
    import subprocess

    by_id = {s.interaction_id: s for s in ev.scored}
    ops_path, out_path = workdir / "river-ops.jsonl", workdir / "river-predictions.json"
    with ops_path.open("w") as fh:
        for op, iid, y in ev.ops:
            s = by_id[iid]
            if not s.x:
                continue  # never labeled (retracted): nothing to predict from
            fh.write(json.dumps({"op": op, "id": iid, "x": s.x} if op == "score"
                                else {"op": op, "id": iid, "y": y}) + "\n")
    script = Path(__file__).with_name("river_baseline.py")
    subprocess.run([python, str(script), str(ops_path), str(out_path)], check=True)
    preds = json.loads(out_path.read_text())
    for s in ev.scored:
        if str(s.interaction_id) in preds:
            s.p_river = float(preds[str(s.interaction_id)])


def _quality(rows: list[Scored], attr: str) -> dict[str, float | None]:
    y = np.asarray([r.label for r in rows], dtype=np.int64)
    p = np.asarray([getattr(r, attr) for r in rows], dtype=np.float64)
    if len(rows) == 0 or np.isnan(p).any():
        return {"auc": None, "logloss": None}
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return {"auc": float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else None,
            "logloss": float(log_loss(y, p, labels=[0, 1]))}


BOOTSTRAP_RESAMPLES = 1000


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC of a resample (the job's vectorised one: sklearn's value without its per-call
    overhead, for a thousand resamples); NaN when the resample has one class only."""
    auc = roc_auc(score, y)
    return math.nan if auc is None else auc


def _customer_resamples(rows: list[Scored], n: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Row indices of ``n`` resamples of the customers, with replacement: one customer's rows are
    not independent of each other, so the customers are what is resampled."""
    by_customer: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_customer.setdefault(r.customer_id, []).append(i)
    groups = [np.asarray(g) for g in by_customer.values()]
    for _ in range(n):
        yield np.concatenate([groups[k] for k in rng.integers(0, len(groups), len(groups))])


def _interval(values: list[float]) -> list[float] | None:
    v = np.asarray([x for x in values if not math.isnan(x)])
    return None if len(v) == 0 else [round(float(q), 4) for q in np.percentile(v, [2.5, 97.5])]


def gain_interval(rows: list[Scored], better: str = "p_online", than: str = "p_offline",
                  n: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, list[float] | None] | None:
    """95 % bootstrap intervals of ``better``'s ROC-AUC minus ``than``'s, and of their log loss
    difference, on the same resampled customers (a paired comparison).

    >>> rows = [Scored(i, i // 2, 0, 0, "p", p_online=float(i % 2), p_offline=0.5, label=i % 2)
    ...         for i in range(40)]
    >>> gain_interval(rows)["auc"]  # a perfect ranking against a constant
    [0.5, 0.5]
    """
    if not rows or any(math.isnan(getattr(r, a)) for r in rows for a in (better, than)):
        return None
    y = np.asarray([r.label for r in rows], dtype=np.int64)
    pa, pb = (np.clip(np.asarray([getattr(r, a) for r in rows]), 1e-6, 1 - 1e-6) for a in (better, than))
    loss_gain = -(y * np.log(pa) + (1 - y) * np.log(1 - pa)) + (y * np.log(pb) + (1 - y) * np.log(1 - pb))
    aucs, losses = [], []
    for idx in _customer_resamples(rows, n, np.random.default_rng(seed)):
        aucs.append(_auc(y[idx], pa[idx]) - _auc(y[idx], pb[idx]))
        losses.append(float(loss_gain[idx].mean()))
    return {"auc": _interval(aucs), "logloss": _interval(losses)}


def rise_interval(first: list[Scored], last: list[Scored], attr: str = "p_online",
                  n: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[float] | None:
    """95 % bootstrap interval of ROC-AUC on ``last`` minus ROC-AUC on ``first`` (two groups of
    different customers, each resampled by customer)."""
    if not first or not last:
        return None
    rng = np.random.default_rng(seed)
    ys = [np.asarray([r.label for r in g], dtype=np.int64) for g in (first, last)]
    ps = [np.asarray([getattr(r, attr) for r in g]) for g in (first, last)]
    draws = zip(_customer_resamples(first, n, rng), _customer_resamples(last, n, rng), strict=True)
    return _interval([_auc(ys[1][j], ps[1][j]) - _auc(ys[0][i], ps[0][i]) for i, j in draws])


CALIBRATION_BINS = 10


def calibration(rows: list[Scored], attr: str, bins: int = CALIBRATION_BINS) -> dict[str, Any] | None:
    """Reliability of the probabilities in ``attr``: equal-count bins by predicted probability,
    each with its mean prediction and observed positive rate, and the expected calibration error
    (bin-size-weighted mean of |predicted - observed|).

    >>> rows = [Scored(i, 1, 0, 0, "personalised", p_online=p, label=y)
    ...         for i, (p, y) in enumerate([(0.1, 0), (0.1, 0), (0.9, 1), (0.9, 1)])]
    >>> calibration(rows, "p_online", bins=2)["ece"]
    0.1
    """
    p = np.asarray([getattr(r, attr) for r in rows], dtype=np.float64)
    if len(rows) < bins or np.isnan(p).any():
        return None
    y = np.asarray([r.label for r in rows], dtype=np.float64)
    order = np.argsort(p, kind="stable")
    out, ece = [], 0.0
    for idx in np.array_split(order, bins):
        mean_p, rate = float(p[idx].mean()), float(y[idx].mean())
        ece += len(idx) / len(rows) * abs(mean_p - rate)
        out.append({"n": int(len(idx)), "mean_predicted": round(mean_p, 4), "observed": round(rate, 4)})
    return {"bins": out, "ece": round(ece, 4)}


def group_summary(rows: list[Scored]) -> dict[str, Any]:
    out: dict[str, Any] = {"labels": len(rows), "positives": int(sum(r.label or 0 for r in rows)),
                           "customers": len({r.customer_id for r in rows})}
    for name, attr in (("offline", "p_offline"), ("online", "p_online"), ("river", "p_river")):
        q = _quality(rows, attr)
        out[f"auc_{name}"] = None if q["auc"] is None else round(q["auc"], 4)
        out[f"logloss_{name}"] = None if q["logloss"] is None else round(q["logloss"], 4)
    return out


def headroom(rows: list[Scored], parts: tuple[str, ...] = PurchaseTruth._fields) -> dict[str, Any] | None:
    """How much there is to learn: quality of the generator's own purchase probability (no model
    can do better on these labels), and of the offline model told each of ``parts`` of the true
    purchase logit (``personal``: the most any per-customer bias could add; ``fit``: the taste
    match; ``engagement``), each fitted on the rows themselves; and, once
    :func:`estimate_personal_from_labels` ran, the offline and the online model told the best
    estimate of ``personal`` that the customer's labels so far allow (the most learning a
    per-customer bias online could add; what livefit's online learning left of it); once
    :func:`estimate_fit_from_interactions` ran, the offline model told the best estimate of
    ``fit`` that the customer's interactions allow (what better features could add at most).

    >>> t = PurchaseTruth(0.0, 0.0, 0.0)
    >>> rows = [Scored(i, 1, 0, 0, "p", 0.5, p_offline=0.5, label=i % 2, truth=t) for i in range(4)]
    >>> headroom(rows)["auc_generator"]
    0.5
    """
    from sklearn.linear_model import LogisticRegression

    rows = [r for r in rows if r.truth is not None]
    y = np.asarray([r.label for r in rows], dtype=np.int64)
    if len(rows) == 0 or len(set(y.tolist())) < 2:
        return None
    z = np.asarray([r.truth.logit for r in rows])  # type: ignore[union-attr]
    p = np.clip(1.0 / (1.0 + np.exp(-z)), 1e-6, 1 - 1e-6)
    off = np.clip(np.asarray([r.p_offline for r in rows]), 1e-6, 1 - 1e-6)
    out = {"auc_generator": round(float(roc_auc_score(y, z)), 4),
           "logloss_generator": round(float(log_loss(y, p, labels=[0, 1])), 4)}

    def told(p: np.ndarray, values: list[float]) -> float:
        both = np.column_stack([np.log(p / (1 - p)), values])
        fitted = LogisticRegression(C=1e4).fit(both, y).decision_function(both)
        return round(float(roc_auc_score(y, fitted)), 4)

    for part in parts:
        out[f"auc_offline_with_true_{part}"] = told(off, [getattr(r.truth, part) for r in rows])
    if not any(math.isnan(r.personal_from_labels) for r in rows):
        estimate = [r.personal_from_labels for r in rows]
        online = np.clip(np.asarray([r.p_online for r in rows]), 1e-6, 1 - 1e-6)
        out["auc_offline_with_personal_from_labels"] = told(off, estimate)
        out["auc_online_with_personal_from_labels"] = told(online, estimate)
    if parts and not any(math.isnan(r.fit_from_interactions) for r in rows):
        out["auc_offline_with_fit_from_interactions"] = told(off, [r.fit_from_interactions for r in rows])
    return out


def groups(rows: list[Scored]) -> dict[str, list[Scored]]:
    """The report's groups: *warm* (scored with >= WARM_LABELS labels learned), *new* (none yet)
    and *all*."""
    return {"warm": [r for r in rows if r.labels_before >= WARM_LABELS],
            "new": [r for r in rows if r.labels_before == 0], "all": rows}


def summarize(ev: Evaluation) -> dict[str, Any]:
    estimate_personal_from_labels(ev)
    estimate_fit_from_interactions(ev)
    rows = ev.evaluated()
    by_group = groups(rows)
    warm, new = by_group["warm"], by_group["new"]
    curve, buckets = [], []
    for lo, hi in WARMUP_BUCKETS:
        bucket = [r for r in rows if lo <= r.labels_before <= hi]
        if len(bucket) >= 30:
            buckets.append(bucket)
            gen = headroom(bucket, parts=())  # per bucket no fits of the true parts, only the labels' best
            curve.append({"labels_before": [lo, hi], **group_summary(bucket),
                          "auc_generator": gen and gen["auc_generator"],
                          "logloss_generator": gen and gen["logloss_generator"],
                          "auc_offline_with_personal_from_labels":
                              gen and gen.get("auc_offline_with_personal_from_labels"),
                          "gain_ci95": gain_interval(bucket)})
    anomaly: dict[str, Any] = {"orders": len(ev.orders)}
    scored_orders = [o for o in ev.orders if o["anomaly_score"] is not None]
    truth = np.asarray([o["truth"] for o in scored_orders], dtype=bool)
    if scored_orders and 0 < truth.sum() < len(truth):
        score = np.asarray([o["anomaly_score"] for o in scored_orders])
        flagged = np.asarray([o["anomalous"] for o in scored_orders], dtype=bool)
        anomaly.update({
            "anomalous_orders": int(truth.sum()),
            "auc": round(float(roc_auc_score(truth, score)), 4),
            "average_precision": round(float(average_precision_score(truth, score)), 4),
            "flagged": int(flagged.sum()),
            "precision": round(float((flagged & truth).sum() / max(flagged.sum(), 1)), 4),
            "recall": round(float((flagged & truth).sum() / truth.sum()), 4),
        })
    return {
        "seed": ev.seed,
        "workload": ev.workload,
        "warm": {"definition": f"scored when the customer had >= {WARM_LABELS} labeled events",
                 **group_summary(warm)},
        "new": {"definition": "scored when the customer had no labeled event yet",
                **group_summary(new)},
        "all": group_summary(rows),
        "cold_start_model_served": any(m.get("selection", {}).get("serve_for_cold_start", False)
                                       for m in ev.manifests.values()),
        "warmup_curve": curve,
        # The curve's start (no label yet) against its bulk (>= WARM_LABELS): the last bucket
        # alone is a thin tail (~2 % of the labels), too few to tell a rise from noise.
        "warmup_rise_new_to_warm_ci95": rise_interval(new, warm),
        "warmup_rise_ci95": rise_interval(buckets[0], buckets[-1]) if len(buckets) >= 2 else None,
        # how sure each difference is: 95 % intervals from resampling the customers
        "gain_ci95": {"warm": gain_interval(warm), "new": gain_interval(new), "all": gain_interval(rows)},
        "calibration_warm": {name: calibration(warm, attr) for name, attr in
                             (("offline", "p_offline"), ("online", "p_online"), ("river", "p_river"))},
        "order_anomaly": anomaly,
        "shared_drift_offsets": ev.drift_offsets,
        "headroom": {"warm": headroom(warm), "new": headroom(new), "all": headroom(rows)},
        "models": {k: {"version": v["version"], "metrics": v.get("metrics")}
                   for k, v in ev.manifests.items()},
    }
