"""livefit scoring job (PyFlink DataStream API).

    changes topic --> changes-source --> shard-by-customer --> micro-batch (JVM) -----------------+
                                         (products: every shard)                                  v
    control topic --> control-source --> parse-control ---------------------------------> score-and-learn
                      (outside event time) (model choice, drift)  |  broadcast state     |  parse, score, learn
                                                                  |                      v
                                                                  |                split-outputs (JVM)
                                                                  v                      v
                                                           dead letters ----------> kafka-sink
                                                                                     ^   (livefit.scores / .labels /
                 drift examples, keyed by segment (JVM) --> learn-segment-drift -----+    .metrics / .deadletter, and
                 (split off score-and-learn's output)        (drift corrections)           livefit.control: read back above)

Debezium writes every table's changes into one topic in commit order (KafkaConfig.changes_topic).
They are sharded in the JVM (ShardRouter.java: customer id mod job.shards; a product change goes
to every shard, so each shard sees product rows and its customers' changes in commit order) and
handed to Python in micro-batches per shard (MicroBatcher.java), parsed once inside the keyed
operator: one Python stage, no pickled event crossing a shuffle, and PyFlink's fixed cost per
element paid per batch. What a batch produces leaves Python as one element too, split into
Kafka records in the JVM (OutputSplitter.java). Each customer's state is an entry of its shard's
map state; a shard's labels and expiries fall due through one event-time timer (udfs.batch).

Runs unchanged locally (``python jobs/score_job.py``) and under ``flink run -py``. The logic lives
in ``udfs/``; this file only wires operators, state, timers, metrics and connectors.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from pyflink.common import Configuration, Row, Types, WatermarkStrategy
from pyflink.common.completable_future import CompletableFuture
from pyflink.datastream import (
    CheckpointingMode,
    DataStream,
    KeyedBroadcastProcessFunction,
    KeyedProcessFunction,
    KeyedStream,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaSink,
    KafkaSource,
)
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import to_jarray

from livefit.checkpoints import latest_restore_point
from livefit.config import Config, load_config
from livefit.gc_tuning import freeze_startup_heap
from livefit.jars import job_jars
from models.registry import ModelError
from udfs.batch import (
    DueSchedule,
    OutputRecord,
    RawRecord,
    apply_changes,
    decode_batch,
    due_time_of,
    encode_outputs,
    reported_by_shard,
    round_due,
    shard_of,
)
from udfs.control import ModelChoice, parse_control
from udfs.customer import (
    Applied,
    CustomerLogic,
    CustomerState,
    Outcome,
    ScoringParams,
    change_key,
    reapply,
)
from udfs.drift import (
    DriftCorrection,
    Example,
    SegmentDrift,
    decay_for,
    decode_example_batch,
    encode_examples,
    example_of,
)
from udfs.envelope import (
    DEFAULT_MAX_CREATED_AFTER_COMMIT_MS,
    ChangeEvent,
    DeadLetter,
    Heartbeat,
    Tombstone,
    parse_record,
)
from udfs.features import Product
from udfs.online import sigmoid
from udfs.quality import RollingQuality, metrics_record
from udfs.replay import replay_order_key
from udfs.scoring import OfflineModel
from udfs.state_cache import CustomerStateCache

# Flink's own default up to parallelism 85, pinned: the shards' keys are chosen for it
# (ShardRouter.balancedKeys), and a savepoint restores only under the same value.
MAX_PARALLELISM = 128
# A customer's state is written to Flink state at the latest once this many changes and timers
# have been applied to it since the last write: a roll-back replays them (see _roll_back), so
# what is kept for that stays short (the raw changes, ~0.6 KB each).
MAX_UNWRITTEN_STEPS = 8
# A shard's due schedule is written to its "due" map with the customer states; also once this
# many of its entries wait, so that without checkpoints what waits stays bounded.
MAX_UNWRITTEN_DUE_ENTRIES = 4096

# Where livefit's packages (udfs, models, livefit, jobs) live: the repository, or site-packages.
CODE_ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger("livefit.job")

# Row(topic, partition, offset, timestamp, key, value) from livefit.flink.RawRecordDeserializer
RAW_RECORD = Types.ROW_NAMED(
    ["topic", "partition", "offset", "timestamp", "key", "value"],
    [Types.STRING(), Types.INT(), Types.LONG(), Types.LONG(),
     Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE())],
)
# Row(topic, key, value) for livefit.flink.TopicKeyValueSerializer
KAFKA_OUT = Types.ROW_NAMED(
    ["topic", "key", "value"],
    [Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE())],
)
DEAD_LETTERS = OutputTag("dead-letters", KAFKA_OUT)
# The shared per-segment drift learner gets, per scoring call and segment, one record of what
# the call's labels teach it (udfs.drift.encode_examples), keyed by segment. It travels with the
# Kafka records out of score-and-learn under this route, which no Kafka topic can be named (a
# colon), and the JVM picks it out before the sink. Not a side output: in thread mode PyFlink 2.3
# drops side outputs yielded from on_timer into the main output converter, and most labels
# resolve in on_timer. Not one element per label: each is a call into Python, a state write and
# a counter call (the drift learner was 22 % of the job while a backlog's labels resolved). Nor
# one call per scoring call: the JVM collects a segment's records for flink.drift_examples_batch_ms
# (RecordBatcher.java) and the learner gets them as one element (at most this many records).
DRIFT_EXAMPLES_ROUTE = "livefit:segment-drift-examples"
DRIFT_BATCH_RECORDS = 1000
MODEL_CHOICE = MapStateDescriptor("model-choice", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
DRIFT = MapStateDescriptor("segment-drift", Types.STRING(), Types.PICKLED_BYTE_ARRAY())


def _dead_letter(topic: str, dl: DeadLetter) -> OutputRecord:
    return (topic, dl.key, dl.to_json())


def _dead_letter_row(topic: str, dl: DeadLetter) -> Row:
    return Row(*_dead_letter(topic, dl))


class ParseControl(ProcessFunction):
    """Raw records of the control topic -> model choices and drift corrections (main output,
    broadcast to every scoring task) and dead letters (side output)."""

    def __init__(self, deadletter_topic: str):
        self.deadletter_topic = deadletter_topic

    def open(self, runtime_context: RuntimeContext) -> None:
        self.dead = runtime_context.get_metrics_group().counter("events_dead_lettered")
        freeze_startup_heap()

    def process_element(self, value: Row, ctx: ProcessFunction.Context) -> Iterable[Any]:
        topic, partition, offset, key, raw = value[0], value[1], value[2], value[4], value[5]
        choice = parse_control(raw)
        if isinstance(choice, ModelChoice | DriftCorrection):
            yield choice
            return
        self.dead.inc()
        yield DEAD_LETTERS, _dead_letter_row(self.deadletter_topic,
                                             DeadLetter(choice, topic, partition, offset, key, raw))


class ValueMetric:
    """A current value as a Flink metric, pushed from Python: a counter moved by the change.

    Not a gauge: a PyFlink gauge is a callback from Flink's metrics thread into the interpreter,
    and in thread mode one such call crashed a TaskManager (SIGSEGV in take_gil, under
    MetricGauge.getValue) while the REST API was being read. Counters never call back.
    """

    def __init__(self, group: Any, name: str):
        self._counter = group.counter(name)
        self.value = 0

    def set(self, value: int) -> None:
        if value != self.value:
            self._counter.inc(value - self.value)
            self.value = value


class BatchCounters:
    """Counters whose increments are summed in Python and handed to Flink once per batch: each
    inc() is a call into the JVM (py-spy: 5 % of the scoring thread when made per outcome)."""

    def __init__(self, group: Any, *names: str):
        self._counters = {name: group.counter(name) for name in names}
        self.pending = dict.fromkeys(names, 0)

    def flush(self) -> None:
        for name, n in self.pending.items():
            if n:
                self._counters[name].inc(n)
                self.pending[name] = 0


def _subtask_index(runtime_context: RuntimeContext) -> int:
    """This subtask's index (-1 if unknown). In thread mode PyFlink 2.3's
    get_index_of_this_subtask() calls a Java method Flink 2 removed ('getIndexOfThisSubtask'):
    ask Flink 2's TaskInfo directly there."""
    try:
        return int(runtime_context.get_index_of_this_subtask())
    except Exception:  # noqa: BLE001 - fall back below
        pass
    try:
        return int(runtime_context._runtime_context.getTaskInfo().getIndexOfThisSubtask())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - any failure here only loses a label on metrics records
        return -1


