"""Micro-batch framing, output framing, customer shards and a shard's due schedule (udfs.batch)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from udfs.batch import (
    CHUNK_CUSTOMERS,
    DUE_CHUNKS,
    DUE_GRANULARITY_MS,
    DueSchedule,
    add_customers,
    decode_batch,
    decode_customers,
    decode_outputs,
    due_time_of,
    encode_batch,
    encode_outputs,
    round_due,
    shard_of,
)

raw_records = st.lists(st.tuples(
    st.text(min_size=1, max_size=40), st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1),
    st.one_of(st.none(), st.binary(max_size=50)), st.one_of(st.none(), st.binary(max_size=300))),
    max_size=20)


@given(raw_records)
def test_a_batch_decodes_to_exactly_the_records_encoded(records):
    assert decode_batch(encode_batch(records)) == records


def test_a_truncated_batch_is_an_error_not_a_short_batch():
    blob = encode_batch([("shop.public.orders", 0, 1, 2, b"k", b'{"op":"c"}')] * 3)
    for cut in (1, 5, len(blob) - 1):
        with pytest.raises(ValueError):
            decode_batch(blob[:cut])


def test_shards_are_a_floor_modulo_like_javas():
    assert [shard_of(c, 16) for c in (0, 1, 15, 16, 17, -1, -(2**63))] == [0, 1, 15, 0, 1, 15, 0]


def test_deadlines_round_up_never_down():
    assert round_due(0) == 0
    assert round_due(1) == DUE_GRANULARITY_MS
    assert round_due(DUE_GRANULARITY_MS) == DUE_GRANULARITY_MS
    assert all(round_due(t) >= t for t in range(-3000, 3000, 7))


batches_of_due_customers = st.lists(  # per batch: due time (in seconds) -> how many customers
    st.dictionaries(st.integers(-3, 40), st.integers(1, 2 * CHUNK_CUSTOMERS), max_size=4), max_size=12)


def _add_batches(schedule: DueSchedule, store: dict[int, bytes], batches: list[dict[int, int]],
                 next_id: int = 0) -> int:
    """What the scoring operator does after each batch: each due time's customers into one entry."""
    for batch in batches:
        for seconds, n in batch.items():
            key, append = schedule.chunk_for(seconds * DUE_GRANULARITY_MS, n)
            assert append == (key in store)
            store[key] = add_customers(store.get(key) if append else None, list(range(next_id, next_id + n)))
            next_id += n
    return next_id


@given(batches_of_due_customers, batches_of_due_customers, st.integers(-5_000, 45_000))
def test_the_schedule_hands_out_every_due_customer_once_in_order(before, after, until):
    schedule, store = DueSchedule.of([]), {}
    added = _add_batches(schedule, store, before)
    assert schedule.keys == sorted(store)
    # restored: the schedule is rebuilt from the map's keys, and new batches open new chunks
    schedule = DueSchedule.of(store)
    added = _add_batches(schedule, store, after, added)
    assert schedule.keys == sorted(store)
    for key, blob in store.items():
        assert 0 <= key - due_time_of(key) < DUE_CHUNKS
        assert len(decode_customers(blob)) <= 3 * CHUNK_CUSTOMERS  # bounded: one batch may overfill
    popped = schedule.pop_until(until)
    assert popped == sorted(k for k in store if due_time_of(k) <= until)
    assert schedule.keys == sorted(k for k in store if due_time_of(k) > until)
    customers = [c for k in popped for c in decode_customers(store[k])]
    everyone = [c for k in sorted(store) for c in decode_customers(store[k])]
    assert sorted(customers + [c for k in schedule.keys for c in decode_customers(store[k])]) == list(range(added))
    assert customers == everyone[:len(customers)]  # in order of due time
    assert schedule.pop_until(until) == []


def test_a_due_time_with_every_chunk_used_grows_its_last_chunk():
    schedule = DueSchedule.of([7_000 + i for i in range(DUE_CHUNKS)])
    assert schedule.chunk_for(7_000, 1) == (7_000 + DUE_CHUNKS - 1, True)
    with pytest.raises(ValueError, match="multiple"):
        schedule.chunk_for(7_001, 1)


def test_customers_due_at_one_time_come_back_once_each_in_order():
    blob = add_customers(None, [7, 3])
    blob = add_customers(blob, [7, 9, -2])
    assert decode_customers(blob) == [7, 3, 9, -2]
    assert decode_customers(None) == []


@given(st.lists(st.tuples(st.text(max_size=40), st.one_of(st.none(), st.binary(max_size=50)),
                          st.one_of(st.none(), st.binary(max_size=300))), max_size=20))
def test_outputs_round_trip_in_order(records):
    assert decode_outputs(encode_outputs(records)) == records
