"""The JVM shards changes before Python parses them (ShardRouter.java): its rule must give every
valid change the customer the Python parser gives it, or the keyed operator dead-letters the
change as misrouted (never applies it to another customer's state); and it must send a product
change to every shard exactly when Python expects it there (one dead letter per bad record)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobs.score_job import MAX_PARALLELISM
from tests.fuzz import fuzz_payloads
from tests.jobs.raw import raw_record, shards_of
from udfs.envelope import ChangeEvent, parse_record


@pytest.fixture(scope="module")
def java_customer_id(jvm) -> Any:
    assigner = jvm.livefit.flink.ShardRouter
    return lambda topic, value: int(assigner.customerId(topic, value))


def _customer_changes() -> list[tuple[str, bytes | None]]:
    base = {"before": None, "source": {"table": "customers", "lsn": 5, "ts_ms": 1795318293194}}
    row = {"id": 42, "segment": "casual", "created_at": "2026-11-22T04:00:00Z"}
    return [
        ("shop.public.customers", json.dumps({**base, "op": "c", "after": row}).encode()),
        ("shop.public.customers", json.dumps({**base, "op": "d", "before": row, "after": None}).encode()),
        # schemas.enable=true wraps the envelope in a payload
        ("shop.public.customers", json.dumps({"schema": {}, "payload": {**base, "op": "u", "after": row}}).encode()),
        # no source.table: the topic names the table
        ("shop.public.customers", json.dumps({"op": "r", "before": None, "after": row, "source": {}}).encode()),
    ]


def test_jvm_key_is_the_parsed_customer_for_every_valid_change(java_customer_id, golden_orders):
    records = [(f"shop.public.{table}", value) for table, value in fuzz_payloads(1500, seed=5)]
    records += [(r["topic"], None if r["value"] is None else r["value"].encode()) for r in golden_orders]
    records += _customer_changes()
    valid = 0
    for topic, value in records:
        rec = parse_record(topic, 0, 0, 0, None, value)
        if isinstance(rec, ChangeEvent) and rec.table != "products":
            valid += 1
            assert java_customer_id(topic, value) == rec.customer_id, (topic, value[:300])
    assert valid > 500  # the fuzzer keeps about half of its envelopes valid


def test_product_changes_reach_every_shard_and_bad_ones_are_reported_once(jvm):
    """A product change goes to every shard, anything else to one; where a record reaches every
    shard, only shard 0 reports it if it does not parse (udfs.batch.reported_by_shard)."""
    from udfs.batch import reported_by_shard
    from udfs.envelope import DeadLetter

    shards = 16
    router = jvm.livefit.flink.ShardRouter(shards, MAX_PARALLELISM)
    records = fuzz_payloads(1500, seed=8, tables=("products", "interactions", "orders"))
    fanned = valid_products = 0
    for table, value in records:
        got = shards_of(jvm, router, value)
        rec = parse_record("shop.changes", 0, 0, 0, None, value)
        if isinstance(rec, ChangeEvent) and rec.table == "products":
            valid_products += 1
        if len(got) > 1:
            fanned += 1
            assert got == list(range(shards)), table
            if isinstance(rec, ChangeEvent):
                assert rec.table == "products"
        else:
            assert not (isinstance(rec, ChangeEvent) and rec.table == "products"), value
        reporters = [s for s in got if reported_by_shard(s, "shop.changes", value)]
        if isinstance(rec, DeadLetter):
            assert len(reporters) == 1, (got, value[:200] if value else value)
    assert valid_products > 150 and fanned > valid_products  # broken product changes fan out too


def test_unreadable_records_get_the_unroutable_key(java_customer_id):
    unroutable = -(2**63)
    for value in (None, b"not json", b"[1,2]", b'{"op":"c","after":{"customer_id":"7"}}',
                  b'{"op":"c","after":{"customer_id":1e3}}',
                  b'{"op":"c","after":{"customer_id":9223372036854775808}}'):
        assert java_customer_id("shop.public.orders", value) == unroutable, value


def test_drift_examples_are_keyed_by_their_kafka_key_in_the_jvm(java_customer_id):
    """The drift learner's input: score-and-learn's drift examples, keyed by segment (the record's
    key, see RecordKeyAssigner.java); a record without a key gets the key ""."""
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import to_jarray

    jvm = get_gateway().jvm

    def key(record_key: bytes | None) -> str:
        row = jvm.org.apache.flink.types.Row.of(
            to_jarray(jvm.Object, ["livefit:segment-drift-examples", record_key, b"[]"]))
        return str(jvm.livefit.flink.RecordKeyAssigner().map(row).getField(0))

    assert key("première".encode()) == "première"
    assert key(None) == ""


def test_jvm_shards_match_the_python_shards(jvm):
    from udfs.batch import shard_of

    assigner = jvm.livefit.flink.ShardRouter
    for customer in (0, 1, 15, 16, 1001, -1, -(2**63), 2**63 - 1):
        for shards in (1, 7, 16, 32):
            assert int(assigner.shardOf(customer, shards)) == shard_of(customer, shards), (customer, shards)


def test_python_decodes_the_batches_the_jvm_encodes(jvm):
    """MicroBatcher.encode (the JVM) and udfs.batch.decode_batch (Python) agree on every field,
    including null keys and values (tombstones) and non-ASCII topics."""
    from udfs.batch import decode_batch

    records = [("shop.public.orders", 0, 2**40, 1795318293200, b'{"id":1}', b'{"op":"c"}'),
               ("shop.public.orders", 3, 0, -1, None, None),
               ("t\u00f6pic", 2**31 - 1, 2**63 - 1, -(2**63), b"", bytes(range(256)))]
    assert decode_batch(bytes(jvm.livefit.flink.MicroBatcher.encode(_java_rows(jvm, records)))) == records


def _java_rows(jvm: Any, records: list[tuple[Any, ...]]) -> Any:
    """``records`` as a java.util.List of Flink Rows, one field per tuple item."""
    from pyflink.java_gateway import get_gateway

    rows = jvm.java.util.ArrayList()
    for record in records:
        fields = get_gateway().new_array(jvm.Object, len(record))
        for i, value in enumerate(record):
            fields[i] = value
        rows.add(jvm.org.apache.flink.types.Row.of(fields))
    return rows


def test_the_jvm_splits_what_the_scoring_operator_yields(jvm):
    """udfs.batch.encode_outputs (Python) and OutputSplitter.decode (the JVM) agree on every
    record, in order, including a null key, an empty value and a non-ASCII topic."""
    from udfs.batch import encode_outputs

    records = [("livefit.scores", b"17", b'{"kind":"interaction"}'),
               ("livefit.labels", None, bytes(range(256))),
               ("t\u00f6pic", b"", b"")]
    rows = jvm.livefit.flink.OutputSplitter.decode(encode_outputs(records))
    got = [(row.getField(0), row.getField(1), row.getField(2)) for row in rows]
    assert [(t, None if k is None else bytes(k), bytes(v)) for t, k, v in got] == records


def test_python_reads_the_drift_batches_the_jvm_encodes(jvm):
    """OutputSplitter.encode (the JVM: RecordBatcher's batches for the drift learner) and
    udfs.batch.decode_outputs (Python) agree on every record, in order, including a null key,
    an empty value and a non-ASCII topic; a batch of one record is that record."""
    from udfs.batch import decode_outputs

    records = [("livefit:segment-drift-examples", b"budget", b"[[-1.5,1,1795318293200]]"),
               ("t\u00f6pic", None, bytes(range(256))),
               ("livefit:segment-drift-examples", b"", b"")]
    encode = jvm.livefit.flink.OutputSplitter.encode
    assert decode_outputs(bytes(encode(_java_rows(jvm, records)))) == records
    assert decode_outputs(bytes(encode(_java_rows(jvm, records[:1])))) == records[:1]


HEARTBEATS = [b'{"ts_ms":1795469954230}', b'{"schema":{},"payload":{"ts_ms":1795469954230}}']
NOT_HEARTBEATS = [b'{"ts_ms":"1795469954230"}', b'{"ts_ms":1795469954230,"op":"c"}', b'{"ts_ms":1.5}',
                  b'{"ts_ms":true}', b'{}']


@pytest.mark.parametrize("shards", [16, 32, 64, 128])
def test_shards_spread_evenly_over_any_parallelism(jvm, shards):
    """Keyed by their numbers, 16 shards split 11/5 over 2 subtasks and left 2 of 8 subtasks
    without any. Keyed by ShardRouter.balancedKeys, each subtask gets its share, give or take
    one, for every parallelism up to 16 (shard counts that divide the max parallelism, 128),
    by Flink's own assignment of the key PyFlink's KeyByKeySelector builds from what the router
    emits."""
    router = jvm.livefit.flink.ShardRouter(shards, MAX_PARALLELISM)
    product = (b'{"op":"c","before":null,"after":{"id":1,"category":"shoes","color":"red","price":9},'
               b'"source":{"table":"products","lsn":1,"ts_ms":1795469954230}}')
    out = jvm.java.util.ArrayList()
    router.flatMap(raw_record(jvm, "shop.changes", product),
                   jvm.org.apache.flink.api.common.functions.util.ListCollector(out))
    selector = jvm.org.apache.flink.streaming.api.functions.python.KeyByKeySelector()
    assign = jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment.assignKeyToParallelOperator
    keys = [selector.getKey(out.get(i)) for i in range(out.size())]
    assert len({int(k.getField(0)) for k in keys}) == shards
    for parallelism in range(1, min(shards, 16) + 1):
        per_subtask = [0] * parallelism
        for key in keys:
            per_subtask[assign(key, MAX_PARALLELISM, parallelism)] += 1
        assert max(per_subtask) - min(per_subtask) <= 1, (parallelism, per_subtask)


def test_heartbeats_go_nowhere_and_both_sides_agree_on_what_is_one(jvm):
    """A Debezium heartbeat only moves event time (in the source), so the JVM drops it before the
    shards; Python recognises the same records (and nothing else) as heartbeats, and dead-letters
    what merely looks like one, so no change is dropped for a heartbeat."""
    from udfs.envelope import DeadLetter, Heartbeat

    router = jvm.livefit.flink.ShardRouter(16, MAX_PARALLELISM)
    for value in HEARTBEATS:
        assert shards_of(jvm, router, value) == [], value
        assert parse_record("shop.changes", 0, 0, 0, None, value) == Heartbeat(1795469954230)
    for value in NOT_HEARTBEATS:
        assert len(shards_of(jvm, router, value)) == 1, value
        assert isinstance(parse_record("shop.changes", 0, 0, 0, None, value), DeadLetter), value
    for table, value in fuzz_payloads(300, seed=11):
        rec = parse_record(f"shop.public.{table}", 0, 0, 0, None, value)
        assert not isinstance(rec, Heartbeat)
        assert len(shards_of(jvm, router, value)) >= 1


def test_a_heartbeat_carries_its_time_into_the_source(jvm):
    """ChangeEventTimeAssigner: a heartbeat's event time is its ts_ms (Debezium's clock), not the
    Kafka timestamp, whoever produced the record; a change keeps its row's created_at."""
    assigner = jvm.livefit.flink.ChangeEventTimeAssigner()

    def event_time(value: bytes) -> int:
        return int(assigner.extractTimestamp(raw_record(jvm, "shop.changes", value), 42))

    for value in HEARTBEATS:
        assert event_time(value) == 1795469954230
    change = {"op": "c", "before": None, "ts_ms": 1795469999999,
              "after": {"id": 1, "customer_id": 2, "created_at": "2026-11-22T04:00:00Z"},
              "source": {"table": "interactions", "ts_ms": 1795469888888}}
    assert event_time(json.dumps(change).encode()) == 1795320000000  # 2026-11-22T04:00:00Z
    assert event_time(b"not json") == 42


