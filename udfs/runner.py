"""The job's keyed wiring in plain Python: products as a dict, one state per customer, event-time
timers fired by a watermark. Benchmarks and the quality report run the job's exact per-event
logic through it, without Flink.

Like the job's source, the watermark trails the newest event time seen by the allowed
out-of-orderness; timers fire when the watermark passes them, before the next event. With
``drift_publish_every`` > 0 every resolved label also teaches its segment's shared correction
(:mod:`udfs.drift`), which applies from the next event on (in the job it travels through Kafka).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from udfs.customer import CustomerLogic, CustomerState, Outcome
from udfs.drift import DEFAULT_DECAY, InProcessDrift
from udfs.envelope import ChangeEvent, Heartbeat, parse_record
from udfs.features import Product


class LocalRunner:
    def __init__(self, logic: CustomerLogic, out_of_orderness_ms: int = 0,
                 drift_publish_every: int = 0, drift_decay: float = DEFAULT_DECAY):
        self.logic = logic
        self.out_of_orderness_ms = out_of_orderness_ms
        self.drift = InProcessDrift(drift_publish_every, drift_decay)
        self.states: dict[int, CustomerState] = {}
        self.products: dict[int, Product] = {}
        self.timers: list[tuple[int, int]] = []
        self.watermark = -(2**63)

    def process(self, topic: str, offset: int, ts_ms: int, key: bytes | None,
                value: bytes | None) -> Iterator[Outcome]:
        """One CDC record: the outcomes of the timers it lets fire, then its own."""
        rec = parse_record(topic, 0, offset, ts_ms, key, value)
        if isinstance(rec, Heartbeat):  # as in the job: only event time moves on
            yield from self.advance_watermark(rec.ts_ms - self.out_of_orderness_ms)
            return
        if not isinstance(rec, ChangeEvent):
            return
        yield from self.advance_watermark(rec.event_ts_ms - self.out_of_orderness_ms)
        if rec.table == "products":
            if rec.op == "d":
                self.products.pop(int(rec.row["id"]), None)
            else:
                self.products[int(rec.row["id"])] = Product.from_row(rec.row)
            return
        cid = int(rec.customer_id or 0)
        state = self.states.get(cid)
        if state is None:
            state = self.states[cid] = CustomerState()
        pid = rec.product_id
        out = self.logic.on_event(state, rec, self.products.get(pid) if pid is not None else None,
                                  now_ms=ts_ms, watermark_ms=self.watermark)
        if out.clear_state:
            del self.states[cid]
        for t in out.timers:
            heapq.heappush(self.timers, (t, cid))
        yield self._learn_drift(out)

    def advance_watermark(self, watermark_ms: int) -> Iterator[Outcome]:
        self.watermark = max(self.watermark, watermark_ms)
        while self.timers and self.timers[0][0] <= self.watermark:
            t, cid = heapq.heappop(self.timers)
            state = self.states.get(cid)
            if state is not None:
                out = self.logic.on_timer(state, t)
                if out.clear_state:
                    del self.states[cid]
                yield self._learn_drift(out)

    def _learn_drift(self, out: Outcome) -> Outcome:
        self.drift.learn(out.labels, self.logic.drift)
        return out

    def finish(self) -> Iterator[Outcome]:
        """End of input: the watermark jumps to the end of time, so every pending label resolves."""
        yield from self.advance_watermark(2**63 - 1)
