"""Micro-batches of raw records, customer shards, the shard's label schedule and the framing of
what the scoring operator yields: the plain-Python side of how the job hands many customers'
changes to Python at once, and their results back.

The scoring operator is keyed by *shard* (``shard_of(customer id)``), not by customer: the JVM
(``jobs/java/.../MicroBatcher.java``) collects each shard's raw records for a few milliseconds
and passes them as one element, so PyFlink's fixed cost per element is paid once per batch.
Each customer's state is an entry of its shard's map state, and each shard keeps a schedule of
when its customers' labels and expiries fall due, so a single event-time timer can resolve all
of them that the watermark has passed.

>>> blob = encode_batch([("shop.public.orders", 0, 7, 1795318293200, b'{"id":1}', b"{}"),
...                      ("shop.public.orders", 0, 8, 1795318293201, None, None)])
>>> [(r[0], r[2], r[4], r[5]) for r in decode_batch(blob)]
[('shop.public.orders', 7, b'{"id":1}', b'{}'), ('shop.public.orders', 8, None, None)]
>>> shard_of(1001, 32), shard_of(-(2**63), 32)
(9, 0)
>>> schedule = DueSchedule.of([])
>>> schedule.chunk_for(5_000, 3), schedule.chunk_for(1_000, 1), schedule.chunk_for(5_000, 2)
((5000, False), (1000, False), (5000, True))
>>> schedule.chunk_for(5_000, CHUNK_CUSTOMERS), schedule.keys  # chunk 0 is full: chunk 1
((5001, False), [1000, 5000, 5001])
>>> schedule.pop_until(4_999), schedule.keys
([1000], [5000, 5001])
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from udfs.state_cache import StateStore

# (topic, partition, offset, timestamp, key, value): RawRecordDeserializer.java's row
RawRecord = tuple[str, int, int, int, bytes | None, bytes | None]

_TOPIC_LEN = struct.Struct(">H")
_COORDS = struct.Struct(">iqq")
_LEN = struct.Struct(">i")

# Label deadlines are rounded up to this much event time in a shard's schedule: in real time,
# the labels of one second resolve together, in one timer call per shard.
DUE_GRANULARITY_MS = 1_000


_NULL_FIELD = _LEN.pack(-1)
_topic_headers: dict[str, bytes] = {}  # topic -> its length and UTF-8 bytes: the job has a handful


def _topic_header(topic: str) -> bytes:
    header = _topic_headers.get(topic)
    if header is None:
        t = topic.encode()
        header = _TOPIC_LEN.pack(len(t)) + t
        if len(_topic_headers) < 64:
            _topic_headers[topic] = header
    return header


def _encode(records: Iterable[tuple[Any, ...]], coords: bool) -> bytes:
    """Per record: topic, with ``coords`` (partition, offset, timestamp), then key and value."""
    parts: list[bytes] = []
    append = parts.append
    for record in records:
        append(_topic_header(record[0]))
        if coords:
            append(_COORDS.pack(*record[1:4]))
        for field in record[-2:]:
            if field is None:
                append(_NULL_FIELD)
            else:
                append(_LEN.pack(len(field)))
                append(field)
    return b"".join(parts)


def _decode(blob: bytes, coords: bool) -> list[tuple[Any, ...]]:
    """What :func:`_encode` wrote; a truncated ``blob`` raises ValueError."""
    if not isinstance(blob, bytes):
        blob = bytes(blob)
    out: list[tuple[Any, ...]] = []
    append = out.append
    topic_len, field_len, coords_of = _TOPIC_LEN.unpack_from, _LEN.unpack_from, _COORDS.unpack_from
    pos, end = 0, len(blob)
    fields: list[bytes | None] = [None, None]
    try:
        while pos < end:
            (n,) = topic_len(blob, pos)
            topic = blob[pos + 2:pos + 2 + n].decode()
            pos += 2 + n
            if coords:
                at = coords_of(blob, pos)
                pos += _COORDS.size
            for i in (0, 1):
                (n,) = field_len(blob, pos)
                pos += 4
                if n < 0:
                    fields[i] = None
                else:
                    if pos + n > end:
                        raise ValueError("field runs past the end")
                    fields[i] = blob[pos:pos + n]
                    pos += n
            append((topic, *at, *fields) if coords else (topic, *fields))
    except struct.error as exc:
        raise ValueError(f"truncated at byte {pos} of {end}: {exc}") from exc
    return out


def decode_batch(blob: bytes) -> list[RawRecord]:
    """The raw records in MicroBatcher.encode's framing; a truncated batch raises ValueError."""
    return _decode(blob, coords=True)  # type: ignore[return-value]


def encode_batch(records: list[RawRecord]) -> bytes:
    """What MicroBatcher.encode writes (tests and tools; the job's batches come from the JVM)."""
    return _encode(records, coords=True)


# (topic, key, value): one record for the Kafka sink
OutputRecord = tuple[str, bytes | None, bytes | None]