def _current_key(ctx: Any) -> Any:
    key = ctx.get_current_key()
    return key[0] if isinstance(key, Row) else key  # keyed in the JVM: Row(key) (see build)



class MapStateStore:
    """A Flink map state as the customer state cache's store (udfs.state_cache.StateStore).

    Thread mode: a flush is one ``putAll`` call into the JVM (a ``put`` per customer was 8 % of
    the scoring thread). Process mode buffers writes in Python until the bundle ends anyway, and
    its ``put_all`` (PyFlink 2.3) iterates the dict as if it were pairs: a put per entry there.
    """

    def __init__(self, state: Any):
        self.state = state
        self.get = state.get
        self.remove = state.remove
        embedded = type(state).__module__.startswith("pyflink.fn_execution.datastream.embedded")
        self.put_all = state.put_all if embedded else self._put_each

    def _put_each(self, entries: dict[Any, Any]) -> None:
        for key, value in entries.items():
            self.state.put(key, value)


class ScoreAndLearn(KeyedBroadcastProcessFunction):
    """Per customer: parse the raw change, features + warm-up history in keyed state, score,
    resolve labels, learn."""

    def __init__(self, model_dir: str, model_name: str, model_version: int, anomaly_name: str,
                 params: ScoringParams, topics: dict[str, str],
                 quality_window: int, metrics_every: int, shards: int, state_cache_customers: int,
                 drift_examples: bool, shard_keys: list[int],
                 max_created_after_commit_ms: int = DEFAULT_MAX_CREATED_AFTER_COMMIT_MS,
                 state_write_back: bool = True, metrics_min_interval_ms: int = 0):
        self.shards = shards
        # Changed customer states are written to Flink state at the shard's flush marker before
        # each checkpoint barrier (MicroBatcher.java), not at the end of every call; False: every
        # call writes the states it changed (the behaviour before session 27).
        self.state_write_back = state_write_back
        # The operator is keyed by each shard's key (ShardRouter.balancedKeys), not its number.
        self.shard_of_key = {key: shard for shard, key in enumerate(shard_keys)}
        self.max_created_after_commit_ms = max_created_after_commit_ms
        self.drift_examples = drift_examples  # hand labels to the drift learner (DRIFT_EXAMPLES_ROUTE)
        self.state_cache_customers = state_cache_customers
        self.model_dir = model_dir
        self.model_name = model_name
        self.model_version = model_version
        self.anomaly_name = anomaly_name
        self.params = params
        self.scores_topic = topics["scores"]
        self.deadletter_topic = topics["deadletter"]
        self.labels_topic = topics["labels"]
        self.metrics_topic = topics["metrics"]
        self.quality_window = quality_window
        self.metrics_every = metrics_every
        self.metrics_min_interval_ms = metrics_min_interval_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        # No Flink state TTL: inactive customers expire by an event-time timer the logic asks
        # for (CustomerLogic._schedule_expiry), which replays deterministically and also works
        # in thread mode, where PyFlink 2.3 cannot configure state TTL.
        # The state is livefit's own compact bytes (udfs.customer.encode_state), not a pickled
        # object: half the encode/decode time and 40 % fewer bytes. Still declared as pickled
        # bytes: PyFlink's thread mode turns a BYTE array state into a tuple of ints, while
        # pickling a bytes object is a copy; and a pickled CustomerState written by an older job
        # still restores (decode_state accepts it).
        # Keyed by shard: each customer's state is an entry of the shard's map; "due" says which
        # customers have labels or an expiry due when (udfs.batch); its keys, sorted, stay in
        # memory (DueSchedule), read from the map once per shard after open(), with the entries
        # added since and one timer per shard, at its earliest due time; the map is written
        # when the customer states are (_write_due). Not in a state of their own: rewriting
        # that on every batch was 7 % of the scoring thread at 1,000/s.
        # Decoded states stay in memory between batches (udfs.state_cache): this operator is the
        # only writer of its shards' states. A changed one is written back to Flink state when
        # its shard's flush marker arrives, which the JVM sends before every checkpoint barrier
        # (so every change before a barrier is in the snapshot), or sooner when the customer has
        # changed MAX_UNWRITTEN_STEPS times or too many customers wait (see _end_batch).
        # Encoding and writing each changed state at the end of every call had been 9-12 % of
        # the scoring thread: every interaction was written twice, scored and then learned.
        # Built anew in open(), so a restore never sees a decoded state from before it.
        self.states = CustomerStateCache(MapStateStore(
            runtime_context.get_map_state(
                MapStateDescriptor("customers", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))),
            self.state_cache_customers, shard_of=partial(shard_of, shards=self.shards))
        self.due = runtime_context.get_map_state(
            MapStateDescriptor("due", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))
        self.due_store = MapStateStore(self.due)
        self.schedules: dict[int, DueSchedule] = {}  # per shard (only this task changes "due")
        # The shard count each shard's state was written with: restored under another
        # job.shards, customers would be looked up in the wrong shard and silently start afresh.
        self.shard_count = runtime_context.get_state(ValueStateDescriptor("shard-count", Types.INT()))
        self.shards_checked: set[int] = set()
        self.logic = CustomerLogic.for_serving(self.model_dir, self.model_name, self.model_version,
                                               self.anomaly_name, self.params, warn=log.warning)
        model = self.logic.model
        self.subtask = _subtask_index(runtime_context)
        self.restored_checked = False
        # Every shard keeps the products as its own stream has them so far (ShardRouter.java:
        # product changes reach every shard in commit order with its customers' changes), in
        # keyed map state, mirrored into a plain dict per shard: a read of Flink state is a
        # blocking round trip to the JVM (measured: a third of the scoring stage's time when
        # products were read from it). After a restore each mirror fills lazily from the state.
        self.product_state = runtime_context.get_map_state(
            MapStateDescriptor("products", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))
        self.products: dict[int, dict[int, Product | None]] = {}  # shard -> product id -> row
        # Debezium's initial snapshot reads the tables one after the other: every interaction,
        # then every order. Its changes wait here, per shard, keyed by change_key (a re-sent one
        # replaces itself), until the watermark passes them (the source holds the watermark
        # until the snapshot's last record) or a later streamed change of the shard arrives;
        # then they apply in the order training replays history (udfs.replay.replay_order_key).
        self.held = runtime_context.get_map_state(
            MapStateDescriptor("snapshot-held", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))
        self.held_store = MapStateStore(self.held)
        self.held_from: dict[int, int | None] = {}  # shard -> earliest held event time (None: none)
        metrics = runtime_context.get_metrics_group()
        self.swaps = metrics.counter("model_swaps")
        self.swaps_refused = metrics.counter("model_swaps_refused")
        self.drift_applied = metrics.counter("drift_corrections_applied")
        self.customers = metrics.counter("customers_tracked")  # up on a new customer, down when gone
        # Rolling quality over the last labels this subtask resolved, of the offline model alone
        # and of offline + online, as metrics (x1000: some reporters read integers) and, every
        # metrics_every labels (at most once per metrics_min_interval_ms), as a record on the
        # metrics topic.
        self.quality = RollingQuality(self.quality_window)
        self.quality_published_ms = -(2**63)
        stats = {"logloss": "log_loss", "auc": "roc_auc", "calibration_error": "calibration_error"}
        self.quality_metrics = {(m, stat): ValueMetric(metrics, f"{name}_{m}_x1000")
                                for m in ("offline", "online") for name, stat in stats.items()}
        self.counts = BatchCounters(metrics, "labels_resolved", "orders_scored", "orders_anomalous",
                                    "events_parsed", "events_scored", "sgd_updates",
                                    "states_written_at_barriers", "barrier_write_back_us")
        self.last_latency_ms: int | None = None  # of the batch's newest score, set once per batch
        # What was applied to each customer since their state was last written (raw change or
        # timer, with the product, watermark, drift corrections and model it was applied with):
        # to rebuild their state if a later change of theirs fails half-way (see _roll_back).
        self.applied: dict[int, list[tuple[RawRecord | None, Product | None, int, dict[str, float],
                                           OfflineModel]]] = {}
        self.write_now: list[int] = []  # customers of the current call to write at its end
        self.examples: dict[str, list[Example]] = {}  # the call's labels, per segment, for the drift learner
        self.tombstones = metrics.counter("tombstones")
        self.dead = metrics.counter("events_dead_lettered")
        self.unknown_products = metrics.counter("unknown_products")
        self.duplicates = metrics.counter("duplicates_absorbed")
        self.customers_expired = metrics.counter("customers_expired")
        self.served_version = ValueMetric(metrics, "model_version")
        self.served_version.set(model.version)
        self.score_latency = ValueMetric(metrics, "score_latency_ms")
        log.info("scoring with %s v%d", model.name, model.version)
        freeze_startup_heap()

    def _emit(self, outcome: Outcome) -> Iterable[OutputRecord]:
        counts = self.counts.pending
        if outcome.records:
            last = outcome.records[-1]
            self.last_latency_ms = last["scored_at"] - last["commit_ts"]
            counts["events_scored"] += len(outcome.records)
        for record in outcome.records:
            if record["kind"] == "order":
                counts["orders_scored"] += 1
                counts["orders_anomalous"] += bool(record["anomalous"])
            yield (self.scores_topic, str(record["customer_id"]).encode(), orjson.dumps(record))
        for label in outcome.labels:
            yield (self.labels_topic, str(label["customer_id"]).encode(), orjson.dumps(label))
            yield from self._track_quality(label)
            if self.drift_examples:
                self.examples.setdefault(label["segment"], []).append(example_of(label))
        counts["labels_resolved"] += len(outcome.labels)
        counts["sgd_updates"] += outcome.learned

    def _outputs(self, records: Iterable[OutputRecord]) -> Iterable[bytes]:
        """What one call produced, and the drift learner's examples from its labels, as the one
        element that leaves Python (split in the JVM: OutputSplitter.java)."""
        outputs = list(records)
        for segment, examples in self.examples.items():
            outputs.append((DRIFT_EXAMPLES_ROUTE, segment.encode(), encode_examples(examples)))
        self.examples.clear()
        if outputs:
            yield encode_outputs(outputs)

    def _end_batch(self, shard: int, marker: bool = False) -> None:
        """Once per batch, timer call or flush marker of ``shard`` (the current key): counts to
        Flink metrics, and changed states of the shard to Flink state: all of them at the marker
        (or in every call, without write-back), else those of customers changed
        MAX_UNWRITTEN_STEPS times (what a roll-back replays stays short), and all of the shard's
        while more customers than the state cache holds wait (memory stays bounded)."""
        states = self.states
        if marker or not self.state_write_back or states.changed > self.state_cache_customers:
            started = time.perf_counter()
            written = states.flush(shard)
            self._write_due(shard)
            if marker:
                # Operators see what the write-back before each barrier holds the thread up: the
                # scores of the changes behind it wait that long (~60-120 us per state measured).
                self.counts.pending["states_written_at_barriers"] += len(written)
                self.counts.pending["barrier_write_back_us"] += round((time.perf_counter() - started) * 1e6)
        elif self.write_now:
            written = states.flush(shard, only=self.write_now)
        else:
            written = []
        for cid in written:
            self.applied.pop(cid, None)
        self.write_now.clear()
        self.counts.flush()
        if self.last_latency_ms is not None:
            self.score_latency.set(self.last_latency_ms)
            self.last_latency_ms = None

    def _track_quality(self, label: dict[str, Any]) -> Iterable[OutputRecord]:
        y = label["label"]
        self.quality.add("offline", sigmoid(label["offline_logit"]), y)
        self.quality.add("online", label["p_online"], y)
        if self.quality.seen["online"] % self.metrics_every == 0:
            now_ms = int(time.time() * 1000)
            if now_ms - self.quality_published_ms < self.metrics_min_interval_ms:
                return
            self.quality_published_ms = now_ms
            summary = self.quality.summary()
            for (m, stat), metric in self.quality_metrics.items():
                metric.set(int((summary.get(m, {}).get(stat) or 0.0) * 1000))
            record = metrics_record(summary, self.subtask, label["model"], now_ms)
            yield (self.metrics_topic, f"subtask-{self.subtask}".encode(), orjson.dumps(record))

    def _use_model(self, choice: ModelChoice) -> bool:
        """Swap the offline model between two events; refuse anything that does not verify."""
        current = self.logic.model
        if (choice.model, choice.version) == (current.name, current.version):
            return True
        try:
            if choice.model != self.model_name:
                raise ModelError(f"this job serves '{self.model_name}', not '{choice.model}'")
            model = OfflineModel.load(self.model_dir, choice.model, choice.version)
        except ModelError as exc:
            self.swaps_refused.inc()
            log.error("model swap to %s v%d refused, keeping v%d: %s", choice.model, choice.version,
                      current.version, exc)
            return False
        self.logic.model = model
        self.served_version.set(model.version)
        self.swaps.inc()
        log.warning("model swapped: %s v%d -> v%d", model.name, current.version, model.version)
        return True

    def process_element(self, value: bytes, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext
                        ) -> Iterable[bytes]:
        """One micro-batch: the raw changes of this shard's customers, in arrival order. What it
        produces leaves Python as one element (split in the JVM: OutputSplitter.java). An empty
        batch is the shard's flush marker: a checkpoint barrier follows."""
        if not value:
            self._end_batch(self._shard(ctx), marker=True)
            return ()
        return self._outputs(self._process_batch(value, ctx))

    def _process_batch(self, value: bytes, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext
                       ) -> Iterable[OutputRecord]:
        shard = self._shard(ctx)
        try:
            batch = decode_batch(value)
        except ValueError as exc:  # a framing bug, not bad input: keep the bytes, say where
            self.dead.inc()
            yield _dead_letter(self.deadletter_topic, DeadLetter(
                f"micro-batch of shard {shard} unreadable: {exc}", "", -1, -1, None, value))
            return
        if not self.restored_checked:  # after a restore: the model chosen and drift learned before it
            self.restored_checked = True
            chosen = ctx.get_broadcast_state(MODEL_CHOICE).get("current")
            if chosen is not None:
                self._use_model(chosen)
            self.logic.drift = {**self.logic.drift, **{
                segment: correction.offset for segment, correction in ctx.get_broadcast_state(DRIFT).items()}}
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        due: dict[int, list[int]] = {}  # due time -> customers, registered once per batch
        products = self.products.setdefault(shard, {})
        held_from = self._held_from(shard)
        hold: dict[int, tuple[tuple[int, int, int], RawRecord]] = {}
        for raw in batch:
            rec = parse_record(*raw, max_created_after_commit_ms=self.max_created_after_commit_ms)
            if isinstance(rec, ChangeEvent):
                if rec.snapshot and rec.event_ts_ms > watermark:
                    hold[change_key(rec)] = (replay_order_key(rec), raw)
                    continue
                if held_from is not None and held_from <= rec.event_ts_ms:
                    # A streamed change after the snapshot: the snapshot's earlier changes first.
                    yield from self._release(shard, rec.event_ts_ms, products, watermark, due, timers)
                    held_from = self.held_from[shard]
            yield from self._apply(rec, raw, shard, products, watermark, due)
        self._end_batch(shard)
        if hold:
            self.held_store.put_all(hold)
            first_held = min(key[0] for key, _ in hold.values())
            if held_from is None or first_held < held_from:
                self.held_from[shard] = first_held
                timers.register_event_time_timer(first_held)
        self._schedule_due(shard, due, timers)

    def _apply(self, rec: ChangeEvent | DeadLetter | Tombstone | Heartbeat, raw: RawRecord, shard: int,
               products: dict[int, Product | None], watermark: int, due: dict[int, list[int]]
               ) -> Iterable[OutputRecord]:
        """One parsed change of this shard: a product to its products, a customer's change
        scored (and learned from), anything unusable dead-lettered."""
        if isinstance(rec, Tombstone):
            self.tombstones.inc()  # handled: the delete before it carried the row
            return
        if isinstance(rec, Heartbeat):  # ShardRouter drops them; its time did its work at the source
            return
        if isinstance(rec, ChangeEvent) and rec.table == "products":
            try:
                self._apply_product(rec, products)
                self.counts.pending["events_parsed"] += shard == 0  # every shard applies it; one counts it
                return
            except Exception as exc:  # the validator let through a row Product cannot take
                rec = DeadLetter(f"product change not applied: {type(exc).__name__}: {exc}"[:500],
                                 raw[0], raw[1], raw[2], raw[4], raw[5])
        if isinstance(rec, ChangeEvent) and (rec.customer_id is None
                                             or shard_of(rec.customer_id, self.shards) != shard):
            # The JVM-side shard (CustomerKeyAssigner.java) follows the parser's rules; if
            # they ever disagree the event must not touch another shard's state.
            why = (f"a change of table {rec.table!r} on customer topic {raw[0]!r}"
                   if rec.customer_id is None else
                   f"routed to shard {shard} but customer {rec.customer_id} belongs to shard "
                   f"{shard_of(rec.customer_id, self.shards)}")
            rec = DeadLetter(why, raw[0], raw[1], raw[2], raw[4], raw[5])
        if isinstance(rec, DeadLetter):
            if reported_by_shard(shard, raw[0], raw[5]):
                self.dead.inc()
                yield _dead_letter(self.deadletter_topic, rec)
            return
        self.counts.pending["events_parsed"] += 1
        yield from self._score(rec, raw, products, watermark, due)

    def _held_from(self, shard: int) -> int | None:
        """The earliest event time among the shard's held snapshot changes (read from state
        once per shard after open())."""
        if shard not in self.held_from:
            self.held_from[shard] = (None if self.held.is_empty()
                                     else min(key[0] for key, _ in self.held.values()))
        return self.held_from[shard]

    def _release(self, shard: int, until_ms: int, products: dict[int, Product | None], watermark: int,
                 due: dict[int, list[int]], timers: Any) -> Iterable[OutputRecord]:
        """The shard's held snapshot changes up to ``until_ms``, applied in replay order; a timer
        at the earliest of those left, whichever way this release came."""
        ready: list[tuple[tuple[int, int, int], int, RawRecord]] = []
        first_left = None
        for k, (order_key, raw) in list(self.held.items()):
            if order_key[0] <= until_ms:
                ready.append((order_key, k, raw))
            elif first_left is None or order_key[0] < first_left:
                first_left = order_key[0]
        self.held_from[shard] = first_left
        if first_left is not None:
            timers.register_event_time_timer(first_left)
        ready.sort(key=lambda entry: entry[0])
        for _, k, raw in ready:
            self.held.remove(k)
            rec = parse_record(*raw, max_created_after_commit_ms=self.max_created_after_commit_ms)
            yield from self._apply(rec, raw, shard, products, watermark, due)

    def _schedule_due(self, shard: int, due: dict[int, list[int]], timers: Any) -> None:
        """Add the customers' new due times to the shard's schedule; its one timer at the earliest."""
        if not due:
            return
        schedule = self._schedule(shard)  # read from the map before these entries
        for t, customers in due.items():
            schedule.add(t, customers, self.due.get)
        if not self.state_write_back or schedule.pending() > MAX_UNWRITTEN_DUE_ENTRIES:
            self._write_due(shard)
        first = schedule.next_timer()
        if first is not None:
            timers.register_event_time_timer(first)

    def _score(self, value: ChangeEvent, raw: RawRecord, products: dict[int, Product | None],
               watermark: int, due: dict[int, list[int]]) -> Iterable[OutputRecord]:
        cid = value.customer_id
        assert cid is not None  # process_element dead-letters changes without a customer
        try:
            pid = value.product_id
            product = self._product(pid, products) if pid is not None else None
            if pid is not None and product is None and value.table != "customers":
                self.unknown_products.inc()
            known = self.states.get(cid)
            state = CustomerState() if known is None else known
            outcome = self.logic.on_event(state, value, product, watermark_ms=watermark)
        except Exception as exc:  # one bad event must not stop the job: dead-letter it, as read
            self._roll_back(cid)  # maybe half-changed
            self.dead.inc()
            dl = DeadLetter(f"scoring failed: {type(exc).__name__}: {exc}"[:500],
                            raw[0], raw[1], raw[2], raw[4], raw[5])
            yield _dead_letter(self.deadletter_topic, dl)
            return
        self._applied(cid, raw, product, watermark)
        if outcome.duplicate:
            self.duplicates.inc()
            if known is not None:
                self.states.put(cid, state)  # its count of duplicates absorbed
            return
        if outcome.clear_state:
            self.states.remove(cid)
            if known is not None:
                self.customers.dec()
        else:
            self.states.put(cid, state)
            if known is None:
                self.customers.inc()
        for ts in outcome.timers:
            due.setdefault(round_due(ts), []).append(cid)
        yield from self._emit(outcome)

    def _applied(self, cid: int, raw: RawRecord | None, product: Product | None, at_ms: int) -> None:
        """Remember a change (``raw``) or a timer (None, at ``at_ms``) applied to the customer
        since their state was last written, with what it was applied with."""
        steps = self.applied.setdefault(cid, [])
        steps.append((raw, product, at_ms, self.logic.drift, self.logic.model))
        if len(steps) >= MAX_UNWRITTEN_STEPS:  # >=: a customer with nothing to write keeps asking
            self.write_now.append(cid)

    def _roll_back(self, cid: int) -> None:
        """The customer's state as it was before the change that failed: as last written, with
        what was applied to them since applied again."""
        self.states.forget(cid)
        done = self.applied.get(cid)
        if not done:
            return
        limit = self.max_created_after_commit_ms

        def change(raw: RawRecord) -> ChangeEvent:
            rec = parse_record(*raw, max_created_after_commit_ms=limit)
            assert isinstance(rec, ChangeEvent)  # it was one when applied, and its bytes are the same
            return rec

        steps = [Applied(None if raw is None else change(raw), product, at_ms, drift, model)
                 for raw, product, at_ms, drift, model in done]
        state = reapply(self.logic, self.states.get(cid), steps)
        if state is None:
            self.states.remove(cid)
        else:
            self.states.put(cid, state)

    def _shard(self, ctx: Any) -> int:
        """The shard this call is for (the current key), its state checked, on the shard's first
        call, to have been written under this job's shard count: by a batch, a flush marker or a
        timer, whichever comes first after a restore (heartbeats alone move event time, so the
        restored timers of another count's shards may fire before any change arrives)."""
        key = int(_current_key(ctx))
        shard = self.shard_of_key.get(key)
        if shard is not None and shard in self.shards_checked:
            return shard
        stored = self.shard_count.value()
        if shard is None or (stored is not None and stored != self.shards):
            written = f"job.shards={stored}" if stored is not None else "another job.shards"
            raise ValueError(
                f"this job runs with job.shards={self.shards} but its restored state was written "
                f"with {written}: customers would be looked up in the wrong shard. Restore with "
                f"{written}, or start without restoring to rebuild the state from the CDC topics")
        if stored is None:
            self.shard_count.update(self.shards)
        self.shards_checked.add(shard)
        return shard

    def _write_due(self, shard: int) -> None:
        """The shard's due schedule, as changed since last written, to its "due" map (the
        current key is the shard): with its customers' states, so a snapshot has both as of the
        same change (written entry by entry after every call, it had been ~2 % of the thread)."""
        schedule = self.schedules.get(shard)
        if schedule is not None:
            apply_changes(schedule, self.due_store)

    def _schedule(self, shard: int) -> DueSchedule:
        schedule = self.schedules.get(shard)
        if schedule is None:
            schedule = self.schedules[shard] = DueSchedule.of(self.due.keys())
        return schedule

    def _product(self, pid: int, products: dict[int, Product | None]) -> Product | None:
        """The product as this shard's stream has it (the current key is the shard)."""
        if pid in products:
            return products[pid]
        product = self.product_state.get(pid)
        if product is not None:  # unknown ids are not remembered: bad input must not grow this
            products[pid] = product
        return product

    def _apply_product(self, change: ChangeEvent, products: dict[int, Product | None]) -> None:
        """A product change, to this shard's products (the current key is the shard)."""
        pid = int(change.row["id"])
        if change.op == "d":
            self.product_state.remove(pid)
            products[pid] = None
        else:
            product = Product.from_row(change.row)
            self.product_state.put(pid, product)
            products[pid] = product

    def process_broadcast_element(self, value: Any, ctx: KeyedBroadcastProcessFunction.Context) -> None:
        if isinstance(value, ModelChoice):
            if self._use_model(value):
                ctx.get_broadcast_state(MODEL_CHOICE).put("current", value)
            return
        if isinstance(value, DriftCorrection):
            ctx.get_broadcast_state(DRIFT).put(value.segment, value)
            # A new dict, not changed in place: what a customer's changes were applied with
            # stays as it was (self.applied keeps a reference for a roll-back).
            self.logic.drift = {**self.logic.drift, value.segment: value.offset}
            self.drift_applied.inc()

    def on_timer(self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext) -> Iterable[bytes]:
        """Everything of this shard the watermark has passed: labels whose horizon is over (as
        negatives) and customers past the inactivity TTL. One call resolves every due time up
        to the watermark; a shard has one timer, at its earliest due time (DueSchedule)."""
        return self._outputs(self._resolve_due(timestamp, ctx))

    def _resolve_due(self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext
                     ) -> Iterable[OutputRecord]:
        timers = ctx.timer_service()
        shard = self._shard(ctx)
        watermark = timers.current_watermark()
        held_from = self._held_from(shard)
        if held_from is not None and held_from <= watermark:
            due: dict[int, list[int]] = {}
            yield from self._release(shard, watermark, self.products.setdefault(shard, {}), watermark, due,
                                     timers)
            self._end_batch(shard)
            self._schedule_due(shard, due, timers)
        schedule = self._schedule(shard)
        until = max(timestamp, watermark)
        keys = schedule.pop_until(until)
        schedule.fired(until)
        latest: dict[int, int] = {}  # customer -> the latest of their due times handled here
        for key in keys:  # in order of due time
            t = due_time_of(key)
            for cid in schedule.take(key, self.due.get):
                latest[cid] = t
        first = schedule.next_timer()  # the shard's one timer, moved on to its next due time
        if first is not None:
            timers.register_event_time_timer(first)
        if not keys:
            return
        for cid, t in sorted(latest.items(), key=lambda item: item[1]):
            state = self.states.get(cid)
            if state is None:
                continue  # forgotten since (deleted or expired)
            outcome = self.logic.on_timer(state, t)
            if outcome.clear_state:
                self.states.remove(cid)
                self.customers.dec()
                self.customers_expired.inc()
            elif outcome.learned:
                self.states.put(cid, state)
            if outcome.clear_state or outcome.learned:
                self._applied(cid, None, None, t)
            yield from self._emit(outcome)
        self._end_batch(shard)


