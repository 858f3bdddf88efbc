"""The job's per-event work in a plain Python loop: no Flink, no Kafka.

``limit``: exactly what the job does per record (parse, product/customer state, features, offline
scores, online model, delayed labels with an event-time watermark and timers, order anomaly
scores, the shared per-segment drift learner, JSON out) through :class:`udfs.runner.LocalRunner`, minus what only Flink adds
(serialization between operators and into state, network, bundles).
``naive``: the same loop calling sklearn once per event (``predict_proba`` per interaction,
``score_samples`` per order), as most PyFlink examples do.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson

from livefit.gc_tuning import streaming_gc
from livefit.workload import Workload
from udfs.customer import CustomerLogic, encode_state
from udfs.online import logit
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


def naive_logic(logic: CustomerLogic) -> CustomerLogic:
    """The same logic and models, each model called through sklearn one event at a time."""
    def per_event(m: Any, cls: type) -> Any:
        return None if m is None else cls(m.estimator, m.manifest)
    return CustomerLogic(per_event(logic.model, SklearnPerEvent), logic.params,
                         per_event(logic.cold_model, SklearnPerEvent),
                         per_event(logic.anomaly_model, SklearnAnomalyPerEvent))


def run_loop(workload: Workload, logic: CustomerLogic, out_of_orderness_ms: int,
             max_interactions: int | None = None, drift_publish_every: int = 0,
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
            if max_interactions is not None and scored >= max_interactions:
                break
        seconds = time.perf_counter() - t0
    customers = len(runner.states)
    sizes = [len(encode_state(s)) for s in list(runner.states.values())[:2000]]
    if max_interactions is None:  # the labels still pending at the end, as the job resolves them
        for out in runner.finish():  # (the end of time also expires every customer)
            labels += len(out.labels)
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