@pytest.mark.parametrize("margin", [None, 10 * 3_600_000])
def test_a_row_created_after_its_commit_keeps_its_commit_time_in_the_source(jvm, margin):
    """The JVM and Python draw the same line, by default and as configured (the job hands
    job.max_created_after_commit_ms to both): where the parser dead-letters a created_at beyond
    the margin after its commit, the source gives the record its commit time, so it cannot move
    the watermark ahead; below the line both take created_at."""
    from jobs.score_job import event_time_watermarks
    from livefit.config import Config
    from tests.udfs.test_envelope import COMMIT_MS, created_at_ahead
    from udfs.envelope import DEFAULT_MAX_CREATED_AFTER_COMMIT_MS, DeadLetter

    cfg = Config()
    assert (jvm.livefit.flink.ChangeEventTimeAssigner.DEFAULT_MAX_CREATED_AFTER_COMMIT_MS
            == DEFAULT_MAX_CREATED_AFTER_COMMIT_MS == cfg.job.max_created_after_commit_ms)
    if margin is not None:
        cfg.job.max_created_after_commit_ms = margin
    margin = cfg.job.max_created_after_commit_ms
    # The job's own strategy, as event_time_watermarks builds it from the configuration.
    assigner = event_time_watermarks(cfg)._j_watermark_strategy.createTimestampAssigner(None)
    for lead_ms in (-86_400_000, 0, margin - 1000, margin, margin + 1000, 9 * 3_600_000,
                    365 * 86_400_000):
        value = created_at_ahead(lead_ms)
        rec = parse_record("shop.changes", 0, 0, 0, None, value, max_created_after_commit_ms=margin)
        source_time = int(assigner.extractTimestamp(raw_record(jvm, "shop.changes", value), 42))
        if isinstance(rec, ChangeEvent):
            assert source_time == rec.event_ts_ms == COMMIT_MS + lead_ms
        else:
            assert isinstance(rec, DeadLetter) and lead_ms > margin
            assert source_time == COMMIT_MS, lead_ms