class LearnSegmentDrift(KeyedProcessFunction):
    """Per segment: learn the shared drift correction from every resolved label of its customers
    (handed over per scoring call, see DRIFT_EXAMPLES_ROUTE) and publish it to the control topic,
    from where every scoring task applies it (a feedback loop through Kafka: Flink 2 has no
    iterations, and the corrections are then on record)."""

    def __init__(self, control_topic: str, deadletter_topic: str, publish_every: int, memory_labels: int):
        self.control_topic = control_topic
        self.deadletter_topic = deadletter_topic
        self.publish_every = publish_every
        self.decay = decay_for(memory_labels)

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("drift", Types.PICKLED_BYTE_ARRAY()))
        # Each segment's learner, as last written to its state: this task is the only writer,
        # so reading the state back on every label (a JVM call and an unpickle) is not needed.
        self.learners: dict[str, SegmentDrift] = {}
        metrics = runtime_context.get_metrics_group()
        self.learned = metrics.counter("drift_labels_learned")
        self.published = metrics.counter("drift_corrections_published")
        self.dead = metrics.counter("events_dead_lettered")
        freeze_startup_heap()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterable[Row]:
        """``value``: the segment's example records of the last few scoring calls, in order, in
        one blob (RecordBatcher.java, decode_outputs' framing)."""
        segment = str(_current_key(ctx))
        examples, unreadable = decode_example_batch(value[0], value[1], value[2])
        for bad in unreadable:
            self.dead.inc()
            yield _dead_letter_row(self.deadletter_topic, DeadLetter(
                f"segment {segment!r}: {bad.reason}", bad.topic, -1, -1, bad.key, bad.value))
        if not examples:
            return
        learner = self.learners.get(segment)
        if learner is None:
            learner = self.learners[segment] = self.state.value() or SegmentDrift.new(self.decay)
        correction = learner.learn_examples(segment, examples, self.publish_every)
        self.state.update(learner)
        self.learned.inc(len(examples))
        if correction is not None:
            self.published.inc()
            yield Row(self.control_topic, correction.segment.encode(),
                      orjson.dumps(correction.to_message()))


