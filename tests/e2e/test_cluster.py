"""Run it the way Flink users do: a standalone session cluster, `flink run -d`, metrics read
back through the REST API, a live model swap through the control topic, a tampered artifact
refused, cancel, and nothing left running."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from livefit import flink_cluster as fc
from livefit.cli import main as livefit_cli
from livefit.stack.procs import free_port, pid_alive
from models.train import train
from tests.e2e.conftest import Stack, TopicCollector

pytestmark = pytest.mark.e2e


def insert_views(dsn: str, n: int) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [conn.execute("INSERT INTO interactions (customer_id, product_id, kind) "
                             "VALUES (%s, %s, 'view') RETURNING id", (1 + i % 20, 1 + i % 30)).fetchone()[0]
                for i in range(n)]


def served_versions(col: TopicCollector, ids: list[int]) -> set[int]:
    """Versions of the swapped (personalised) model in these scores. Customers in their cold start
    may be scored by the cold-start model instead, which a swap does not replace: they must say so."""
    recs = [col.by_interaction()[i] for i in ids]
    for r in recs:
        assert (r["selected"] == "personalised") == (r["model"]["name"] == "propensity"), r
    return {r["model"]["version"] for r in recs if r["selected"] == "personalised"}


def wait_metric(cfg, job_id: str, vertex_prefix: str, name: str, ok, timeout_s: float = 60) -> float:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        for vertex, values in fc.operator_metrics(cfg, job_id, [name]).items():
            if vertex.startswith(vertex_prefix) and name in values:
                seen = values[name]
                if ok(seen):
                    return seen
        time.sleep(2)
    raise AssertionError(f"metric {name} on {vertex_prefix}: last value {seen}")


def test_flink_run_metrics_model_swap_and_cancel(stack: Stack):
    cfg = stack.cfg
    cfg.flink.rest_port, cfg.flink.rpc_port = free_port(), free_port()
    col = TopicCollector(cfg)
    horizon_ms = int(cfg.job.label_horizon_s * 1000)
    try:
        fc.start(cfg)
        job_id = fc.submit(cfg)
        job = fc.rest(cfg, f"/jobs/{job_id}")
        assert job["state"] == "RUNNING"
        names = [v["name"] for v in job["vertices"]]
        print(f"\n[cluster] job graph: {names}")
        for step in ("shard-by-customer", "micro-batch", "parse-control", "score-and-learn",
                     "split-outputs", "drift-examples", "batch-drift-examples", "learn-segment-drift"):
            assert any(step in n for n in names), f"no {step} step in the job graph"
        col.wait_for("snapshot scores from the cluster job",
                     lambda: {r["interaction_id"] for r in col.scores} >= stack.seeded_interactions,
                     timeout_s=240)

        # Custom metrics, read back through the REST API.
        scored = wait_metric(cfg, job_id, "", "events_scored", lambda v: v >= len(stack.seeded_interactions))
        version = wait_metric(cfg, job_id, "", "model_version", lambda v: v == 1)
        tracked = wait_metric(cfg, job_id, "", "customers_tracked", lambda v: v > 0)
        updates = wait_metric(cfg, job_id, "", "sgd_updates", lambda v: v > 0)
        # Checkpoints every 2 s here: the states changed before each barrier are written then.
        written = wait_metric(cfg, job_id, "", "states_written_at_barriers", lambda v: v > 0)
        write_back_us = wait_metric(cfg, job_id, "", "barrier_write_back_us", lambda v: v > 0)
        print(f"[cluster] REST metrics: events_scored={scored} model_version={version} "
              f"customers_tracked={tracked} sgd_updates={updates} "
              f"states_written_at_barriers={written} barrier_write_back_us={write_back_us}")

        # Live swap: a new version, chosen through the control topic, serves the next events.
        train(cfg.postgres.dsn, cfg.job.model_dir, cfg.job.model_name, horizon_ms, cfg.job.history_len)
        env_cfg = ["--config", str(stack.config_path)]
        assert livefit_cli([*env_cfg, "model", "use", "--version", "2"]) == 0
        wait_metric(cfg, job_id, "", "model_swaps", lambda v: v >= 1)
        ids = insert_views(cfg.postgres.dsn, 10)
        col.wait_for("scores by v2", lambda: set(ids) <= set(col.by_interaction()), timeout_s=60)
        assert served_versions(col, ids) == {2}

        # A tampered artifact is refused; v2 stays in use.
        train(cfg.postgres.dsn, cfg.job.model_dir, cfg.job.model_name, horizon_ms, cfg.job.history_len)
        artifact = Path(cfg.job.model_dir) / cfg.job.model_name / "v3" / "model.joblib"
        artifact.write_bytes(artifact.read_bytes() + b"tampered")
        assert livefit_cli([*env_cfg, "model", "use", "--version", "3"]) == 0
        refused = wait_metric(cfg, job_id, "", "model_swaps_refused", lambda v: v >= 1)
        ids = insert_views(cfg.postgres.dsn, 10)
        col.wait_for("scores after the refused swap", lambda: set(ids) <= set(col.by_interaction()), timeout_s=60)
        assert served_versions(col, ids) == {2}
        tm_logs = "".join(p.read_text(errors="replace") for p in
                          (cfg.run_dir / "logs" / "flink-cluster").glob("*taskexecutor*.log"))
        assert "refused" in tm_logs and "sha256" in tm_logs
        print(f"[cluster] swap to v2 served; tampered v3 refused ({refused:.0f} refusals), v2 kept")

        # Stop with a savepoint and resume from it: keyed state and the chosen model survive.
        savepoint = fc.stop_with_savepoint(cfg)
        assert fc.running_job(cfg) is None
        ids = insert_views(cfg.postgres.dsn, 10)  # written while the job is stopped
        job_id = fc.submit(cfg, restore=savepoint)
        col.wait_for("scores after resuming from the savepoint",
                     lambda: set(ids) <= set(col.by_interaction()), timeout_s=120)
        resumed = [col.by_interaction()[i] for i in ids]
        assert served_versions(col, ids) == {2}  # the swap survived the restart
        assert any(r["online_updates"] > 0 for r in resumed)  # so did the online models
        print(f"[cluster] stopped with savepoint {savepoint.rsplit('/', 1)[-1]}, resumed as {job_id}")

        assert fc.cancel(cfg) == job_id
        deadline = time.monotonic() + 30
        while fc.rest(cfg, f"/jobs/{job_id}")["state"] != "CANCELED":
            assert time.monotonic() < deadline
            time.sleep(1)
    finally:
        col.close()
        pids = fc.cluster_pids(cfg)
        fc.cancel(cfg)
        fc.stop(cfg)
    assert pids and not any(pid_alive(p) for p in pids)


def test_python_process_mode_runs_the_same_job(stack: Stack):
    """Process mode (UDFs in Beam workers over gRPC), the alternative to the default thread mode
    the other cluster test runs in."""
    cfg = stack.cfg
    cfg.flink.rest_port, cfg.flink.rpc_port = free_port(), free_port()
    cfg.flink.python_execution_mode = "process"
    col = TopicCollector(cfg)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # what earlier tests left on the topic
            col.poll()
        before = len(col.scores)
        fc.start(cfg)
        job_id = fc.submit(cfg)
        # A new job reads the CDC topics from the start: the history is scored again.
        col.wait_for("scores from the process-mode job",
                     lambda: len(col.scores) >= before + len(stack.seeded_interactions), timeout_s=180)
        tm_log = "".join(p.read_text(errors="replace") for p in
                         (cfg.run_dir / "logs" / "flink-cluster").glob("*taskexecutor*.log"))
        assert "switched from INITIALIZING to FAILED" not in tm_log
        assert fc.rest(cfg, f"/jobs/{job_id}")["state"] == "RUNNING"
        print(f"\n[cluster] process mode: {len(col.scores) - before} scores from job {job_id}")
    finally:
        col.close()
        pids = fc.cluster_pids(cfg)
        fc.cancel(cfg)
        fc.stop(cfg)
        cfg.flink.python_execution_mode = "thread"
    assert not any(pid_alive(p) for p in pids)
