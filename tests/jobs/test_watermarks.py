"""When a source split goes idle (QuietSplitIdleness.java): an empty topic must not hold the
watermark back while the job catches up on a backlog (backpressured, so Flink's input activity
clock stands still), and a split with data must not be taken for idle while its reader is stalled."""

from __future__ import annotations

from typing import Any

import pytest

from tests.jobs.raw import raw_record

IDLENESS_MS = 5_000
TICK_MS = 200  # the periodic watermark interval


class Split:
    """One split's generator with clocks and a reader record count the test drives."""

    def __init__(self, jvm: Any):
        from pyflink.java_gateway import get_gateway

        duration = jvm.java.time.Duration
        self.jvm = jvm
        self.activity = jvm.org.apache.flink.util.clock.ManualClock(1)
        self.wall = jvm.org.apache.flink.util.clock.ManualClock(1)
        self.reader = get_gateway().new_array(jvm.long, 1)
        inner = jvm.org.apache.flink.api.common.eventtime.BoundedOutOfOrdernessWatermarks(duration.ofMillis(2_000))
        self.gen = jvm.livefit.flink.QuietSplitIdleness(inner, duration.ofMillis(IDLENESS_MS),
                                                        self.activity, self.wall, self.reader)

    def tick(self, reader_records: int = 0, activity: bool = False, own_record: bool = False) -> bool:
        """One periodic emit after TICK_MS of wall time; whether the split is idle then."""
        ms = self.jvm.java.time.Duration.ofMillis(TICK_MS)
        self.wall.advanceTime(ms)
        if activity:
            self.activity.advanceTime(ms)
        self.reader[0] = self.reader[0] + reader_records
        if own_record:
            self.gen.onEvent(None, 1_790_000_000_000, None)
        return bool(self.gen.checkIfIdle())


@pytest.fixture
def split(jvm) -> Split:
    return Split(jvm)


def ticks(ms: int) -> int:
    return ms // TICK_MS


def test_an_empty_split_goes_idle_while_its_reader_reads_others_under_backpressure(split):
    # backpressured: the input activity clock stands still; the reader still hands on records
    assert not any(split.tick(reader_records=50) for _ in range(ticks(IDLENESS_MS) - 1))
    assert split.tick(reader_records=50)


def test_a_stalled_reader_does_not_make_its_splits_idle(split):
    # a minute of wall time in which the reader handed on nothing (fully backpressured)
    assert not any(split.tick() for _ in range(ticks(60_000)))


def test_flinks_rule_still_holds_for_a_quiet_reader(split):
    # nothing to read anywhere, not backpressured: idle after the timeout of activity time
    assert not any(split.tick(activity=True) for _ in range(ticks(IDLENESS_MS) - 1))
    assert split.tick(activity=True)


def test_a_split_with_records_stays_active_and_comes_back_from_idle(split):
    assert not any(split.tick(reader_records=50, own_record=True) for _ in range(ticks(3 * IDLENESS_MS)))
    while not split.tick(reader_records=50):
        pass
    assert not split.tick(reader_records=50, own_record=True)
    assert not split.tick(reader_records=50)  # the quiet time starts again from zero


def test_quiet_time_counts_only_while_the_reader_reads(split):
    # half the time stalled, half reading others: idle after IDLENESS_MS of reading, not of wall time
    idle_at = None
    for i in range(ticks(4 * IDLENESS_MS)):
        if split.tick(reader_records=50 if i % 2 else 0):
            idle_at = i
            break
    assert idle_at is not None and idle_at >= 2 * ticks(IDLENESS_MS) - 2


class Output:
    """A WatermarkOutput the JVM calls back into: what the generator told the source."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def emitWatermark(self, watermark: Any) -> None:  # noqa: N802 (Java's name)
        self.calls.append(("watermark", int(watermark.getTimestamp())))

    def markIdle(self) -> None:  # noqa: N802
        self.calls.append(("idle", 0))

    def markActive(self) -> None:  # noqa: N802
        self.calls.append(("active", 0))

    class Java:
        implements = ["org.apache.flink.api.common.eventtime.WatermarkOutput"]


def test_the_control_topic_never_moves_event_time(jvm):
    """ControlTopicOutsideEventTime, the control source's rule: idle from its first periodic emit,
    before any record (an empty control topic must not hold the watermark back during a
    catch-up), and no watermark whatever its records' wall-clock times."""
    control, out = jvm.livefit.flink.ControlTopicOutsideEventTime(), Output()
    control.onPeriodicEmit(out)
    assert out.calls == [("idle", 0)]
    for wall_clock_ms in (1_795_469_954_230, 1_795_469_999_999):
        control.onEvent(raw_record(jvm, "livefit.control", b"{}"), wall_clock_ms, out)
        control.onPeriodicEmit(out)
    assert out.calls and all(kind == "idle" for kind, _ in out.calls), out.calls