def kafka_source(cfg: Config, topic: str, name: str) -> KafkaSource:
    """A source of ``topic``, committing its offsets to the job's consumer group (so
    ``job.start_from = "committed"`` resumes every source); ``name`` tells its clients apart."""
    k = cfg.kafka
    starting = (KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
                if cfg.job.start_from == "committed" else KafkaOffsetsInitializer.earliest())
    builder = (KafkaSource.builder()
               .set_bootstrap_servers(k.bootstrap_servers)
               .set_topics(topic)
               .set_group_id(k.consumer_group)
               .set_client_id_prefix(f"{k.consumer_group}-{name}")
               .set_starting_offsets(starting))
    # kafka.source_fetch_max_wait_ms (Kafka's default, 500 ms, is a latency floor on Tansu);
    # kafka.java_properties may still override it.
    builder.set_property("fetch.max.wait.ms", str(k.source_fetch_max_wait_ms))
    for key, value in k.java_client_properties().items():
        builder.set_property(key, value)
    # Keep key, coordinates and raw bytes (tombstones included): see RawRecordDeserializer.java.
    builder._j_builder.setDeserializer(get_gateway().jvm.livefit.flink.RawRecordDeserializer())
    return builder.build()


def kafka_sink(cfg: Config) -> KafkaSink:
    k = cfg.kafka
    builder = KafkaSink.builder().set_bootstrap_servers(k.bootstrap_servers)
    if cfg.job.delivery_guarantee == "exactly_once":
        builder.set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
        builder.set_transactional_id_prefix(f"{k.consumer_group}-sink")
        # Above the longest checkpoint + restart, below the broker's transaction.max.timeout.ms.
        builder.set_property("transaction.timeout.ms", "900000")
    elif cfg.job.delivery_guarantee == "at_least_once":
        builder.set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
    else:
        raise ValueError(f"job.delivery_guarantee must be at_least_once or exactly_once, "
                         f"not {cfg.job.delivery_guarantee!r}")
    for name, value in k.java_sink_properties().items():
        builder.set_property(name, value)
    # One sink for every output topic, each record with its own key: see TopicKeyValueSerializer.
    builder._j_builder.setRecordSerializer(get_gateway().jvm.livefit.flink.TopicKeyValueSerializer())
    return builder.build()


