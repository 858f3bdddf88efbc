"""Customers' decoded states kept between micro-batches, written back to Flink state in bulk.

Reading a customer's state from Flink and decoding it cost more than the scoring itself (py-spy
on the job: map get + ``decode_state`` 15 % of the scoring thread, ``on_event`` 12 %), and the
cost grows with the pending labels a customer has. Only the operator that owns a shard ever
changes its customers' states, so a decoded state it keeps stays exact: it is read from Flink
once, then served from memory until the cache evicts it (least recently used first).

A changed state is encoded when it is written (:meth:`CustomerStateCache.flush`), not after each
change. The caller decides when: the job writes a shard's changed customers before each
checkpoint barrier (a flush marker per shard from the JVM) and whenever a customer has changed
often or too many are changed (``jobs/score_job.py``), since every interaction otherwise cost
two encodes and writes (scored, then its label learned). Changes are kept per shard because a
Flink map state is written under the current key: a shard's customers can only be written
while that shard is the key. A changed state is never evicted before it is written. Until
then, the store holds the state as of the last write. When the logic fails half-way through an
event, :meth:`forget` drops the half-changed object, the next read decodes the state as last
written, and the caller applies that customer's changes since then again
(:func:`udfs.customer.reapply`).

>>> store = MemoryStore()
>>> cache = CustomerStateCache(store, capacity=2)
>>> state = cache.get(7) or CustomerState()
>>> state.positives += 1
>>> cache.put(7, state)
>>> (7 in store, cache.changed, cache.flush(), decode_state(store[7]).positives, cache.changed)
(False, 1, [7], 1, 0)
>>> cache.get(7) is state  # served from memory, not decoded again
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from udfs.customer import CustomerState, decode_state, encode_state


class StateStore(Protocol):
    """What the cache needs of Flink's map state."""

    def get(self, key: int) -> bytes | None: ...
    def put_all(self, entries: dict[int, bytes]) -> None: ...
    def remove(self, key: int) -> None: ...


class MemoryStore(dict[int, bytes]):
    """A :class:`StateStore` in a dict, for tests and tools."""

    def put_all(self, entries: dict[int, bytes]) -> None:
        self.update(entries)

    def remove(self, key: int) -> None:
        self.pop(key, None)


class CustomerStateCache:
    """Decoded customer states in front of a key-value store (Flink ``MapState`` or a dict).

    ``capacity`` bounds how many unchanged decoded states stay in memory after a flush; changed
    ones stay until they are written. ``shard_of`` says which shard (store key space) a customer belongs to;
    :meth:`flush` writes one shard's changes, or all of them (a single store, as in tests).
    """

    def __init__(self, store: StateStore, capacity: int,
                 shard_of: Callable[[int], int] = lambda customer_id: 0):
        if capacity < 0:
            raise ValueError(f"state cache capacity must be >= 0, got {capacity}")
        self.store = store
        self.capacity = capacity
        self.shard_of = shard_of
        # Unchanged decoded states; insertion order = least recently used first.
        self._decoded: dict[int, CustomerState] = {}
        # Per shard: the states changed since the last write (None: removed), apart from the
        # unchanged ones, so that trimming never has to step over a state waiting for its write.
        self._changed: dict[int, dict[int, CustomerState | None]] = {}
        self.changed = 0  # customers changed and not yet written, over every shard
        self.hits = 0
        self.misses = 0

    def get(self, customer_id: int) -> CustomerState | None:
        """The customer's state (None if there is none). Change it, then :meth:`put` it."""
        changed = self._changed.get(self.shard_of(customer_id))
        if changed and customer_id in changed:
            self.hits += 1
            state = changed.pop(customer_id)
            changed[customer_id] = state  # most recently used (the order it is written back in)
            return state
        state = self._decoded.pop(customer_id, None)
        if state is not None:
            self.hits += 1
            self._decoded[customer_id] = state  # most recently used
            return state
        self.misses += 1
        blob = self.store.get(customer_id)
        if blob is None:
            return None
        state = self._decoded[customer_id] = decode_state(blob)
        return state

    def _mark(self, customer_id: int, state: CustomerState | None) -> None:
        self._decoded.pop(customer_id, None)
        changed = self._changed.setdefault(self.shard_of(customer_id), {})
        if customer_id in changed:
            del changed[customer_id]
        else:
            self.changed += 1
        changed[customer_id] = state

    def put(self, customer_id: int, state: CustomerState) -> None:
        """Keep ``state`` as the customer's state (encoded and written by a later flush)."""
        self._mark(customer_id, state)

    def remove(self, customer_id: int) -> None:
        """Forget the customer (removed from the store by a later flush)."""
        self._mark(customer_id, None)

    def forget(self, customer_id: int) -> None:
        """Drop the customer's changes since they were last written, e.g. after a change failed
        half-way: the next :meth:`get` decodes the state as last written."""
        self._decoded.pop(customer_id, None)
        changed = self._changed.get(self.shard_of(customer_id))
        if changed is not None and customer_id in changed:
            del changed[customer_id]
            self.changed -= 1

    def changed_in(self, shard: int) -> int:
        """How many of ``shard``'s customers are changed and not yet written."""
        return len(self._changed.get(shard, ()))

    def flush(self, shard: int | None = None, only: Iterable[int] | None = None) -> list[int]:
        """Encode and write the changed states of ``shard`` (None: every shard), or of just the
        customers ``only`` (all of that shard); trim the cache. Returns the customers written."""
        shards = list(self._changed) if shard is None else [shard]
        store, decoded = self.store, self._decoded
        encoded: dict[int, bytes] = {}
        written: list[int] = []
        for s in shards:
            changed = self._changed.get(s)
            if not changed:
                continue
            if only is None:
                entries = list(changed.items())
                changed.clear()
            else:
                entries = [(c, changed.pop(c)) for c in only if c in changed]
            for customer_id, state in entries:
                if state is None:
                    store.remove(customer_id)
                else:
                    encoded[customer_id] = encode_state(state)
                    decoded[customer_id] = state  # unchanged from now on, most recently used
                written.append(customer_id)
        if encoded:  # one call into Flink for the batch: a put per customer was 8 % of the thread
            store.put_all(encoded)
        self.changed -= len(written)
        excess = len(decoded) - self.capacity
        if excess > 0:
            # The oldest ``excess`` keys only: listing every key first cost ~50 us per flush
            # at the default 10k capacity once the cache was full (~2 us this way).
            oldest = iter(decoded)
            for customer_id in [next(oldest) for _ in range(excess)]:
                del decoded[customer_id]
        return written

    def __len__(self) -> int:
        return len(self._decoded) + self.changed
