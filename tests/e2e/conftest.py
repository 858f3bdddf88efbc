"""The real embedded stack for end-to-end tests: PostgreSQL, Debezium, Tansu and the Flink job.

Everything started here is stopped by PID in ``finally``, whatever happens in the tests.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from livefit.config import Config, load_config

E2E_CONFIG = """
[stack]
run_dir = "{run_dir}"
[data]
customers = 60
products = 30
history_days = 20
sessions_per_customer = 5
[job]
model_dir = "{run_dir}/models"
label_horizon_s = 20
checkpoint_interval_ms = 2000
metrics_every_labels = 50
"""


def write_config(run_dir: Path) -> Path:
    path = run_dir / "livefit.toml"
    path.write_text(E2E_CONFIG.format(run_dir=run_dir))
    return path


@dataclass
class TopicCollector:
    """Reads the score and dead-letter topics from offset 0 and keeps every record."""

    cfg: Config
    scores: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)  # kind "order" on the score topic
    metrics: list[dict[str, Any]] = field(default_factory=list)
    control: list[dict[str, Any]] = field(default_factory=list)  # model choices, drift corrections

    def __post_init__(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        from livefit.kafka_io import client_conf

        self.consumer = Consumer(client_conf(self.cfg.kafka, **{
            "group.id": f"e2e-{time.time_ns()}", "enable.auto.commit": False}))
        k = self.cfg.kafka
        self.lists = {k.scores_topic: self.scores, k.deadletter_topic: self.dead,
                      k.labels_topic: self.labels, k.metrics_topic: self.metrics,
                      k.control_topic: self.control}
        self.consumer.assign([TopicPartition(t, 0, 0) for t in self.lists])

    def poll(self) -> None:
        for msg in self.consumer.consume(num_messages=10_000, timeout=0.5):
            if msg.error():
                continue
            record = json.loads(msg.value())
            if msg.topic() == self.cfg.kafka.scores_topic and record.get("kind") == "order":
                self.orders.append(record)
            else:
                self.lists[msg.topic()].append(record)

    def wait_for(self, what: str, cond: Callable[[], bool], timeout_s: float,
                 job: Any = None, log: Path | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if job is not None and job.poll() is not None:
                tail = log.read_text()[-3000:] if log else ""
                raise AssertionError(f"the Flink job exited ({job.returncode}) while waiting for {what}\n{tail}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            self.poll()

    def close(self) -> None:
        self.consumer.close()

    def by_interaction(self) -> dict[int, dict[str, Any]]:
        return {r["interaction_id"]: r for r in self.scores}


def job_failovers(run_dir: Path) -> list[str]:
    """Lines where Flink restarted the job (local execution logs to <run_dir>/logs/flink/).

    With checkpointing on, Flink restarts a failing job forever, so a live job process proves
    nothing by itself: a crash loop shows up here.
    """
    return [line for line in flink_log_lines(run_dir)
            if "switched from state RUNNING to RESTARTING" in line
            or "switched from state RUNNING to FAILING" in line]


def flink_log_lines(run_dir: Path) -> list[str]:
    """Every line Flink logged in local execution (<run_dir>/logs/flink/, rolled files too)."""
    return [line for f in sorted((run_dir / "logs" / "flink").glob("*.log*"))
            for line in f.read_text(errors="replace").splitlines()]


@dataclass
class Stack:
    """The embedded stack with seeded history and a trained model; no job yet."""

    cfg: Config
    config_path: Path
    run_dir: Path
    seeded_interactions: set[int]
    # The seeded history as training reads it (models.train.extract_history), taken before any
    # live change: what the snapshot carries.
    history: tuple[list[Any], dict[int, Any]]

    @property
    def job_env(self) -> dict[str, str]:
        return {**os.environ, "LIVEFIT_CONFIG": str(self.config_path)}


@dataclass
class RunningPipeline:
    cfg: Config
    config_path: Path
    job: Any
    job_log: Path
    seeded_interactions: set[int]
    collector: TopicCollector
    history: tuple[list[Any], dict[int, Any]]


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh run directory under the repo's .livefit/ (PostgreSQL, as nobody, must reach it)."""
    import shutil

    path = REPO / ".livefit" / f"test-{request.module.__name__.rsplit('.', 1)[-1]}-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(run_dir: Path) -> Iterator[Stack]:
    import psycopg

    from livefit import datagen
    from livefit.stack import manager
    from models.train import extract_history, train

    config_path = write_config(run_dir)
    cfg = load_config(config_path, env={})
    try:
        manager.up(cfg, seed=lambda r: datagen.seed(r.postgres.dsn, r.data))
        resolved = cfg.resolved()
        train(resolved.postgres.dsn, resolved.job.model_dir, resolved.job.model_name,
              int(resolved.job.label_horizon_s * 1000), resolved.job.history_len)
        with psycopg.connect(resolved.postgres.dsn) as conn:
            seeded = {r[0] for r in conn.execute("SELECT id FROM interactions")}
        history = extract_history(resolved.postgres.dsn, say=lambda _: None)
        yield Stack(resolved, config_path, run_dir, seeded, history)
    finally:
        manager.down(cfg)


@pytest.fixture(scope="module")
def pipeline(stack: Stack) -> Iterator[RunningPipeline]:
    from livefit.cli import start_job
    from livefit.stack.procs import stop_pid

    job = None
    collector = None
    try:
        log = stack.run_dir / "logs" / "job.log"
        job = start_job(stack.cfg, log, env=stack.job_env)
        collector = TopicCollector(stack.cfg)
        yield RunningPipeline(stack.cfg, stack.config_path, job, log, stack.seeded_interactions, collector,
                              stack.history)
    finally:
        if collector is not None:
            collector.close()
        if job is not None:
            stop_pid(job.pid, timeout_s=20)