def event_time_watermarks(cfg: Config) -> WatermarkStrategy:
    """Per-split watermarks on the change's own time (see ChangeEventTimeAssigner.java): a Python
    assigner would run after the source and lose the per-partition view, letting one partition's
    progress fire another's timers early. A partition with nothing to read goes idle by Flink's
    rule (its input activity clock stands still while the job is backpressured, so a partition
    with data waiting is not passed), or with ``job.source_idle_when_others_read`` also while the
    source reads its other partitions (QuietSplitIdleness.java; see the config for when that is
    unsafe). The control topic has a source of its own, outside event time (control_watermarks)."""
    jvm = get_gateway().jvm
    duration = jvm.java.time.Duration
    out_of_order = duration.ofMillis(cfg.job.max_out_of_orderness_ms)
    idleness = duration.ofMillis(cfg.job.source_idleness_ms)
    if cfg.job.source_idle_when_others_read:
        j_strategy = jvm.livefit.flink.QuietSplitIdleness.strategy(out_of_order, idleness)
    else:
        j_strategy = (jvm.org.apache.flink.api.common.eventtime.WatermarkStrategy
                      .forBoundedOutOfOrderness(out_of_order).withIdleness(idleness))
    assigner = jvm.livefit.flink.ChangeEventTimeAssigner(cfg.job.max_created_after_commit_ms)
    return WatermarkStrategy(j_strategy.withTimestampAssigner(assigner))