def encode_outputs(records: list[OutputRecord]) -> bytes:
    """Everything one call of the scoring operator produced, as the one byte array it yields
    (split into records in the JVM by OutputSplitter.java): every element out of Python is a call
    into the JVM, and a batch's scores and labels pay it once. The micro-batch framing without
    the coordinates.

    >>> decode_outputs(encode_outputs([("livefit.scores", b"7", b"{}"), ("t", None, b"")]))
    [('livefit.scores', b'7', b'{}'), ('t', None, b'')]
    """
    return _encode(records, coords=False)


def decode_outputs(blob: bytes) -> list[OutputRecord]:
    """What :func:`encode_outputs` (or OutputSplitter.encode, in the JVM) wrote: the drift
    learner's batches of example records (RecordBatcher.java); a truncated blob raises ValueError."""
    return _decode(blob, coords=False)  # type: ignore[return-value]


def shard_of(customer_id: int, shards: int) -> int:
    """The shard a customer's changes and state belong to (ShardRouter.shardOf)."""
    return customer_id % shards  # Python's % is a floor modulo, like Math.floorMod


EVERY_SHARD_TABLE = "products"  # ShardRouter.EVERY_SHARD_TABLE


def reported_by_shard(shard: int, topic: str, value: bytes | None) -> bool:
    """Whether this shard reports a record that did not parse: a product change reaches every
    shard (ShardRouter.java), and its dead letter must be written once, by shard 0. The JVM's
    rule for "a product change", repeated: the envelope's ``source.table``, else the topic's last
    segment. Only ever over-reports: shard 0 reports whatever it gets.

    >>> product = b'{"op": "c", "source": {"table": "products"}, "after": {"price": "x"}}'
    >>> reported_by_shard(0, "shop.changes", product), reported_by_shard(3, "shop.changes", product)
    (True, False)
    >>> reported_by_shard(3, "shop.changes", b'{"op": "c", "source": {"table": "orders"}}')
    True
    """
    if shard == 0 or value is None:
        return True
    try:
        env = orjson.loads(value)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(env, dict):
        return True
    if "op" not in env and isinstance(env.get("payload"), dict):
        env = env["payload"]
    source = env.get("source")
    table = source.get("table") if isinstance(source, dict) else None
    if not (isinstance(table, str) and table):
        table = topic.rsplit(".", 1)[-1]
    return table != EVERY_SHARD_TABLE


