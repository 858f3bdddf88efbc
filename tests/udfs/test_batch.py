"""Micro-batch framing, output framing, customer shards and a shard's due schedule (udfs.batch)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from udfs.batch import (
    DUE_GRANULARITY_MS,
    DueSchedule,
    add_customers,
    decode_batch,
    decode_customers,
    decode_outputs,
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


@given(st.lists(st.lists(st.integers(0, 10**13), max_size=10), max_size=10), st.integers(0, 10**13))
def test_the_schedule_hands_out_every_due_time_once_in_order(additions, until):
    schedule = DueSchedule.of([])
    seen: set[int] = set()
    for times in additions:
        assert schedule.add(times) == bool(set(times) - seen)
        seen |= set(times)
        assert DueSchedule.of(seen).times == schedule.times  # as rebuilt from the map after a restore
    everything = sorted(seen)
    assert schedule.times == everything
    assert schedule.pop_until(until) == [t for t in everything if t <= until]
    assert schedule.times == [t for t in everything if t > until]
    assert schedule.pop_until(until) == []


def test_customers_due_at_one_time_come_back_once_each_in_order():
    blob = add_customers(None, [7, 3])
    blob = add_customers(blob, [7, 9, -2])
    assert decode_customers(blob) == [7, 3, 9, -2]
    assert decode_customers(None) == []


@given(st.lists(st.tuples(st.text(max_size=40), st.one_of(st.none(), st.binary(max_size=50)),
                          st.one_of(st.none(), st.binary(max_size=300))), max_size=20))
def test_outputs_round_trip_in_order(records):
    assert decode_outputs(encode_outputs(records)) == records
