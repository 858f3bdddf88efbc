"""Customers' decoded states kept between micro-batches, written back once per batch.

Reading a customer's state from Flink and decoding it cost more than the scoring itself (py-spy
on the job: map get + ``decode_state`` 15 % of the scoring thread, ``on_event`` 12 %), and the
cost grows with the pending labels a customer has. Only the operator that owns a shard ever
changes its customers' states, so a decoded state it keeps stays exact: it is read from Flink
once, then served from memory until the cache evicts it (least recently used first).

A changed state is encoded once, when the batch ends (:meth:`CustomerStateCache.flush`), not
after each change: on a backlog a customer has several changes per batch, and encoding after
every one of them was 14 % of the scoring thread. Until then, the store holds the state as of
the last flush. When the logic fails half-way through an event, :meth:`forget` drops the
half-changed object, the next read decodes the state as last flushed, and the caller applies
that customer's earlier changes of the batch again (:func:`udfs.customer.reapply`). The store
(Flink map state) is written once per customer per batch, before the batch ends: nothing a
checkpoint needs is left in memory.

>>> store = MemoryStore()
>>> cache = CustomerStateCache(store, capacity=2)
>>> state = cache.get(7) or CustomerState()
>>> state.positives += 1
>>> cache.put(7, state)
>>> (7 in store, cache.flush(), decode_state(store[7]).positives)
(False, 1, 1)
>>> cache.get(7) is state  # served from memory, not decoded again
True
"""

from __future__ import annotations

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

    ``capacity`` bounds how many decoded states stay in memory between batches; a batch may
    touch more, they are trimmed after its flush.
    """

    def __init__(self, store: StateStore, capacity: int):
        if capacity < 0:
            raise ValueError(f"state cache capacity must be >= 0, got {capacity}")
        self.store = store
        self.capacity = capacity
        self._decoded: dict[int, CustomerState] = {}  # insertion order = least recently used first
        # Changed since the last flush (None: removed). A changed state is always in _decoded.
        self._changed: dict[int, CustomerState | None] = {}
        self.hits = 0
        self.misses = 0

    def get(self, customer_id: int) -> CustomerState | None:
        """The customer's state (None if there is none). Change it, then :meth:`put` it."""
        state = self._decoded.pop(customer_id, None)
        if state is not None:
            self.hits += 1
            self._decoded[customer_id] = state  # most recently used
            return state
        self.misses += 1
        if customer_id in self._changed:
            return None  # removed since the last flush
        blob = self.store.get(customer_id)
        if blob is None:
            return None
        state = self._decoded[customer_id] = decode_state(blob)
        return state

    def put(self, customer_id: int, state: CustomerState) -> None:
        """Keep ``state`` as the customer's state (encoded and written at the next flush)."""
        self._changed[customer_id] = state
        self._decoded.pop(customer_id, None)
        self._decoded[customer_id] = state

    def remove(self, customer_id: int) -> None:
        """Forget the customer (removed from the store at the next flush)."""
        self._changed[customer_id] = None
        self._decoded.pop(customer_id, None)

    def forget(self, customer_id: int) -> None:
        """Drop the customer's changes since the last flush, e.g. after a change failed half-way:
        the next :meth:`get` decodes the state as last flushed."""
        self._decoded.pop(customer_id, None)
        self._changed.pop(customer_id, None)

    def flush(self) -> int:
        """Encode and write every changed state to the store, trim the cache; the number written."""
        store = self.store
        encoded: dict[int, bytes] = {}
        for customer_id, state in self._changed.items():
            if state is None:
                store.remove(customer_id)
            else:
                encoded[customer_id] = encode_state(state)
        if encoded:  # one call into Flink for the batch: a put per customer was 8 % of the thread
            store.put_all(encoded)
        written = len(self._changed)
        self._changed.clear()
        excess = len(self._decoded) - self.capacity
        if excess > 0:
            # The oldest ``excess`` keys only: listing every key first cost ~50 us per flush
            # at the default 10k capacity once the cache was full (~2 us this way).
            oldest = iter(self._decoded)
            for customer_id in [next(oldest) for _ in range(excess)]:
                del self._decoded[customer_id]
        return written

    def __len__(self) -> int:
        return len(self._decoded)
