"""The job's per-event work in a plain Python loop: no Flink, no Kafka.

``limit``: exactly what the job does per record (parse, product/customer state, features, offline
scores, online model, delayed labels with an event-time watermark and timers, order anomaly
scores, the shared per-segment drift learner, JSON out) through :class:`udfs.runner.LocalRunner`, minus what only Flink adds
(serialization between operators and into state, network, bundles).
``naive``: the same loop with every model call made through sklearn, one event at a time, as most
PyFlink examples do: the offline model's ``predict_proba`` per interaction, the order forest's
``score_samples`` per order, and the per-customer online model an ``SGDClassifier`` asked
``predict_proba`` per interaction and taught by ``partial_fit`` per label.
``naive_scoring_only``: only the offline and anomaly models through sklearn, the online model
livefit's own (what this baseline was until session 27; still reported next to it).
Both naive loops run on :func:`customer_sample`: whole histories of a few customers, not the
workload's first interactions, whose mix of work is not the one the job is measured on.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import orjson
from sklearn.linear_model import SGDClassifier

from livefit.gc_tuning import streaming_gc
from livefit.workload import Workload
from udfs.customer import CustomerLogic, CustomerState, Outcome, encode_state
from udfs.envelope import ChangeEvent, parse_record
from udfs.features import Product
from udfs.online import logit, sigmoid
from udfs.runner import LocalRunner
from udfs.scoring import OfflineModel, OrderAnomalyModel


class SklearnPerEvent(OfflineModel):
    """The offline model called the common way: one sklearn call per event."""

    def logit_and_scaled(self, x: Any) -> tuple[float, np.ndarray]:
        p = float(self.estimator.predict_proba(np.asarray([x], dtype=np.float64))[0, 1])
        return logit(p), self.standardize(x)


class SklearnAnomalyPerEvent(OrderAnomalyModel):
    def anomaly_score_one(self, x: Any) -> float:
        return float(-self.estimator.score_samples(np.asarray([x], dtype=np.float64))[0])


_CLASSES = np.array([0, 1])


class SklearnOnlinePerEvent:
    """The per-customer online model the common way: an sklearn ``SGDClassifier`` on the scaled
    features and the offline logit, ``predict_proba`` per event and ``partial_fit`` per label (the
    ~700 us per row PLATFORM.md measured). The same calls at the same moments as livefit's
    residual (:class:`udfs.online.OnlineResidual`), so only their cost differs, not the work."""

    __slots__ = ("clf", "n_updates")

    def __init__(self) -> None:
        self.clf = SGDClassifier(loss="log_loss", alpha=1e-3, random_state=0)
        self.n_updates = 0

    def predict_proba_one(self, x: Any, offline_logit: float) -> float:
        if self.n_updates == 0:  # nothing learned yet: the offline model, as livefit serves it
            return sigmoid(offline_logit)
        return float(self.clf.predict_proba(np.append(x, offline_logit)[None, :])[0, 1])

    def learn_one(self, x: Any, offline_logit: float, y: int, *_priors: float) -> float:
        p = self.predict_proba_one(x, offline_logit)
        self.clf.partial_fit(np.append(x, offline_logit)[None, :], [y], classes=_CLASSES)
        self.n_updates += 1
        return p


class NaiveCustomerLogic(CustomerLogic):
    """livefit's per-event logic with each customer's online model an :class:`SklearnOnlinePerEvent`."""

    def on_event(self, state: CustomerState, ev: ChangeEvent, product: Product | None,
                 now_ms: int | None = None, watermark_ms: int | None = None) -> Outcome:
        if not isinstance(state.online, SklearnOnlinePerEvent):
            state.online = SklearnOnlinePerEvent()  # type: ignore[assignment]
        return super().on_event(state, ev, product, now_ms, watermark_ms)


def naive_logic(logic: CustomerLogic, online_through_sklearn: bool = True) -> CustomerLogic:
    """The same logic and models, each model called through sklearn one event at a time (with
    ``online_through_sklearn`` False, the online model stays livefit's own)."""
    def per_event(m: Any, cls: type) -> Any:
        return None if m is None else cls(m.estimator, m.manifest)
    make = NaiveCustomerLogic if online_through_sklearn else CustomerLogic
    return make(per_event(logic.model, SklearnPerEvent), logic.params,
                per_event(logic.cold_model, SklearnPerEvent),
                per_event(logic.anomaly_model, SklearnAnomalyPerEvent))


def customer_sample(workload: Workload, every: int) -> Workload:
    """The workload with only every ``every``-th customer's changes (customer id mod ``every``
    == 0), their whole histories, and every change that is no customer's (products, heartbeats):
    the same kind of work as the whole workload, over its whole time range, at 1/``every`` of
    its size. The naive baseline is too slow to run on all of it.

    Its first interactions would not do: early on few customers have a label learned yet, so the
    naive online model skips its sklearn call for most of them (39 % of the first 3,000 of a
    450k-event workload have one, against 85 % of all), and orders come more often (0.134 per
    interaction against 0.117), each a forest call of ~3 ms through sklearn.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    kept = []
    for offset, (topic, key, value, ts) in enumerate(workload.records):
        rec = parse_record(topic, 0, offset, ts, key, value)
        if isinstance(rec, ChangeEvent) and rec.customer_id is not None and rec.customer_id % every:
            continue
        kept.append((topic, key, value, ts))
    history = [e for e in workload.history if e.customer_id % every == 0]
    return dataclasses.replace(workload, records=kept, history=history,
                               interactions=sum(e.table == "interactions" for e in history))


def run_loop(workload: Workload, logic: CustomerLogic, out_of_orderness_ms: int,
             drift_publish_every: int = 0,
             features: dict[int, list[float]] | None = None) -> dict[str, Any]:
    """The work over ``workload`` in commit order, timed. ``features``, if given, gets each
    labelled interaction's features as scored (the reference the job is compared with)."""
    runner = LocalRunner(logic, out_of_orderness_ms, drift_publish_every)
    scored = orders = events = labels = positives = without_product = 0
    with streaming_gc():  # as the job's operators run (livefit.gc_tuning)
        t0 = time.perf_counter()
        for offset, (topic, key, value, ts) in enumerate(workload.records):
            events += 1
            for out in runner.process(topic, offset, ts, key, value):
                for r in out.records:
                    orjson.dumps(r)
                    if r["kind"] == "interaction":
                        scored += 1
                        without_product += not r["product_known"]
                    elif r["kind"] == "order":
                        orders += 1
                for label in out.labels:
                    orjson.dumps(label)
                    labels += 1
                    positives += label["label"]
                    if features is not None:
                        features[label["interaction_id"]] = label["features"]
        seconds = time.perf_counter() - t0
    customers = len(runner.states)
    sizes = [len(encode_state(s)) for s in list(runner.states.values())[:2000]
             if not isinstance(s.online, SklearnOnlinePerEvent)]  # livefit's layout only
    for out in runner.finish():  # the labels still pending at the end, as the job resolves them
        labels += len(out.labels)  # (the end of time also expires every customer)
        positives += sum(label["label"] for label in out.labels)
        if features is not None:
            features.update((label["interaction_id"], label["features"]) for label in out.labels)
    return {"events": events, "interactions_scored": scored, "seconds": round(seconds, 3),
            "eps": round(scored / seconds, 1), "input_events_per_s": round(events / seconds, 1),
            "orders_scored": orders, "scored_events_eps": round((scored + orders) / seconds, 1),
            "customers": customers, "labels": labels, "positives": positives,
            "scored_without_product": without_product,
            "state_bytes_per_customer_mean": round(sum(sizes) / max(len(sizes), 1)),
            "state_bytes_per_customer_max": max(sizes, default=0)}
