"""`livefit bench --throughput-only --cluster`: the job measured on a session cluster of its own,
here two TaskManagers of one slot each at parallelism 2 (each TaskManager a JVM with its own
Python interpreter), on a small workload; every label learned, every feature as offline
training computes it, and nothing of the cluster left running."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil
import pytest

from bench.run import measure_job
from livefit.config import DataConfig, load_config

pytestmark = pytest.mark.e2e


def _processes_under(path: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if any(str(path) in arg for arg in p.info["cmdline"] or []):
            found.append(p)
    return found


def test_bench_measures_the_job_on_two_taskmanagers():
    run_dir = Path(__file__).resolve().parents[2] / ".livefit" / f"bench-cluster-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        cfg = load_config(None, env={"LIVEFIT_STACK__RUN_DIR": str(run_dir),
                                     "LIVEFIT_FLINK__CLUSTER_TASKMANAGERS": "2",
                                     "LIVEFIT_FLINK__CLUSTER_TASK_SLOTS": "1",
                                     "LIVEFIT_JOB__PARALLELISM": "2"})
        r = measure_job(cfg, run_dir, DataConfig(customers=200, products=100, history_days=30), print,
                        cluster=True, naive_extras=False)
        left = _processes_under(run_dir)
    finally:
        for p in _processes_under(run_dir):  # only if the bench failed to stop its cluster
            p.kill()
        shutil.rmtree(run_dir, ignore_errors=True)
    assert left == [], f"the cluster is still running: {[p.pid for p in left]}"
    assert r["job_runs_on"] == "a session cluster of 2 TaskManager(s) x 1 slot(s), parallelism 2"
    job = r["job_by_mode"][r["job_mode"]]
    print(f"\n[bench-cluster] job {r['job_eps']:.0f}/s, limit {r['limit_eps']:.0f}/s, "
          f"JVMs {job['memory_peak']['jvm_mb']} MB, checkpoints {job['checkpoints']}")
    assert job["labels"] == r["interactions"] == r["limit"]["labels"]
    assert abs(job["positives"] - r["limit"]["positives"]) <= 0.02 * r["limit"]["positives"]
    assert job["feature_parity"]["identical"] == job["feature_parity"]["compared"] == r["interactions"]
    assert job["memory_peak"]["jvm_mb"] > 0 and job["checkpoints"]["count"] >= 1
