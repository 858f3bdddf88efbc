"""The scoring operator restored under another ``job.shards`` refuses to run, whichever of its
calls comes first after the restore: a batch, a flush marker, or a timer (Debezium's heartbeats
move event time with no change at all, so the restored timers of the other count's shards can
fire first: before session 38 such a timer was a bare KeyError that hid the refusal).

Run in process with Flink's state and timers as dicts (bench/operator.py)."""

from __future__ import annotations

import pytest

from bench.operator import CurrentKey, DictContext, DictRuntimeContext, Feed, make_operator
from livefit.config import DataConfig
from livefit.gc_tuning import streaming_gc
from tests.conftest import Trained

REFUSAL = "this job runs with job.shards=2 but its restored state was written with job.shards=4"


@pytest.fixture
def restored(trained: Trained):
    """A 2-shard operator over the state of a 4-shard job: the new shards' keys are those of old
    shards 0 and 2 (ShardRouter.balancedKeys keeps a key group's key), each old shard's state
    records 4."""
    cfg, workload, _ = trained(DataConfig(customers=20, products=10, history_days=5))
    cfg.job.shards = 2
    keyed = CurrentKey()
    operator = make_operator(cfg, cfg.job.model_dir, shard_keys=[0, 2])
    batch = next(call[2] for chunk in Feed.of(workload, cfg, 500).calls(cfg) for call in chunk
                 if call[0] == "batch")
    # open() freezes the heap for good, as at a job's start: only for the test, not this process.
    with streaming_gc():
        operator.open(DictRuntimeContext(keyed))
        yield operator, keyed, batch


def _restore_state_of_four_shards(operator, keyed: CurrentKey) -> None:
    for key in (0, 1, 2, 3):
        keyed.key = key
        operator.shard_count.update(4)


def test_a_timer_of_a_shard_this_count_does_not_have_is_refused(restored):
    operator, keyed, _ = restored
    _restore_state_of_four_shards(operator, keyed)
    keyed.key = 1
    with pytest.raises(ValueError, match=REFUSAL):
        list(operator.on_timer(0, DictContext(keyed)))


@pytest.mark.parametrize("call", ["timer", "batch", "flush marker"])
def test_any_first_call_of_a_shard_this_count_has_is_refused(restored, call):
    operator, keyed, batch = restored
    _restore_state_of_four_shards(operator, keyed)
    keyed.key = 2
    ctx = DictContext(keyed)
    with pytest.raises(ValueError, match=REFUSAL):
        if call == "timer":
            list(operator.on_timer(0, ctx))
        else:
            list(operator.process_element(batch if call == "batch" else b"", ctx))


def test_a_fresh_state_takes_this_count_and_keeps_it(restored):
    operator, keyed, batch = restored
    keyed.key = 2
    ctx = DictContext(keyed)
    list(operator.process_element(batch, ctx))
    list(operator.process_element(b"", ctx))
    assert operator.shard_count.value() == 2
    keyed.key = 1  # no shard of this count, fresh or not
    with pytest.raises(ValueError, match="job.shards=2 but its restored state was written with another"):
        list(operator.on_timer(0, ctx))