def control_watermarks() -> WatermarkStrategy:
    """The control topic's records carry the wall clock, not event time: its source is idle for
    good and never holds or moves the watermark (ControlTopicOutsideEventTime.java)."""
    return WatermarkStrategy(get_gateway().jvm.livefit.flink.ControlTopicOutsideEventTime.strategy())


def _by_topic(stream: DataStream, topics: list[str], keep: bool, name: str) -> DataStream:
    """Rows whose first field (the topic) is one of ``topics`` (``keep``) or is none of them,
    filtered in the JVM (livefit.flink.TopicFilter): no Python stage."""
    jvm = get_gateway().jvm
    j_topics = to_jarray(jvm.String, topics)
    return DataStream(stream._j_data_stream.filter(jvm.livefit.flink.TopicFilter(j_topics, keep))).name(name).uid(name)


def _keyed_in_jvm(stream: DataStream, j_key_assigner: Any, key_type: Any, value_type: Any,
                  name: str, batch: tuple[Any, ...] | None = None,
                  fan_out: bool = False) -> KeyedStream:
    """``stream`` keyed by a JVM map to Row(key, value), the shape PyFlink's key_by builds (see
    its DataStream.key_by), so the value reaches the keyed Python operator without a Python
    key-by stage in front of it; with ``fan_out`` the assigner is a flat map that may hand a
    value to several keys. With ``batch`` (a KeyedBatcher.java class, the step's name, max
    records, max ms, and any further arguments of its ``apply``) the values of each key are first
    collected into batches, still in the JVM."""
    j_stream = stream._j_data_stream
    j_with_key = j_stream.flatMap(j_key_assigner) if fan_out else j_stream.map(j_key_assigner)
    with_key = DataStream(j_with_key).name(name).uid(name)
    if batch is not None:
        j_batcher, batch_name, max_records, max_ms, *more = batch
        batched = j_batcher.apply(with_key._j_data_stream, max_records, max_ms, *more)
        with_key = DataStream(batched).name(batch_name).uid(batch_name)
    j_keyed = with_key._j_data_stream.keyBy(get_gateway().jvm.KeyByKeySelector(),
                                            Types.ROW([key_type]).get_java_type_info())
    return KeyedStream(j_keyed, value_type, with_key)