def test_the_initial_snapshot_holds_event_time_until_its_last_record(jvm):
    """Debezium snapshots table by table (every interaction before any order): its rows, through
    the job's own strategy, leave the watermark where it was until the snapshot's last record,
    so no interaction's horizon passes before its order is read. The parser still gives each
    row its own time; streamed changes and incremental snapshots move event time as usual."""
    from jobs.score_job import event_time_watermarks
    from livefit.config import Config
    from tests.jobs.test_watermarks import Output

    cfg = Config()
    assigner = event_time_watermarks(cfg)._j_watermark_strategy.createTimestampAssigner(None)
    # The strategy's own rule around it (its idleness needs a running source's clocks).
    generator = jvm.org.apache.flink.api.common.eventtime.BoundedOutOfOrdernessWatermarks(
        jvm.java.time.Duration.ofMillis(cfg.job.max_out_of_orderness_ms))
    out = Output()

    def read(created_at: str, marker: str) -> int:
        value = json.dumps({"op": "r" if marker not in ("false", "incremental") else "c", "before": None,
                            "after": {"id": 1, "customer_id": 2, "product_id": 3, "kind": "view",
                                      "created_at": created_at},
                            "source": {"table": "interactions", "ts_ms": 1795469888888,
                                       "snapshot": marker}}).encode()
        rec = parse_record("shop.changes", 0, 0, 0, None, value)
        assert isinstance(rec, ChangeEvent)
        t = int(assigner.extractTimestamp(raw_record(jvm, "shop.changes", value), 42))
        generator.onEvent(raw_record(jvm, "shop.changes", value), t, out)
        generator.onPeriodicEmit(out)
        return t

    for marker in ("first", "true", "last_in_data_collection", "first_in_data_collection", "true"):
        read("2026-11-22T04:00:00Z", marker)
    assert all(kind != "watermark" or ts < 0 for kind, ts in out.calls), out.calls
    assert read("2026-11-22T04:00:00Z", "last") == 1795320000000
    assert out.calls[-1] == ("watermark", 1795320000000 - 2_000 - 1)
    assert read("2026-11-22T04:01:00Z", "incremental") == 1795320060000
    assert read("2026-11-22T04:02:00Z", "false") == 1795320120000
    assert out.calls[-1] == ("watermark", 1795320120000 - 2_000 - 1)
