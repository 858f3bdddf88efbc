"""Micro-batch framing, output framing, customer shards and a shard's due schedule (udfs.batch)."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from udfs.batch import (
    CHUNK_CUSTOMERS,
    DUE_CHUNKS,
    DUE_GRANULARITY_MS,
    DueSchedule,
    apply_changes,
    decode_batch,
    decode_customers,
    decode_outputs,
    due_time_of,
    encode_batch,
    encode_outputs,
    round_due,
    shard_of,
)
from udfs.state_cache import MemoryStore

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


def _add_batches(schedule: DueSchedule, store: MemoryStore, batches: list[dict[int, int]],
                 next_id: int = 0) -> int:
    """What the scoring operator does after each batch: each due time's customers into one entry,
    the changed entries written at once."""
    for batch in batches:
        for seconds, n in batch.items():
            schedule.add(seconds * DUE_GRANULARITY_MS, list(range(next_id, next_id + n)), store.get)
            next_id += n
        apply_changes(schedule, store)
    return next_id


@given(batches_of_due_customers, batches_of_due_customers, st.integers(-5_000, 45_000),
       st.booleans())
def test_the_schedule_hands_out_every_due_customer_once_in_order(before, after, until, restored):
    schedule, store = DueSchedule.of([]), MemoryStore()
    added = _add_batches(schedule, store, before)
    assert schedule.keys == sorted(store)
    restored_keys = set(store)
    if restored:  # the schedule is rebuilt from the map's keys, and new batches open new chunks
        schedule = DueSchedule.of(store)
    added = _add_batches(schedule, store, after, added)
    assert schedule.keys == sorted(store)
    for key, blob in store.items():
        assert 0 <= key - due_time_of(key) < DUE_CHUNKS
        assert len(decode_customers(blob)) <= 3 * CHUNK_CUSTOMERS  # bounded: one batch may overfill
    everyone = [c for k in sorted(store) for c in decode_customers(store[k])]
    expected_keys = sorted(k for k in store if due_time_of(k) <= until)
    popped = schedule.pop_until(until)
    assert popped == expected_keys
    assert schedule.keys == sorted(k for k in store if due_time_of(k) > until)
    reads: list[int] = []

    def read(key: int) -> bytes | None:
        reads.append(key)
        return store.get(key)

    customers = [c for k in popped for c in schedule.take(k, read)]
    assert customers == [c for k in popped for c in decode_customers(store[k])]
    assert sorted(customers + [c for k in schedule.keys for c in decode_customers(store[k])]) == list(range(added))
    assert customers == everyone[:len(customers)]  # in order of due time
    # entries written since open() come from memory; only restored ones are read from the map
    assert set(reads) <= (restored_keys if restored else set())
    assert schedule.pop_until(until) == []
    apply_changes(schedule, store)  # the entries taken leave the map when it is next written
    assert sorted(store) == schedule.keys


def test_the_map_is_written_when_asked_and_only_with_what_it_must_hold():
    schedule, store = DueSchedule.of([3_000]), MemoryStore({3_000: array("q", [5]).tobytes()})  # restored
    schedule.add(7_000, [1], store.get)
    schedule.add(8_000, [2], store.get)
    assert store.keys() == {3_000} and schedule.pending() == 2  # nothing written yet
    assert [schedule.take(k, store.get) for k in schedule.pop_until(7_000)] == [[5], [1]]
    puts, removes = schedule.changes()
    assert puts == {8_000: array("q", [2]).tobytes()}  # 7,000 came and went: never written
    assert removes == [3_000]  # the restored entry, taken
    assert schedule.changes() == ({}, []) and schedule.pending() == 0
    store.update(puts)
    del store[3_000]
    # taken after it was written, then due again under the same key: written, not removed
    assert schedule.take(schedule.pop_until(8_000)[0], store.get) == [2]
    schedule.add(8_000, [4], store.get)
    assert schedule.changes() == ({8_000: array("q", [4]).tobytes()}, [])


def test_a_shard_has_one_timer_at_its_earliest_due_time():
    schedule, store = DueSchedule.of([]), MemoryStore()
    schedule.add(9_000, [1], store.get)
    assert schedule.next_timer() == 9_000
    schedule.add(12_000, [2], store.get)
    assert schedule.next_timer() is None  # 9,000 fires first and moves it on
    schedule.add(4_000, [3], store.get)
    assert schedule.next_timer() == 4_000  # earlier than the one registered
    apply_changes(schedule, store)
    assert [schedule.take(k, store.get) for k in schedule.pop_until(4_000)] == [[3]]
    schedule.fired(4_000)
    assert schedule.next_timer() == 9_000  # registered again: Flink keeps one per time
    assert [schedule.take(k, store.get) for k in schedule.pop_until(10_000)] == [[1]]
    schedule.fired(10_000)
    assert schedule.next_timer() == 12_000
    assert [schedule.take(k, store.get) for k in schedule.pop_until(12_000)] == [[2]]
    schedule.fired(12_000)
    assert schedule.next_timer() is None  # nothing due: no timer
    # restored: the timers restored with the entries cover them; a new batch registers its own
    restored = DueSchedule.of([20_000])
    restored.add(30_000, [4], store.get)
    assert restored.next_timer() == 20_000  # harmless if Flink already has it


def test_a_due_time_with_every_chunk_used_grows_its_last_chunk():
    schedule = DueSchedule.of([7_000 + i for i in range(DUE_CHUNKS)])
    assert schedule.chunk_for(7_000, 1) == (7_000 + DUE_CHUNKS - 1, True)
    with pytest.raises(ValueError, match="multiple"):
        schedule.chunk_for(7_001, 1)


def test_customers_due_at_one_time_come_back_once_each_in_order():
    schedule, store = DueSchedule.of([]), MemoryStore()
    schedule.add(7_000, [7, 3], store.get)
    apply_changes(schedule, store)
    schedule.add(7_000, [7, 9, -2], store.get)
    apply_changes(schedule, store)
    assert decode_customers(store[7_000]) == [7, 3, 9, -2]
    assert DueSchedule.of(store).take(7_000, store.get) == [7, 3, 9, -2]  # read from the map
    assert decode_customers(None) == []


@given(st.lists(st.tuples(st.text(max_size=40), st.one_of(st.none(), st.binary(max_size=50)),
                          st.one_of(st.none(), st.binary(max_size=300))), max_size=20))
def test_outputs_round_trip_in_order(records):
    assert decode_outputs(encode_outputs(records)) == records
