"""Parsing Debezium records: every op, tombstones, and garbage that must become dead letters."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.envelope import (
    DEFAULT_MAX_CREATED_AFTER_COMMIT_MS,
    ChangeEvent,
    DeadLetter,
    Tombstone,
    parse_record,
)

TOPIC = "shop.public.interactions"


def envelope(op: str = "c", table: str = "interactions", after: dict | None = None,
             before: dict | None = None, **source: object) -> bytes:
    row = {"id": 5, "customer_id": 3, "product_id": 9, "kind": "view",
           "created_at": "2026-11-22T03:31:33.190983Z"}
    env = {"op": op, "before": before, "after": after if after is not None else (None if op == "d" else row),
           "source": {"table": table, "lsn": 1234, "ts_ms": 1795318293194, "snapshot": "false", **source},
           "ts_ms": 1795318293285}
    if op == "d" and before is None:
        env["before"] = row
    return json.dumps(env).encode()


def parse(value: bytes | None, key: bytes | None = b'{"id":5}', topic: str = TOPIC):
    return parse_record(topic, 0, 42, 0, key, value)


def test_golden_debezium_records(golden_orders):
    parsed = [parse(r["value"].encode() if r["value"] is not None else None, r["key"].encode(), r["topic"])
              for r in golden_orders]
    create, update, delete, tomb = parsed
    assert isinstance(create, ChangeEvent) and create.op == "c" and create.customer_id == 6
    assert create.event_id == "orders:1001:28921248"
    assert create.event_ts_ms == 1795318293190  # the row's created_at, not the commit time
    assert create.commit_ts_ms == 1795318293194
    assert isinstance(update, ChangeEvent) and update.op == "u"
    assert update.before["amount"] == 16.99 and update.row["amount"] == 17.99
    assert isinstance(delete, ChangeEvent) and delete.op == "d" and delete.row["id"] == 3503
    assert isinstance(tomb, Tombstone)


def test_snapshot_read_is_flagged():
    ev = parse(envelope("r", snapshot="true"))
    assert isinstance(ev, ChangeEvent) and ev.snapshot and ev.op == "r"
    assert not parse(envelope("c")).snapshot


def test_delete_uses_before_image():
    ev = parse(envelope("d"))
    assert isinstance(ev, ChangeEvent) and ev.row["customer_id"] == 3 and ev.customer_id == 3


def test_event_id_is_stable_across_resends():
    assert parse(envelope("c")).event_id == parse(envelope("c")).event_id == "interactions:5:1234"


def test_schema_enabled_envelope_is_unwrapped():
    wrapped = json.dumps({"schema": {}, "payload": json.loads(envelope("c"))}).encode()
    assert isinstance(parse(wrapped), ChangeEvent)


def _reason(value: bytes) -> str:
    dl = parse(value)
    assert isinstance(dl, DeadLetter), dl
    return dl.reason


def test_garbage_becomes_dead_letters_with_reasons():
    assert "not valid JSON" in _reason(b"{not json")
    assert "not UTF-8" in _reason(b"\xff\xfe\x00garbage")
    assert "not a Debezium envelope object" in _reason(b"[1, 2, 3]")
    assert "no 'op'" in _reason(b'{"after": {}}')
    assert _reason(envelope("x")) == "unknown op 'x'"
    assert "truncate" in _reason(envelope("t"))
    assert "message" in _reason(envelope("m"))
    assert "without a 'after' row image" in _reason(envelope("c", after={}) .replace(b'"after": {}', b'"after": null'))
    assert "no 'source'" in _reason(b'{"op": "c", "after": {}}')
    assert "not one livefit consumes" in _reason(envelope("c", table="invoices"))


def test_invalid_fields_become_dead_letters():
    good = {"id": 1, "customer_id": 3, "product_id": 9, "kind": "view", "created_at": "2026-11-22T03:31:33Z"}
    assert "customer_id: expected an integer" in _reason(envelope("c", after={**good, "customer_id": "abc"}))
    assert "customer_id: expected an integer" in _reason(envelope("c", after={**good, "customer_id": None}))
    # found by fuzzing the running job: 2**63 overflowed Flink's LONG key coder and crashed it
    assert "outside the bigint range" in _reason(envelope("c", after={**good, "customer_id": 2**63}))
    assert "kind: 'purchase' is not one of" in _reason(envelope("c", after={**good, "kind": "purchase"}))
    assert "is not an ISO timestamp" in _reason(envelope("c", after={**good, "created_at": "yesterday"}))
    order = {"id": 1, "customer_id": 3, "product_id": 9, "amount": 10.0, "quantity": 1}
    for bad_amount in (-5.0, 1e12):
        assert "amount" in _reason(envelope("c", table="orders", after={**order, "amount": bad_amount}))
    # A bare NaN / 1e400 is not JSON (RFC 8259), so not a number we could check: the parser
    # refuses it and says where. Jackson, which Debezium writes with, quotes NaN by default.
    for token in (b"NaN", b"1e400"):
        bad = envelope("c", table="orders", after={**order, "amount": 1.0}).replace(b'"amount": 1.0', b'"amount": ' + token)
        assert _reason(bad).startswith("value is not valid JSON: ") and "at char 92" in _reason(bad)
    assert "amount: expected a number, got 'NaN'" in _reason(envelope("c", table="orders", after={**order, "amount": "NaN"}))
    assert "quantity" in _reason(envelope("c", table="orders", after={**order, "quantity": 0}))


def test_dead_letter_keeps_the_original_bytes():
    raw = b"\xff\x00 not text"
    dl = parse(raw, key=b"\xffk")
    out = json.loads(dl.to_json())
    assert bytes.fromhex(out["value"]["hex"]) == raw
    assert bytes.fromhex(out["key"]["hex"]) == b"\xffk"
    assert (out["topic"], out["partition"], out["offset"]) == (TOPIC, 0, 42)
    text = "{\"unicode\": \"żółć 🚀\"".encode()
    assert json.loads(parse(text).to_json())["value"]["utf8"] == text.decode()


def test_unknown_columns_are_ignored():
    """A column added to the table while running does not break parsing."""
    row = {"id": 1, "customer_id": 3, "product_id": 9, "kind": "view", "created_at": None, "new_col": [1]}
    ev = parse(envelope("c", after=row))
    assert isinstance(ev, ChangeEvent) and ev.event_ts_ms == ev.commit_ts_ms


COMMIT_MS = 1795318293000  # 2026-11-22T03:31:33Z


def created_at_ahead(lead_ms: int, table: str = "interactions") -> bytes:
    """A change committed at COMMIT_MS whose row says it was created ``lead_ms`` later."""
    created = datetime.fromtimestamp((COMMIT_MS + lead_ms) / 1000, UTC).isoformat().replace("+00:00", "Z")
    row = {"id": 5, "customer_id": 3, "product_id": 9, "kind": "view", "amount": 10.0, "created_at": created}
    return envelope("c", table=table, after=row, ts_ms=COMMIT_MS)


def test_a_row_created_after_its_commit_is_dead_lettered_and_says_why():
    """A created_at a year after its own commit is a wrong clock, not news from the future.
    Accepted, it would move event time a year ahead: every pending label would resolve as a
    negative and every customer would expire. An application clock a little ahead is kept."""
    year_ms = 365 * 86_400_000
    reason = _reason(created_at_ahead(year_ms))
    assert reason.startswith("interactions: created_at '2027-11-22T03:31:33Z' is 31,536,000 s after "
                             "the change was committed (2026-11-22T03:31:33Z, source.ts_ms)"), reason
    assert "Correct created_at where the row is written" in reason
    assert "orders: created_at" in _reason(created_at_ahead(year_ms, table="orders"))
    kept = parse(created_at_ahead(30_000))
    assert isinstance(kept, ChangeEvent) and kept.event_ts_ms == COMMIT_MS + 30_000


def test_a_source_clock_known_to_run_ahead_can_be_allowed_for():
    """Local time stored as UTC (9 hours ahead here) is refused by default, with the setting to
    raise in the reason, and kept once job.max_created_after_commit_ms allows for it."""
    nine_hours = 9 * 3_600_000
    assert "raise job.max_created_after_commit_ms" in _reason(created_at_ahead(nine_hours))
    kept = parse_record(TOPIC, 0, 42, 0, None, created_at_ahead(nine_hours),
                        max_created_after_commit_ms=10 * 3_600_000)
    assert isinstance(kept, ChangeEvent) and kept.event_ts_ms == COMMIT_MS + nine_hours


@given(st.integers(-10**7, 10**7).map(lambda s: s * 1000))  # whole seconds, up to ~4 months
def test_only_a_created_at_beyond_the_margin_after_the_commit_is_refused(lead_ms):
    rec = parse(created_at_ahead(lead_ms))
    if lead_ms <= DEFAULT_MAX_CREATED_AFTER_COMMIT_MS:
        assert isinstance(rec, ChangeEvent) and rec.event_ts_ms == COMMIT_MS + lead_ms
    else:
        assert isinstance(rec, DeadLetter) and "after the change was committed" in rec.reason


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.none(), st.binary(max_size=300)), st.one_of(st.none(), st.binary(max_size=20)))
def test_arbitrary_bytes_never_raise(value, key):
    rec = parse(value, key=key)
    assert isinstance(rec, (ChangeEvent, DeadLetter, Tombstone))
    if isinstance(rec, DeadLetter):
        assert rec.reason and json.loads(rec.to_json())["reason"] == rec.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(["c", "r", "u", "d", "t", "m", "x"]), st.dictionaries(
    st.sampled_from(["id", "customer_id", "product_id", "kind", "created_at", "amount", "quantity"]),
    json_values, max_size=7), st.sampled_from(["interactions", "orders", "products", "customers"]))
def test_arbitrary_envelopes_are_parsed_or_dead_lettered(op, row, table):
    env = {"op": op, "before": row, "after": row, "source": {"table": table, "lsn": 1, "ts_ms": 1}}
    rec = parse(json.dumps(env).encode())
    assert isinstance(rec, (ChangeEvent, DeadLetter))
    if isinstance(rec, ChangeEvent) and table == "orders":
        assert math.isfinite(rec.row["amount"])


def test_huge_dead_letters_are_bounded_but_traceable():
    import hashlib

    from udfs.envelope import MAX_DEAD_LETTER_BYTES

    raw = b"x" * 1_000_000
    out = json.loads(parse(raw).to_json())
    assert out["value"]["truncated"] and out["value"]["size"] == 1_000_000
    assert out["value"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(out["value"]["utf8"]) == MAX_DEAD_LETTER_BYTES
    assert (out["topic"], out["offset"]) == (TOPIC, 42)
