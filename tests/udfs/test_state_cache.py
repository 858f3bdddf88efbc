"""Decoded customer states in front of Flink state (udfs.state_cache)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from udfs.customer import CustomerState, decode_state, encode_state
from udfs.state_cache import CustomerStateCache, MemoryStore

ops = st.lists(st.tuples(st.sampled_from(["change", "remove", "half-change", "flush"]),
                         st.integers(0, 5)), max_size=60)


@given(ops, st.integers(0, 3))
def test_reads_and_the_store_after_a_flush_match_a_plain_dict(operations, capacity):
    store = MemoryStore()
    cache = CustomerStateCache(store, capacity)
    truth: dict[int, int] = {}  # customer -> positives, what every read must see
    flushed: dict[int, int] = {}  # what the store must hold after a flush
    for op, cid in operations:
        state = cache.get(cid)
        assert (None if state is None else state.positives) == truth.get(cid)
        if op == "change":
            state = state or CustomerState()
            state.positives += 1
            cache.put(cid, state)
            truth[cid] = state.positives
        elif op == "remove":
            cache.remove(cid)
            truth.pop(cid, None)
        elif op == "half-change" and state is not None:  # the logic failed half-way
            state.positives += 100
            cache.forget(cid)  # back to the state as last flushed (the job then re-applies)
            if cid in flushed:
                truth[cid] = flushed[cid]
            else:
                truth.pop(cid, None)
        elif op == "flush":
            cache.flush()
            flushed = dict(truth)
            assert len(cache) <= capacity
            assert {c: decode_state(b).positives for c, b in store.items()} == flushed


def test_a_state_is_encoded_once_per_flush_however_often_it_changed(monkeypatch):
    import udfs.state_cache

    encoded: list[int] = []
    monkeypatch.setattr(udfs.state_cache, "encode_state",
                        lambda s: encoded.append(s.positives) or encode_state(s))
    cache = CustomerStateCache(MemoryStore(), capacity=10)
    state = CustomerState()
    for _ in range(5):
        state.positives += 1
        cache.put(1, state)
    assert encoded == []
    cache.flush()
    assert encoded == [5]


def test_a_state_is_decoded_once_and_then_served_from_memory():
    store = MemoryStore({7: encode_state(CustomerState(positives=3))})
    cache = CustomerStateCache(store, capacity=10)
    first = cache.get(7)
    assert first is not None and first.positives == 3
    assert cache.get(7) is first
    assert (cache.hits, cache.misses) == (1, 1)


def test_the_store_is_written_once_per_customer_per_flush():
    writes: list[int] = []

    class CountingStore(MemoryStore):
        def put_all(self, entries: dict[int, bytes]) -> None:
            writes.extend(entries)
            super().put_all(entries)

    cache = CustomerStateCache(CountingStore(), capacity=10)
    state = CustomerState()
    for _ in range(5):
        state.positives += 1
        cache.put(1, state)
    assert writes == []  # nothing written before the batch ends
    assert cache.flush() == [1]
    assert writes == [1]


def test_least_recently_used_states_are_dropped_first():
    cache = CustomerStateCache(MemoryStore(), capacity=2)
    for cid in (1, 2, 3):
        cache.put(cid, CustomerState())
    cache.get(1)  # 2 is now the least recently used
    cache.flush()
    assert len(cache) == 2
    assert cache.get(2) is not None  # still in the store: decoded again
    assert cache.misses == 1


def test_a_negative_capacity_is_refused():
    with pytest.raises(ValueError, match="capacity"):
        CustomerStateCache(MemoryStore(), -1)


class ShardedStore:
    """One MemoryStore per shard, written only under the current shard, like a Flink map state
    under the current key."""

    def __init__(self) -> None:
        self.shards: dict[int, MemoryStore] = {}
        self.current = 0

    def _store(self) -> MemoryStore:
        return self.shards.setdefault(self.current, MemoryStore())

    def get(self, key: int) -> bytes | None:
        return self._store().get(key)

    def put_all(self, entries: dict[int, bytes]) -> None:
        self._store().put_all(entries)

    def remove(self, key: int) -> None:
        self._store().remove(key)


def test_a_shard_flush_writes_only_that_shards_customers_under_its_key():
    store = ShardedStore()
    cache = CustomerStateCache(store, capacity=10, shard_of=lambda cid: cid % 2)
    for cid in (1, 2, 3, 4):
        cache.put(cid, CustomerState(positives=cid))
    assert (cache.changed, cache.changed_in(0), cache.changed_in(1)) == (4, 2, 2)
    store.current = 1
    assert sorted(cache.flush(1)) == [1, 3]
    assert sorted(store.shards[1]) == [1, 3] and 0 not in store.shards
    assert cache.changed == 2
    store.current = 0
    assert cache.flush(0, only=[4]) == [4]  # one customer of the shard, the other still waits
    assert sorted(store.shards[0]) == [4] and cache.changed_in(0) == 1


def test_a_changed_state_is_never_evicted_before_it_is_written():
    store = MemoryStore()
    cache = CustomerStateCache(store, capacity=1, shard_of=lambda cid: cid % 2)
    for cid in (1, 2, 3):
        cache.put(cid, CustomerState(positives=cid))
    cache.flush(0)  # writes customer 2; 1 and 3 are changed and stay, over capacity
    assert [cache.get(c).positives for c in (1, 3)] == [1, 3]  # type: ignore[union-attr]
    assert 1 not in store and 3 not in store
    cache.flush(1)
    assert len(cache) == 1 and decode_state(store[3]).positives == 3
