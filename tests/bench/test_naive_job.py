"""The naive baseline as a PyFlink job (bench/naive_job.py), on the real broker and Flink: it must
do the work the in-process naive loop does, or job / naive-as-a-job means nothing."""

from __future__ import annotations

from pathlib import Path

from bench.inprocess import customer_sample, naive_logic, run_loop
from bench.run import run_naive_job
from livefit.config import DataConfig
from livefit.stack import broker
from livefit.stack.procs import free_port, stop_pid
from tests.conftest import Trained


def test_the_naive_job_scores_and_learns_what_the_naive_loop_does(trained: Trained, tmp_path: Path):
    cfg, workload, logic = trained(DataConfig(customers=120, products=40, history_days=20))
    sample = customer_sample(workload, 2)
    loop = run_loop(sample, naive_logic(logic), cfg.job.max_out_of_orderness_ms,
                    drift_publish_every=cfg.job.drift_publish_every_labels)
    port = free_port()
    pid = broker.start(port, tmp_path / "tansu.log")
    try:
        cfg.kafka.bootstrap_servers = f"127.0.0.1:{port}"
        r = run_naive_job(cfg, tmp_path / "naive", sample, print)
    finally:
        stop_pid(pid)
    assert (r["mode"], r["parallelism"]) == ("process", 2)
    assert r["interactions_scored"] == loop["interactions_scored"] == sample.interactions
    assert r["labels"] == loop["labels"] and r["positives"] == loop["positives"] > 0
    assert r["orders_scored"] == loop["orders_scored"] > 0
    assert r["eps"] > 0
