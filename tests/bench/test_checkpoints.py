"""Checkpoints as the bench reads them from Flink's log: sizes and durations parsed from the
JobManager's "Completed checkpoint" lines, and the wait for one more checkpoint, which ends as
soon as the log shows it rather than after a fixed sleep."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bench.run import _await_checkpoint, _checkpoints
from livefit.config import load_config

LINE = ("2026-11-24 09:37:01,123 INFO  org.apache.flink.runtime.checkpoint.CheckpointCoordinator [] - "
        "Completed checkpoint {n} for job 0f1e2d3c4b5a69788796a5b4c3d2e1f0 ({size} bytes, "
        "checkpointDuration={ms} ms, finalizationTime=0 ms).\n")


def _log(path: Path, *checkpoints: tuple[int, int]) -> None:
    with path.open("a") as f:
        for n, (size, ms) in enumerate(checkpoints, 1):
            f.write("unrelated line\n" + LINE.format(n=n, size=size, ms=ms))


def test_sizes_and_durations_come_from_the_completed_lines(tmp_path: Path) -> None:
    _log(tmp_path / "flink-jobmanager.log", (1000, 40), (3000, 60), (2000, 50))
    assert _checkpoints(tmp_path) == {"count": 3, "size_bytes_last": 2000, "size_bytes_max": 3000,
                                      "duration_ms_median": 50, "duration_ms_max": 60}
    assert _checkpoints(tmp_path / "missing") == {"count": 0}


def test_the_wait_ends_when_the_next_checkpoint_is_logged(tmp_path: Path) -> None:
    cfg = load_config()
    cfg.job.checkpoint_interval_ms = 20_000  # the wait's own limit: 30 s
    log = tmp_path / "flink-jobmanager.log"
    _log(log, (1000, 40))
    writer = threading.Timer(0.5, lambda: _log(log, (1200, 45)))
    writer.start()
    t0 = time.monotonic()
    _await_checkpoint(cfg, tmp_path)
    waited = time.monotonic() - t0
    writer.join()
    assert 0.4 < waited < 5.0
    assert _checkpoints(tmp_path)["count"] == 2
