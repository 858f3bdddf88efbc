"""Python's cyclic garbage collector, set for a long-running scoring loop.

The job's operators and the benchmark's in-process limit use the same settings, so the limit
measures the same per-event work under the same collector.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# The default runs a young collection every 700 net allocations. A scoring loop allocates per
# event (records, labels, decoded states) almost only objects that reference counting frees:
# a 450k-event job run spent ~1.1 s of its 32 s in 1,200 young, 110 middle and 10 full
# collections (whole-thread pauses). Fewer, larger young collections and rare older ones:
# the in-process loop's collector time went from 0.5 s to 0.05 s.
GC_THRESHOLDS = (10_000, 20, 20)


def freeze_startup_heap() -> None:
    """Exempt what exists now (after an operator's open(): modules, models, ~200k objects) from
    the cyclic collector, and collect what comes later less often (GC_THRESHOLDS). Left in,
    every full collection walks the startup heap while no record moves: measured 80-140 ms
    pauses in the scoring thread, the job-only p99's worst spikes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@contextmanager
def streaming_gc() -> Iterator[None]:
    """:func:`freeze_startup_heap` for the duration of a block; the previous settings after it.
    ``gc.unfreeze()`` is all or nothing, so if something was frozen before the block, that freeze
    is kept (and with it what the block froze) rather than undone.

    >>> import gc
    >>> before, frozen = gc.get_threshold(), gc.get_freeze_count()
    >>> with streaming_gc():
    ...     gc.get_threshold() == GC_THRESHOLDS
    True
    >>> gc.get_threshold() == before
    True
    >>> gc.get_freeze_count() == frozen
    True
    """
    before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    freeze_startup_heap()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()
        gc.set_threshold(*before)
