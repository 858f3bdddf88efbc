"""The job's per-event work in a plain Python loop: no Flink, no Kafka.

``limit``: exactly what the job does per record (parse, product/customer state, features, offline
score, online model, delayed labels with an event-time watermark and timers, JSON out), minus
what only Flink adds (serialization between operators and into state, network, bundles).
``naive``: the same loop calling sklearn's ``predict_proba`` once per event, as most PyFlink
examples do.
"""

from __future__ import annotations

import heapq
import json
import pickle
import time
from typing import Any

import numpy as np

from bench.workload import Workload
from udfs.customer import CustomerLogic, CustomerState, ScoringParams
from udfs.envelope import ChangeEvent, parse_record
from udfs.features import Product
from udfs.online import logit
from udfs.scoring import OfflineModel


class SklearnPerEvent(OfflineModel):
    """The offline model called the common way: one sklearn call per event."""

    def logit_one(self, x: Any) -> float:
        return logit(float(self.estimator.predict_proba(np.asarray([x], dtype=np.float64))[0, 1]))


def run_loop(workload: Workload, model: OfflineModel, params: ScoringParams,
             out_of_orderness_ms: int, max_interactions: int | None = None) -> dict[str, Any]:
    logic = CustomerLogic(model, params)
    states: dict[int, CustomerState] = {}
    products: dict[int, Product] = {}
    timers: list[tuple[int, int]] = []
    scored = events = 0
    t0 = time.perf_counter()
    for offset, (topic, key, value, ts) in enumerate(workload.records):
        events += 1
        rec = parse_record(topic, 0, offset, ts, key, value)
        if not isinstance(rec, ChangeEvent):
            continue
        watermark = ts - out_of_orderness_ms
        while timers and timers[0][0] <= watermark:
            t, cid = heapq.heappop(timers)
            for label in logic.on_timer(states[cid], t).labels:
                json.dumps(label, separators=(",", ":")).encode()
        if rec.table == "products":
            products[int(rec.row["id"])] = Product.from_row(rec.row)
            continue
        cid = int(rec.customer_id or 0)
        state = states.get(cid)
        if state is None:
            state = states[cid] = CustomerState()
        pid = rec.product_id
        out = logic.on_event(state, rec, products.get(pid) if pid is not None else None,
                             watermark_ms=watermark)
        for r in out.records:
            json.dumps(r, separators=(",", ":")).encode()
            scored += 1
        for label in out.labels:
            json.dumps(label, separators=(",", ":")).encode()
        for t in out.timers:
            heapq.heappush(timers, (t, cid))
        if max_interactions is not None and scored >= max_interactions:
            break
    seconds = time.perf_counter() - t0
    sizes = [len(pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL)) for s in list(states.values())[:2000]]
    return {"events": events, "interactions_scored": scored, "seconds": round(seconds, 3),
            "eps": round(scored / seconds, 1), "input_events_per_s": round(events / seconds, 1),
            "customers": len(states),
            "state_bytes_per_customer_mean": round(sum(sizes) / max(len(sizes), 1)),
            "state_bytes_per_customer_max": max(sizes, default=0)}
