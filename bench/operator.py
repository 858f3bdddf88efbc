"""The job's scoring operator (``jobs.score_job.ScoreAndLearn``) in this process, fed as the JVM
feeds it, with Flink's state, timers and metrics as plain dicts: what the operator's own
bookkeeping costs on top of the logic, apart from what Flink costs on top of the operator.

The in-process limit (:mod:`bench.inprocess`) runs only the logic. Between it and the job lie
two things: the operator's own Python (micro-batch framing, the state cache and its
write-back, the due schedule, emitting, routing checks, the roll-back log) and Flink (the JVM,
the calls into Python, serialization, the other tasks on the same cores). This stage runs the
first without the second, so the bench can say how much of the gap each one is.

The feed imitates the job's: each shard's records in micro-batches of what arrives in
``flink.micro_batch_ms`` at the job's measured rate, a product change to every shard
(ShardRouter.java), a watermark every 200 ms of that rate (Flink's default
``pipeline.auto-watermark-interval``) after the buffers are flushed (KeyedBatcher.java), timers
fired when the watermark passes them, and a flush marker per shard every checkpoint interval.
The drift learner's corrections are not fed back (the job's come through Kafka), so the scores'
drift offsets stay 0; labels and features do not depend on them.
"""

from __future__ import annotations

import heapq
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from livefit.config import Config
from livefit.gc_tuning import streaming_gc
from livefit.workload import Workload
from udfs.batch import encode_batch, shard_of
from udfs.envelope import ChangeEvent, Heartbeat, parse_record

WATERMARK_INTERVAL_MS = 200  # Flink's default pipeline.auto-watermark-interval (the job keeps it)


class CurrentKey:
    """Which key the operator is called under (Flink's current key)."""

    key: int = 0


class _MapState:
    def __init__(self, keyed: CurrentKey):
        self._keyed = keyed
        self._maps: dict[int, dict[Any, Any]] = defaultdict(dict)

    def _map(self) -> dict[Any, Any]:
        return self._maps[self._keyed.key]

    def get(self, key: Any) -> Any:
        return self._map().get(key)

    def put(self, key: Any, value: Any) -> None:
        self._map()[key] = value

    def remove(self, key: Any) -> None:
        self._map().pop(key, None)

    def is_empty(self) -> bool:
        return not self._map()

    def keys(self) -> list[Any]:
        return list(self._map())

    def values(self) -> list[Any]:
        return list(self._map().values())

    def items(self) -> list[tuple[Any, Any]]:
        return list(self._map().items())


class _ValueState:
    def __init__(self, keyed: CurrentKey):
        self._keyed = keyed
        self._values: dict[int, Any] = {}

    def value(self) -> Any:
        return self._values.get(self._keyed.key)

    def update(self, value: Any) -> None:
        self._values[self._keyed.key] = value


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n

    def dec(self, n: int = 1) -> None:
        self.count -= n


class DictRuntimeContext:
    def __init__(self, keyed: CurrentKey):
        self._keyed = keyed
        self.counters: dict[str, _Counter] = {}

    def get_map_state(self, descriptor: Any) -> _MapState:
        return _MapState(self._keyed)

    def get_state(self, descriptor: Any) -> _ValueState:
        return _ValueState(self._keyed)

    def get_metrics_group(self) -> DictRuntimeContext:
        return self

    def counter(self, name: str) -> _Counter:
        return self.counters.setdefault(name, _Counter())

    def get_index_of_this_subtask(self) -> int:
        return 0


