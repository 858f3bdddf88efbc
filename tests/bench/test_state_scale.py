"""The state-scale measurement on the real stack (Tansu, the job on RocksDB), small: labels must
fall due while the job works through a preloaded backlog, although the orders and control topics
are empty and the job is backpressured the whole time (QuietSplitIdleness.java, which the bench
turns on for this workload: ``job.source_idle_when_others_read``). With Flink's own idleness rule
no label resolved before the last score, and the "small state" throughput was measured without
any of the label work."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.run import measure_state_scale
from livefit.config import load_config

pytestmark = pytest.mark.e2e


def test_labels_resolve_while_a_backlog_is_read():
    run_dir = Path(__file__).resolve().parents[2] / ".livefit" / f"bench-scale-test-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        cfg = load_config(None, env={"LIVEFIT_STACK__RUN_DIR": str(run_dir)})
        r = measure_state_scale(cfg, run_dir, 100_000, print, returning=10_000)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"\n[scale] {r}")
    # Every interaction's label falls due 120 s of event time (2,400 interactions) later, so
    # while the backlog is read labels resolve about as fast as interactions are scored.
    for phase in ("small_state", "all_in_state"):
        assert r[f"labels_per_s_{phase}"] > 0.5 * r[f"eps_{phase}"], phase