def build(env: StreamExecutionEnvironment, cfg: Config) -> None:
    """Add the livefit pipeline to ``env``."""
    j, k = cfg.job, cfg.kafka
    # One source per topic, each uid naming its topic: a savepoint of a job whose source read
    # other topics (one per table before session 14; changes and control together before
    # session 20) is refused at restore instead of restoring their splits into this source.
    changes_in = (env.from_source(kafka_source(cfg, k.changes_topic, "changes"), event_time_watermarks(cfg),
                                  "changes-source", RAW_RECORD).uid("changes-source"))
    control_in = (env.from_source(kafka_source(cfg, k.control_topic, "control"), control_watermarks(),
                                  "control-source", RAW_RECORD).uid("control-source"))
    jvm = get_gateway().jvm
    # Control messages: parsed in Python, broadcast to every scoring task.
    control = (control_in
               .process(ParseControl(k.deadletter_topic), output_type=Types.PICKLED_BYTE_ARRAY())
               .name("parse-control").uid("parse-control"))
    # Changes: sharded and micro-batched in the JVM, so the raw bytes of many changes go to the
    # keyed Python operator as one element; a product change goes to every shard.
    changes = _keyed_in_jvm(changes_in,
                            jvm.livefit.flink.ShardRouter(j.shards, MAX_PARALLELISM), Types.LONG(),
                            Types.PRIMITIVE_ARRAY(Types.BYTE()), "shard-by-customer",
                            batch=(jvm.livefit.flink.MicroBatcher, "micro-batch",
                                   cfg.flink.micro_batch_records, cfg.flink.micro_batch_ms,
                                   j.shards, MAX_PARALLELISM),  # + a flush marker per shard
                            fan_out=True)
    params = j.scoring_params()
    shard_keys = list(jvm.livefit.flink.ShardRouter.balancedKeys(j.shards, MAX_PARALLELISM))
    scores = (changes
              .connect(control.broadcast(MODEL_CHOICE, DRIFT))
              .process(ScoreAndLearn(str(Path(j.model_dir).resolve()), j.model_name, j.model_version,
                                     j.anomaly_model_name, params,
                                     {"scores": k.scores_topic, "deadletter": k.deadletter_topic,
                                      "labels": k.labels_topic, "metrics": k.metrics_topic},
                                     j.quality_window_labels, j.metrics_every_labels, j.shards,
                                     j.state_cache_customers, j.drift_publish_every_labels > 0,
                                     shard_keys,
                                     j.max_created_after_commit_ms, j.state_write_back,
                                     j.metrics_min_interval_ms),
                      output_type=Types.PRIMITIVE_ARRAY(Types.BYTE()))
              # A new uid with each state layout (per customer; per shard; per shard with its
              # products; per balanced shard key): a savepoint of an earlier layout fails to
              # restore loudly instead of starting every customer afresh.
              .name("score-and-learn").uid("score-and-learn-balanced"))
    # One element per Python call, split into Kafka records in the JVM, in a task of its own:
    # splitting, and serializing each record for the sink, then run on another core than the
    # scoring thread (0.25 s of CPU per 10 s at ~12,000 interactions/s).
    scores = DataStream(scores._j_data_stream.flatMap(jvm.livefit.flink.OutputSplitter())
                        .startNewChain()).name("split-outputs").uid("split-outputs")
    outputs = (_by_topic(scores, [DRIFT_EXAMPLES_ROUTE], False, "kafka-records")
               .union(control.get_side_output(DEAD_LETTERS)))
    if j.drift_publish_every_labels > 0:
        by_segment = _keyed_in_jvm(_by_topic(scores, [DRIFT_EXAMPLES_ROUTE], True, "drift-examples"),
                                   jvm.livefit.flink.RecordKeyAssigner(), Types.STRING(),
                                   KAFKA_OUT, "key-by-segment",
                                   batch=(jvm.livefit.flink.RecordBatcher, "batch-drift-examples",
                                          DRIFT_BATCH_RECORDS, cfg.flink.drift_examples_batch_ms))
        corrections = (by_segment
                       .process(LearnSegmentDrift(k.control_topic, k.deadletter_topic,
                                                  j.drift_publish_every_labels,
                                                  j.drift_memory_labels), output_type=KAFKA_OUT)
                       .name("learn-segment-drift").uid("learn-segment-drift"))
        outputs = outputs.union(corrections)
    outputs.sink_to(kafka_sink(cfg)).name("kafka-sink").uid("kafka-sink")


def python_and_loopback_settings(mode: str) -> dict[str, str]:
    """What any PyFlink job of livefit's needs in local execution: its Python workers in this
    interpreter (the venv), in Python execution ``mode``, and the embedded cluster's servers
    (REST, RPC, data) on loopback only. A remote cluster keeps its own addresses (its config
    file sets them)."""
    out = {"python.executable": sys.executable, "python.client.executable": sys.executable,
           "python.execution-mode": mode,
           "rest.bind-address": "127.0.0.1", "jobmanager.bind-host": "127.0.0.1",
           "taskmanager.bind-host": "127.0.0.1"}
    if mode == "thread":
        # The embedded interpreter must see the venv (else "No module named 'pemja'") and
        # livefit's own packages: PYTHONPATH entries do not run an editable install's .pth file,
        # so without the code root the job worked only when started from the repository.
        import site

        out["python.pythonpath"] = os.pathsep.join([*site.getsitepackages(), str(CODE_ROOT)])
    return out


def flink_settings(cfg: Config, checkpoint_dir: str | None,
                   restore_from: str | None = None) -> dict[str, str]:
    """The Flink configuration the job runs with, from livefit's configuration (one place, and
    testable without a JVM)."""
    f = cfg.flink
    out = {
        **python_and_loopback_settings(f.python_execution_mode),
        "python.fn-execution.bundle.size": str(f.bundle_size),
        "python.fn-execution.bundle.time": str(f.bundle_time_ms),
        "python.state.cache-size": str(f.python_state_cache_size),
        "state.backend.type": f.state_backend,
        "restart-strategy.type": "exponential-delay",
        # Aligned barriers (Flink's default, stated because correctness depends on it): the
        # scoring operator writes changed states at the flush markers that precede each barrier
        # on its input (MicroBatcher.java); an unaligned barrier would overtake them.
        "execution.checkpointing.unaligned.enabled": "false",
    }
    if f.restart_attempts > 0:
        out["restart-strategy.exponential-delay.attempts-before-reset-backoff"] = str(f.restart_attempts)
    if f.state_backend == "rocksdb":
        if f.rocksdb_timers not in ("rocksdb", "heap"):
            raise ValueError(f"flink.rocksdb_timers must be rocksdb or heap, not {f.rocksdb_timers!r}")
        out["execution.checkpointing.incremental"] = str(f.incremental_checkpoints).lower()
        out["state.backend.rocksdb.timer-service.factory"] = f.rocksdb_timers.upper()
        if f.rocksdb_bloom_bits_per_key > 0:
            out["state.backend.rocksdb.use-bloom-filter"] = "true"
            out["state.backend.rocksdb.bloom-filter.bits-per-key"] = str(f.rocksdb_bloom_bits_per_key)
        out["state.backend.rocksdb.memory.partitioned-index-filters"] = str(f.rocksdb_partitioned_index).lower()
        if f.rocksdb_local_dir:
            out["state.backend.rocksdb.localdir"] = str(Path(f.rocksdb_local_dir).resolve())
    if f.managed_memory_mb:
        out["taskmanager.memory.managed.size"] = f"{f.managed_memory_mb}m"
    if checkpoint_dir:
        out["execution.checkpointing.storage"] = "filesystem"
        out["execution.checkpointing.dir"] = Path(checkpoint_dir).resolve().as_uri()
        # Keep the latest checkpoints after a cancel or crash, so a restart can resume from them.
        out["execution.checkpointing.externalized-checkpoint-retention"] = "RETAIN_ON_CANCELLATION"
        out["execution.checkpointing.num-retained"] = "2"
    if restore_from:
        uri = restore_from if ":" in restore_from.split("/", 1)[0] else Path(restore_from).resolve().as_uri()
        out["execution.state-recovery.path"] = uri
    return out


