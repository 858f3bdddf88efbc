"""The feeder stamps each change event with its event time: the row's created_at, else the
source commit time, else the batch's previous one (never a crash on a value it cannot read)."""

from __future__ import annotations

import orjson
import pytest

from livefit.stack.feeder import row_time_ms


def _envelope(after: dict | None, before: dict | None = None, ts_ms: int = 1_795_341_700_123) -> str:
    return orjson.dumps({"before": before, "after": after, "op": "c" if after else "d",
                         "source": {"ts_ms": ts_ms}, "ts_ms": ts_ms + 5}).decode()


def test_created_at_is_the_event_time():
    value = _envelope({"id": 1, "created_at": "2026-11-22T10:00:00.250+00:00"})
    assert row_time_ms(value, None) == 1_795_341_600_250


def test_a_row_without_created_at_takes_the_commit_time_and_a_delete_its_before_image():
    assert row_time_ms(_envelope({"id": 1}), None) == 1_795_341_700_123
    deleted = _envelope(None, before={"id": 1, "created_at": "2026-11-22T10:00:00+00:00"})
    assert row_time_ms(deleted, None) == 1_795_341_600_000


@pytest.mark.parametrize("value", [None, "not json", "[1, 2]", '{"after": {"created_at": "soon"}}'])
def test_what_it_cannot_read_falls_back_to_the_previous_time(value):
    assert row_time_ms(value, 42) == 42


def test_a_created_at_after_its_commit_takes_the_commit_time_as_the_job_does():
    """A row created a year after its commit has a wrong clock: the job dead-letters it and keeps
    it out of event time, and the feeder's record timestamp follows the same rule."""
    assert row_time_ms(_envelope({"id": 1, "created_at": "2026-11-22T10:01:00+00:00"},
                                 ts_ms=1_795_341_600_000), None) == 1_795_341_660_000  # a minute ahead: kept
    assert row_time_ms(_envelope({"id": 1, "created_at": "2027-11-22T10:00:00+00:00"},
                                 ts_ms=1_795_341_600_000), None) == 1_795_341_600_000