class DictContext:
    """The operator's ``ctx``: current key, event-time timers and the watermark, and the
    broadcast state (empty: no model swap, no drift correction)."""

    def __init__(self, keyed: CurrentKey):
        self._keyed = keyed
        self.watermark = -(2**63)
        self.timers: list[tuple[int, int]] = []  # (time, key), a heap
        self._registered: set[tuple[int, int]] = set()  # Flink keeps one timer per key and time

    def get_current_key(self) -> int:
        return self._keyed.key

    def timer_service(self) -> DictContext:
        return self

    def current_watermark(self) -> int:
        return self.watermark

    def register_event_time_timer(self, t: int) -> None:
        timer = (t, self._keyed.key)
        if timer not in self._registered:
            self._registered.add(timer)
            heapq.heappush(self.timers, timer)

    def pop_due(self) -> tuple[int, int] | None:
        if self.timers and self.timers[0][0] <= self.watermark:
            timer = heapq.heappop(self.timers)
            self._registered.discard(timer)
            return timer
        return None

    def get_broadcast_state(self, descriptor: Any) -> dict[Any, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class Feed:
    """How the JVM hands ``workload`` to the operator at ``records_per_s``."""

    workload: Workload
    records_per_s: float
    shard_keys: list[int]
    records_per_batch: int
    records_per_watermark: int
    records_per_checkpoint: int

    @classmethod
    def of(cls, workload: Workload, cfg: Config, records_per_s: float) -> Feed:
        per = lambda ms: max(1, round(records_per_s * ms / 1000))  # noqa: E731 - records in ms
        # Any distinct keys do: the operator maps each back to its shard (the job's are
        # ShardRouter.balancedKeys, chosen for Flink's key groups, which do not exist here).
        return cls(workload, records_per_s, list(range(cfg.job.shards)),
                   min(cfg.flink.micro_batch_records, per(cfg.flink.micro_batch_ms)),  # whichever cuts first
                   per(WATERMARK_INTERVAL_MS), per(cfg.job.checkpoint_interval_ms))

    def calls(self, cfg: Config, chunk_records: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
        """The operator's calls in order, in chunks (made between the timed parts, and not all
        held at once): ("batch", shard key, framed records), ("watermark", t), or ("marker",),
        a flush marker for every shard."""
        shards = len(self.shard_keys)
        calls: list[tuple[Any, ...]] = []
        buffers: dict[int, list[Any]] = defaultdict(list)
        newest = -(2**63)

        def flush() -> None:
            for s in sorted(buffers):
                calls.append(("batch", self.shard_keys[s], encode_batch(buffers[s])))
            buffers.clear()

        for n, (topic, key, value, ts) in enumerate(self.workload.records, start=1):
            raw = (topic, 0, n - 1, ts, key, value)
            rec = parse_record(*raw, max_created_after_commit_ms=cfg.job.max_created_after_commit_ms)
            if isinstance(rec, Heartbeat):  # only its time goes on (ShardRouter drops it)
                newest = max(newest, rec.ts_ms)
            elif isinstance(rec, ChangeEvent):
                newest = max(newest, rec.event_ts_ms)
                if rec.table == "products":
                    for s in range(shards):
                        buffers[s].append(raw)
                else:
                    buffers[shard_of(rec.customer_id or 0, shards)].append(raw)
            else:
                buffers[0].append(raw)
            if n % self.records_per_batch == 0:
                flush()
            if n % self.records_per_watermark == 0 or isinstance(rec, Heartbeat):
                flush()  # nothing is held across a watermark
                calls.append(("watermark", newest - cfg.job.max_out_of_orderness_ms - 1))
            if n % self.records_per_checkpoint == 0:
                flush()
                calls.append(("marker",))
            if n % chunk_records == 0:
                yield calls
                calls = []
        flush()
        calls.append(("watermark", 2**62))  # end of input: every timer fires
        yield calls


def make_operator(cfg: Config, model_dir: str, shard_keys: list[int]) -> Any:
    """``jobs.score_job.ScoreAndLearn`` as the job builds it from ``cfg``, keyed by ``shard_keys``
    (not opened)."""
    from jobs.score_job import ScoreAndLearn

    j, k = cfg.job, cfg.kafka
    return ScoreAndLearn(
        model_dir, j.model_name, j.model_version, j.anomaly_model_name, j.scoring_params(),
        {"scores": k.scores_topic, "deadletter": k.deadletter_topic, "labels": k.labels_topic,
         "metrics": k.metrics_topic},
        j.quality_window_labels, j.metrics_every_labels, j.shards, j.state_cache_customers,
        j.drift_publish_every_labels > 0, shard_keys, j.max_created_after_commit_ms,
        j.state_write_back, j.metrics_min_interval_ms)


def run_operator(cfg: Config, model_dir: str, the_feed: Feed,
                 outputs: list[bytes] | None = None) -> dict[str, Any]:
    """ScoreAndLearn over ``the_feed``, timed (``outputs``, if given, gets what it yields)."""
    keyed = CurrentKey()
    operator = make_operator(cfg, model_dir, the_feed.shard_keys)
    runtime = DictRuntimeContext(keyed)
    ctx = DictContext(keyed)
    out_bytes = 0

    def take(produced: Iterable[bytes]) -> None:
        nonlocal out_bytes
        for element in produced:
            out_bytes += len(element)
            if outputs is not None:
                outputs.append(element)

    seconds = 0.0
    # As the job's operators run; open() around it too: it freezes the heap for good, as a job
    # does at its start, which this process must not keep afterwards.
    with streaming_gc():
        operator.open(runtime)
        for chunk in the_feed.calls(cfg):
            t0 = time.perf_counter()
            for call in chunk:
                if call[0] == "batch":
                    keyed.key = call[1]
                    take(operator.process_element(call[2], ctx))
                elif call[0] == "marker":
                    for key in the_feed.shard_keys:
                        keyed.key = key
                        take(operator.process_element(b"", ctx))
                else:
                    ctx.watermark = call[1]
                    while (timer := ctx.pop_due()) is not None:
                        keyed.key = timer[1]
                        take(operator.on_timer(timer[0], ctx))
            seconds += time.perf_counter() - t0
    counts = {name: c.count for name, c in runtime.counters.items()}
    return {"eps": round(the_feed.workload.interactions / seconds, 1), "seconds": round(seconds, 3),
            "fed_at_records_per_s": round(the_feed.records_per_s),
            "records_per_batch": the_feed.records_per_batch,
            "labels": counts["labels_resolved"], "events_scored": counts["events_scored"],
            "dead_lettered": counts["events_dead_lettered"], "output_mb": round(out_bytes / 1e6, 1)}