def make_env(cfg: Config, checkpoint_dir: str | None, restore_from: str | None = None) -> StreamExecutionEnvironment:
    conf = Configuration()
    for key, value in flink_settings(cfg, checkpoint_dir, restore_from).items():
        conf.set_string(key, value)
    f = cfg.flink
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.add_jars(*[p.as_uri() for p in job_jars()])
    env.set_parallelism(cfg.job.parallelism)
    env.set_max_parallelism(MAX_PARALLELISM)
    env.set_buffer_timeout(f.buffer_timeout_ms)
    mode = (CheckpointingMode.EXACTLY_ONCE if cfg.job.delivery_guarantee == "exactly_once"
            else CheckpointingMode.AT_LEAST_ONCE)
    env.enable_checkpointing(cfg.job.checkpoint_interval_ms, mode)
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="livefit scoring job")
    parser.add_argument("--config", default="", help="livefit.toml (default: ./livefit.toml if present)")
    parser.add_argument("--bootstrap-servers", help="overrides kafka.bootstrap_servers")
    parser.add_argument("--model-dir", help="overrides job.model_dir")
    parser.add_argument("--parallelism", type=int, help="overrides job.parallelism")
    parser.add_argument("--checkpoint-dir", help="where checkpoints go (default: <run_dir>/checkpoints)")
    parser.add_argument("--savepoint-dir", help="where a graceful stop writes its savepoint "
                        "(default: <run_dir>/savepoints)")
    parser.add_argument("--restore", metavar="latest|PATH",
                        help="resume from a checkpoint or savepoint: 'latest' picks the newest "
                             "completed one under the checkpoint and savepoint dirs")
    parser.add_argument("--job-name", default="livefit-score")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = load_config(args.config)
    if args.bootstrap_servers:
        cfg.kafka.bootstrap_servers = args.bootstrap_servers
    if args.model_dir:
        cfg.job.model_dir = args.model_dir
    if args.parallelism:
        cfg.job.parallelism = args.parallelism
    cfg = cfg.resolved()
    # Local execution: Flink's own log (failovers, restarts) next to livefit's, not in site-packages.
    os.environ.setdefault("FLINK_LOG_DIR", str(cfg.run_dir / "logs" / "flink"))
    # Local execution: PyFlink would start a "loopback" gRPC worker pool in this process,
    # listening on every interface ([::]:0, hard-coded in its BeamFnLoopbackWorkerPoolServicer).
    # Thread mode never uses it; process mode then starts its Python workers as processes, as
    # a cluster does. PyFlink reads this variable in StreamExecutionEnvironment._open.
    os.environ.setdefault("_python_worker_execution_mode", "process")
    # Fail before submitting if the model cannot be served (missing, tampered, wrong features).
    model = OfflineModel.load_for_serving(cfg.job.model_dir, cfg.job.model_name, cfg.job.model_version,
                                          warn=lambda m: _announce(f"WARNING {m}"))
    log.info("model %s v%d from %s; Kafka %s", model.name, model.version, cfg.job.model_dir,
             cfg.kafka.bootstrap_servers)
    checkpoint_dir = args.checkpoint_dir or str(cfg.run_dir / "checkpoints")
    savepoint_dir = args.savepoint_dir or str(cfg.run_dir / "savepoints")
    restore_from = args.restore
    if restore_from == "latest":
        found = latest_restore_point(checkpoint_dir, savepoint_dir)
        if found is None:
            log.warning("no completed checkpoint or savepoint: starting without state")
        restore_from = str(found) if found else None
    if restore_from:
        log.info("restoring state and source offsets from %s", restore_from)
    env = make_env(cfg, checkpoint_dir, restore_from)
    build(env, cfg)
    run_until_stopped(env, args.job_name, savepoint_dir)


def _detached(env: StreamExecutionEnvironment) -> bool:
    """Submitted with `flink run -d` (a remote target, not attached)?"""
    jvm = get_gateway().jvm
    conf = env._j_stream_execution_environment.getConfiguration()
    options = jvm.org.apache.flink.configuration.DeploymentOptions
    target = str(conf.get(options.TARGET) or "local")
    return target != "local" and not bool(conf.get(options.ATTACHED))


def _announce(msg: str) -> None:
    # Operator-facing lifecycle lines go to stdout directly: after the job starts, Beam's worker
    # setup has been seen to swallow this process's logging output.
    print(f"[livefit-job] {msg}", flush=True)
    log.info(msg)


def run_until_stopped(env: StreamExecutionEnvironment, job_name: str, savepoint_dir: str) -> None:
    """Run the job; on SIGTERM or Ctrl-C stop it with a savepoint that ``--restore latest`` (or
    the printed path) resumes from. Under ``flink run -d`` the cluster owns the job instead and
    ``flink stop --savepointPath`` does the same."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    client = env.execute_async(job_name)
    _announce(f"job {job_name} submitted ({client.get_job_id()})")
    if _detached(env):  # `flink run -d`: the cluster owns the job now; this client is done
        _announce("detached: the cluster runs the job; stop it with `livefit stop` or `flink stop`")
        return
    result = client.get_job_execution_result()
    while not result.done():
        if not stop.wait(0.5):
            continue
        _announce(f"stopping with a savepoint in {savepoint_dir}")
        # PyFlink 2.3's JobClient.stop_with_savepoint calls a Java signature Flink 2.x no longer
        # has (it now takes a SavepointFormatType), so call the Java client directly.
        jvm = get_gateway().jvm
        saving = CompletableFuture(client._j_job_client.stopWithSavepoint(
            False, Path(savepoint_dir).resolve().as_uri(),
            jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL))
        deadline = time.monotonic() + 60
        while not saving.done() and time.monotonic() < deadline:
            time.sleep(0.2)
        if saving.done():
            path = saving.result()
            _announce(f"stopped with savepoint {path}; resume with --restore {path} (or --restore latest)")
        else:
            _announce("the savepoint did not complete in 60 s; cancelling (the latest checkpoint remains)")
            client.cancel()
        return
    try:
        result.result()  # raises if the job failed for good
    except Exception as failure:
        _announce(f"the job failed and stopped restarting (flink.restart_attempts); the cause: "
                  f"{root_cause(failure)} (Flink's log has the whole trace)")
        raise


def root_cause(failure: BaseException) -> str:
    """The innermost cause of a failure Flink reports through py4j (the last "Caused by:")."""
    causes = [line.strip() for line in str(failure).splitlines() if line.strip().startswith("Caused by:")]
    if causes:
        return causes[-1].removeprefix("Caused by:").strip()
    return (str(failure).splitlines() or [repr(failure)])[0]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