def round_due(ts_ms: int) -> int:
    """A label deadline as the schedule keeps it: rounded up (never resolved early)."""
    return -(-ts_ms // DUE_GRANULARITY_MS) * DUE_GRANULARITY_MS


# A due time may be held in up to this many entries of the "due" map: entry keys are the due
# time (a multiple of DUE_GRANULARITY_MS) plus a chunk number below it. A batch appends its
# customers to the due time's open chunk (read, append, write) until the chunk holds
# CHUNK_CUSTOMERS, then opens the next. One entry per due time was rewritten whole by every
# batch: an hourly inactivity expiry collects every customer active in that hour.
DUE_CHUNKS = DUE_GRANULARITY_MS
CHUNK_CUSTOMERS = 256


def due_time_of(key: int) -> int:
    """The due time of a "due" map entry (its key without the chunk number)."""
    return key - key % DUE_CHUNKS


class DueSchedule:
    """A shard's schedule: the keys of the shard's "due" map state (due time + chunk number),
    sorted, kept in memory so that a timer finds every entry the watermark passed without
    scanning the map (one JVM call per entry): read from the map once per shard after open(),
    then kept up to date beside it. It also says which entry a batch's customers go to.

    Beside the keys it keeps what it needs so that no JVM call is made per due time: the
    customers of every entry added since open() (restored entries are read once, when first
    needed, through ``read``), what changed in the map since it was last written
    (:meth:`changes`: the caller writes it with one ``putAll`` and a remove per entry taken, when
    it chooses: the job at each checkpoint's flush marker), and the one event-time timer the
    shard needs (:meth:`next_timer`): a timer at the earliest due time, moved on when it fires,
    instead of one timer per due time (in a catch-up, event time runs ~10^5 times faster than
    wall time and nearly every label has a due time of its own: a get, a put, a register, a
    delete and a remove per label were a fifth of the scoring thread).

    >>> from udfs.state_cache import MemoryStore
    >>> schedule, store = DueSchedule.of([]), MemoryStore()
    >>> schedule.add(5_000, [7, 8], store.get); schedule.add(2_000, [9], store.get)
    >>> apply_changes(schedule, store); sorted(store), schedule.changes()
    ([2000, 5000], ({}, []))
    >>> schedule.next_timer(), schedule.next_timer()  # the second call: already registered
    (2000, None)
    >>> [(key, schedule.take(key, store.get)) for key in schedule.pop_until(4_999)]
    [(2000, [9])]
    >>> schedule.fired(4_999); schedule.next_timer()
    5000
    """

    __slots__ = ("keys", "open", "held", "dirty", "gone", "stored", "timer")

    def __init__(self, keys: list[int]):
        self.keys = keys
        # due time -> (key, customers added) of the chunk batches append to. Empty after a
        # restore: the first batch then opens a new chunk after the restored ones.
        self.open: dict[int, tuple[int, int]] = {}
        # key -> its customers, added since open(): a list while the entry is new (an array per
        # label's due time cost ~15 % of adding), packed into an int64 array when written.
        self.held: dict[int, list[int] | array] = {}
        self.dirty: set[int] = set()  # keys to write at the next changes()
        self.gone: set[int] = set()  # keys taken that the map still holds: to remove
        self.stored: set[int] = set(keys)  # the keys the map holds, as of the last changes()
        # The earliest timer this schedule registered that has not fired (None: none known; after
        # a restore the restored timers still cover the restored entries, see next_timer).
        self.timer: int | None = None

    @classmethod
    def of(cls, keys: Iterable[int]) -> DueSchedule:
        return cls(sorted(set(keys)))

    def chunk_for(self, due_ms: int, n: int) -> tuple[int, bool]:
        """The key under which to add ``n`` customers due at ``due_ms`` (a multiple of
        DUE_GRANULARITY_MS), and whether that entry already holds customers to append to."""
        if due_ms % DUE_CHUNKS:
            raise ValueError(f"due time {due_ms} is not a multiple of {DUE_CHUNKS} ms")
        key, count = self.open.get(due_ms, (None, 0))
        if key is not None and count + n <= CHUNK_CUSTOMERS:
            self.open[due_ms] = (key, count + n)
            return key, True
        i = bisect_right(self.keys, due_ms + DUE_CHUNKS - 1)
        last = self.keys[i - 1] if i and self.keys[i - 1] >= due_ms else None
        if last == due_ms + DUE_CHUNKS - 1:
            self.open[due_ms] = (last, count + n)  # every chunk used: the last one grows
            return last, True
        key = due_ms if last is None else last + 1
        self.keys.insert(i, key)
        self.open[due_ms] = (key, n)
        return key, False

    def add(self, due_ms: int, customer_ids: list[int], read: Callable[[int], bytes | None]) -> None:
        """``customer_ids`` are due at ``due_ms``; ``read(key)`` is the map's value of a restored
        entry (called at most once per entry)."""
        key, append = self.chunk_for(due_ms, len(customer_ids))
        held = self.held.get(key)
        if held is None:
            held = self.held[key] = array("q", read(key) or b"").tolist() if append else []
        held.extend(customer_ids)
        self.dirty.add(key)
        self.gone.discard(key)  # taken and opened again since the map was written: rewritten

    def changes(self) -> tuple[dict[int, bytes], list[int]]:
        """What the map needs since the last call: the entries to write (as its values) and the
        keys to remove. An entry added and taken in between needs neither."""
        held, puts = self.held, {}
        for key in self.dirty:
            packed = held[key]
            if isinstance(packed, list):
                packed = held[key] = array("q", packed)
            puts[key] = packed.tobytes()
        removes = list(self.gone)
        self.stored.update(self.dirty)
        self.stored.difference_update(self.gone)
        self.dirty.clear()
        self.gone.clear()
        return puts, removes

    def pending(self) -> int:
        """How many entries :meth:`changes` would write or remove."""
        return len(self.dirty) + len(self.gone)

    def pop_until(self, until_ms: int) -> list[int]:
        """Take out and return the keys whose due time is <= ``until_ms``, in order."""
        cut = bisect_right(self.keys, due_time_of(until_ms) + DUE_CHUNKS - 1)
        due, self.keys = self.keys[:cut], self.keys[cut:]
        for key in due:
            self.open.pop(due_time_of(key), None)
        return due

    def take(self, key: int, read: Callable[[int], bytes | None]) -> list[int]:
        """The customers of a popped entry, each once, in the order they were added."""
        held = self.held.pop(key, None)
        self.dirty.discard(key)
        if key in self.stored:
            self.gone.add(key)
        return decode_customers(read(key) if held is None else held)

    def fired(self, until_ms: int) -> None:
        """A timer fired and everything due up to ``until_ms`` was taken: the timer this
        schedule registered is spent if it was at or before then."""
        if self.timer is not None and self.timer <= until_ms:
            self.timer = None

    def next_timer(self) -> int | None:
        """The event time to register a timer for, if the earliest due time has none at or
        before it; None if no timer is needed. (Registering one Flink already has is harmless:
        Flink keeps one timer per key and time.)"""
        if not self.keys:
            return None
        first = due_time_of(self.keys[0])
        if self.timer is not None and self.timer <= first:
            return None
        self.timer = first
        return first


def apply_changes(schedule: DueSchedule, store: StateStore) -> None:
    """:meth:`DueSchedule.changes` written to ``store`` (the shard's "due" map state, or a
    :class:`udfs.state_cache.MemoryStore`): one ``put_all``, a remove per entry taken."""
    puts, removes = schedule.changes()
    if puts:
        store.put_all(puts)
    for key in removes:
        store.remove(key)


def decode_customers(blob: bytes | list[int] | array | None) -> list[int]:
    """The customers due at one time (a "due" map value, or held in memory), each once, in the
    order they were added."""
    if not blob:
        return []
    return list(dict.fromkeys(array("q", blob).tolist() if isinstance(blob, bytes) else blob))
