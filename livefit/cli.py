"""The ``livefit`` command line: the embedded stack, data, training, the job, and a live demo."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from livefit.config import Config, ConfigError, load_config, redact_dsn

REPO = Path(__file__).resolve().parents[1]
JOB_FILE = REPO / "jobs" / "score_job.py"


def _say(msg: str) -> None:
    print(msg, flush=True)


# -- stack ------------------------------------------------------------------------------------

def cmd_stack(cfg: Config, args: argparse.Namespace) -> int:
    from livefit.stack import manager

    if args.action == "up":
        seed = None
        if args.seed:

            def seed(resolved: Config) -> None:  # before Debezium starts: history is a snapshot
                _seed_if_empty(resolved)
        state = manager.up(cfg, seed=seed)
        if args.traffic:
            pid = manager.start_traffic(cfg, args.traffic)
            _say(f"[stack] live traffic at {args.traffic:g} interactions/s (pid {pid}, log "
                 f"{cfg.run_dir / 'logs' / 'traffic.log'})")
        _say(f"[stack] up; connection details in {cfg.stack_file}")
        _say(json.dumps({"postgres_dsn": redact_dsn(state["postgres_dsn"]),
                         "bootstrap_servers": state["bootstrap_servers"]}, indent=2))
    elif args.action == "down":
        stopped = manager.down(cfg)
        _say(f"[stack] stopped: {', '.join(stopped) or 'nothing was running'}")
    else:
        st = manager.status(cfg)
        st["postgres_dsn"] = redact_dsn(st.get("postgres_dsn") or "")
        _say(json.dumps(st, indent=2))
    return 0


def _seed_if_empty(cfg: Config) -> None:
    import psycopg

    from livefit import datagen
    from livefit.sql import scalar

    with psycopg.connect(cfg.postgres.dsn) as conn:
        existing = scalar(conn, "SELECT count(*) FROM customers")
    if existing:
        _say(f"[seed] the shop database already has {existing} customers: keeping its history")
    else:
        datagen.seed(cfg.postgres.dsn, cfg.data, say=_say)


def cmd_seed(cfg: Config, args: argparse.Namespace) -> int:
    from livefit import datagen

    cfg = cfg.resolved()
    datagen.seed(cfg.postgres.dsn, cfg.data, say=_say)
    return 0


def cmd_train(cfg: Config, args: argparse.Namespace) -> int:
    from models.train import train

    cfg = cfg.resolved()
    train(cfg.postgres.dsn, cfg.job.model_dir, cfg.job.model_name,
          int(cfg.job.label_horizon_s * 1000), cfg.job.history_len, say=_say,
          max_created_after_commit_ms=cfg.job.max_created_after_commit_ms)
    return 0


def cmd_traffic(cfg: Config, args: argparse.Namespace) -> int:
    from livefit import datagen

    cfg = cfg.resolved()
    last = [time.monotonic()]

    def progress(counts: dict[str, int]) -> None:
        if time.monotonic() - last[0] >= 2:
            last[0] = time.monotonic()
            _say(f"[traffic] {counts}")

    try:
        counts = datagen.traffic(cfg.postgres.dsn, cfg.data, args.rate, args.events,
                                 args.duration, on_tick=progress)
    except KeyboardInterrupt:
        return 130
    _say(f"[traffic] done: {counts}")
    return 0


# -- the job ----------------------------------------------------------------------------------

def job_command(cfg: Config, restore: str | None = None) -> list[str]:
    return [sys.executable, str(JOB_FILE), "--bootstrap-servers", cfg.kafka.bootstrap_servers,
            "--model-dir", str(Path(cfg.job.model_dir).resolve()),
            *(["--restore", restore] if restore else [])]


def start_job(cfg: Config, log_file: Path, env: dict[str, str] | None = None,
              restore: str | None = None) -> subprocess.Popen[bytes]:
    """The job in the background (its own process group, so it can be stopped with its workers)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(job_command(cfg, restore), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)


def cmd_job(cfg: Config, args: argparse.Namespace) -> int:
    cfg = cfg.resolved()
    return subprocess.call(job_command(cfg, args.restore))


def _ensure_model(cfg: Config) -> None:
    """Train the offline models unless a stored version can be served: none yet, or none that
    fits the features this livefit computes (artifacts of an older release, after an upgrade that
    changed the features: the job would refuse them and stop)."""
    from models.registry import ModelError, versions
    from udfs.scoring import OfflineModel

    name = cfg.job.model_name
    stored = versions(cfg.job.model_dir, name)
    if stored:
        try:
            OfflineModel.load_for_serving(cfg.job.model_dir, name)
            return
        except ModelError as exc:
            _say(f"[train] none of the {len(stored)} stored version(s) of '{name}' can be served, "
                 f"so a new one is trained ({str(exc)[:300]}...)")
    cmd_train(cfg, argparse.Namespace())


# -- the Flink session cluster -----------------------------------------------------------------

def cmd_cluster(cfg: Config, args: argparse.Namespace) -> int:
    from livefit import flink_cluster as fc

    if args.action == "up":
        fc.start(cfg)
        _say(f"[cluster] Flink session cluster up: web UI {fc.rest_url(cfg)} (logs {cfg.run_dir / 'logs' / 'flink-cluster'})")
    elif args.action == "down":
        pids = fc.stop(cfg)
        _say(f"[cluster] stopped {len(pids)} Flink processes" if pids else "[cluster] not running")
    else:
        job = fc.running_job(cfg)
        _say(json.dumps({"up": fc.is_up(cfg), "web_ui": fc.rest_url(cfg),
                         "job": job and {k: job[k] for k in ("jid", "name", "state")}}, indent=2))
    return 0


def cmd_submit(cfg: Config, args: argparse.Namespace) -> int:
    from livefit import flink_cluster as fc

    cfg = cfg.resolved()
    _ensure_model(cfg)
    job_id = fc.submit(cfg, restore=args.restore)
    _say(f"[submit] {fc.JOB_NAME} RUNNING as {job_id}: {fc.rest_url(cfg)}/#/job/running/{job_id}/overview")
    return 0


def cmd_cancel(cfg: Config, args: argparse.Namespace) -> int:
    from livefit import flink_cluster as fc

    job_id = fc.cancel(cfg)
    _say(f"[cancel] cancelled {job_id}" if job_id else "[cancel] no livefit job is running")
    return 0


def cmd_stop(cfg: Config, args: argparse.Namespace) -> int:
    from livefit import flink_cluster as fc

    path = fc.stop_with_savepoint(cfg)
    _say(f"[stop] stopped with savepoint {path}; resume with: livefit submit --restore {path}")
    return 0


def cmd_model(cfg: Config, args: argparse.Namespace) -> int:
    from models.registry import load_model, versions

    name = cfg.job.model_name
    if args.action == "list":
        for v in versions(cfg.job.model_dir, name):
            try:
                man = load_model(cfg.job.model_dir, name, v)[1]
                hold = man["metrics"].get("holdout", {})
                _say(f"{name} v{v}  created {man['created_at']}  holdout ROC-AUC {hold.get('roc_auc')} "
                     f"log loss {hold.get('log_loss')}  sha256 {man['sha256'][:12]}")
            except Exception as exc:
                _say(f"{name} v{v}  UNUSABLE: {exc}")
        return 0
    from livefit.kafka_io import producer

    cfg = cfg.resolved()
    version = args.version or versions(cfg.job.model_dir, name)[-1]
    prod = producer(cfg.kafka)
    prod.produce(cfg.kafka.control_topic, key=b"model",
                 value=json.dumps({"action": "use_model", "model": name, "version": version}).encode())
    if prod.flush(10):
        raise RuntimeError("the control message was not delivered")
    _say(f"[model] asked the job to serve {name} v{version}; score records show the version in use")
    return 0


def cmd_bench(cfg: Config, args: argparse.Namespace) -> int:
    from bench.run import run, run_state_scale

    if args.scale:
        run_state_scale(args.scale)
        return 0
    rates = tuple(args.latency_rate) if args.latency_rate else None
    run(quick=args.quick, events=args.events, latency_rates=rates, throughput_only=args.throughput_only,
        cluster=args.cluster)
    return 0


def cmd_report(cfg: Config, args: argparse.Namespace) -> int:
    from livefit.report import report

    seeds = [cfg.data.seed if args.seed is None else args.seed, *(args.also_seed or [])]
    cfg.data.customers = args.customers or cfg.data.report_customers
    summary = report(seeds, Path(args.out), say=_say, with_river=not args.no_river, cfg=cfg)
    missed = [t["target"] for s in summary["seeds"] for t in s["targets"] if not t["met"]]
    if missed:
        _say(f"[report] {len(missed)} target(s) missed (see {args.out}/README.md): "
             + "; ".join(sorted(set(missed))))
    return 0


# -- scores -----------------------------------------------------------------------------------

class ScoreWatcher:
    """Follows the score and dead-letter topics and keeps the numbers a person wants to see."""

    def __init__(self, cfg: Config):
        from confluent_kafka import Consumer, TopicPartition

        from livefit.kafka_io import client_conf

        self.consumer = Consumer(client_conf(cfg.kafka, **{
            "group.id": f"livefit-demo-{os.getpid()}", "enable.auto.commit": False}))
        parts = []
        for topic in (cfg.kafka.scores_topic, cfg.kafka.deadletter_topic):
            meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
            parts += [TopicPartition(topic, p, 0) for p in meta.partitions]
        self.consumer.assign(parts)
        self.scores_topic = cfg.kafka.scores_topic
        self.event_ids: set[str] = set()
        self.live_ids: set[str] = set()
        self.duplicates = 0
        self.dead = 0
        self.latencies: list[int] = []
        self.updated_customers: set[int] = set()
        self.last: dict[str, Any] | None = None
        self.order_ids: set[str] = set()
        self.orders_flagged = 0

    def poll(self, timeout: float = 0.5) -> None:
        for msg in self.consumer.consume(num_messages=5000, timeout=timeout):
            value = msg.value()
            if msg.error() or value is None:
                continue
            if msg.topic() != self.scores_topic:
                self.dead += 1
                continue
            rec = json.loads(value)
            if rec.get("kind") == "order":
                if rec["event_id"] not in self.order_ids:
                    self.order_ids.add(rec["event_id"])
                    self.orders_flagged += bool(rec["anomalous"])
                continue
            if rec["event_id"] in self.event_ids:
                self.duplicates += 1
                continue
            self.event_ids.add(rec["event_id"])
            self.last = rec
            if rec["online_updates"] > 0:
                self.updated_customers.add(rec["customer_id"])
            if not rec["snapshot"]:
                self.live_ids.add(rec["event_id"])
                self.latencies.append(rec["scored_at"] - rec["commit_ts"])

    def latency(self, q: float) -> int | None:
        recent = sorted(self.latencies[-2000:])
        return recent[min(len(recent) - 1, int(q * len(recent)))] if recent else None

    def close(self) -> None:
        self.consumer.close()


def cmd_scores(cfg: Config, args: argparse.Namespace) -> int:
    from livefit.kafka_io import iter_topic

    cfg = cfg.resolved()
    try:
        for _key, value, _ts in iter_topic(cfg.kafka, cfg.kafka.scores_topic, follow=True):
            if value is None:
                continue
            r = json.loads(value)
            if args.raw:
                print(value.decode(), flush=True)
            elif r.get("kind") == "order":
                score = "-" if r["anomaly_score"] is None else f"{r['anomaly_score']:.3f}"
                print(f"{r['event_id']:<34} customer {r['customer_id']:>6} product {r['product_id']:>5} "
                      f"order x{r['quantity']} {r['amount']:>9.2f}  anomaly {score}"
                      f"{'  FLAGGED' if r['anomalous'] else ''}", flush=True)
            else:
                print(f"{r['event_id']:<34} customer {r['customer_id']:>6} product {r['product_id']:>5} "
                      f"{r['interaction_kind']:<11} p_offline {r['p_offline']:.3f} "
                      f"p_online {r['p_online']:.3f} updates {r['online_updates']:>4} "
                      f"{r['model']['name']} v{r['model']['version']}", flush=True)
    except KeyboardInterrupt:
        return 0
    return 0


# -- demo -------------------------------------------------------------------------------------

def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    from livefit import datagen
    from livefit.stack import manager
    from livefit.stack.procs import stop_pid

    started_stack = False
    job: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    traffic_thread: threading.Thread | None = None
    watcher: ScoreWatcher | None = None
    try:
        status = manager.status(cfg)
        if not status.get("postgres_dsn") or status.get("feeder") is not True:
            _say("[demo] starting the embedded stack (PostgreSQL, Tansu, Debezium) and seeding history")

            manager.up(cfg, seed=_seed_if_empty)
            started_stack = True
        cfg = cfg.resolved()
        _ensure_model(cfg)
        log_file = cfg.run_dir / "logs" / "job.log"
        _say(f"[demo] starting the Flink job (local execution; log {log_file})")
        job = start_job(cfg, log_file)
        watcher = ScoreWatcher(cfg)
        t0 = time.monotonic()
        while not watcher.event_ids:
            watcher.poll()
            if job.poll() is not None:
                raise RuntimeError(f"the Flink job exited with code {job.returncode}; see {log_file}")
            if time.monotonic() - t0 > 180:
                raise RuntimeError(f"no scores after 180 s; see {log_file}")
        import psycopg

        from livefit.sql import scalar

        with psycopg.connect(cfg.postgres.dsn) as conn:
            history = scalar(conn, "SELECT count(*) FROM interactions")
        _say(f"[demo] first score after {time.monotonic() - t0:.0f}s; replaying {history} history "
             "interactions from the Debezium snapshot to warm the state up")
        last_say = time.monotonic()
        while len(watcher.event_ids) < history:
            watcher.poll()
            if job.poll() is not None:
                raise RuntimeError(f"the Flink job exited with code {job.returncode}; see {log_file}")
            if time.monotonic() - last_say >= 2:
                last_say = time.monotonic()
                _say(f"[warm-up] {len(watcher.event_ids)}/{history} history interactions scored, "
                     f"{len(watcher.updated_customers)} customers learning online")
        _say(f"[demo] state warmed up in {time.monotonic() - t0:.0f}s; live traffic at "
             f"{args.rate:g} interactions/s")
        counts: dict[str, int] = {}

        def drive() -> None:
            datagen.traffic(cfg.postgres.dsn, cfg.data, args.rate, args.events,
                            should_stop=stop.is_set, on_tick=counts.update)

        traffic_thread = threading.Thread(target=drive, name="traffic", daemon=True)
        traffic_thread.start()
        last_live, last_t = len(watcher.live_ids), time.monotonic()
        while True:
            watcher.poll(timeout=1.0)
            now = time.monotonic()
            if now - last_t >= 2.0:
                n, live = len(watcher.event_ids), len(watcher.live_ids)
                rate = (live - last_live) / (now - last_t)  # of live scores: the history's are counted above
                last_live, last_t = live, now
                p50, p99 = watcher.latency(0.5), watcher.latency(0.99)
                lat = f"commit->score p50 {p50} ms p99 {p99} ms" if p50 is not None else "no live scores yet"
                last = watcher.last or {}
                _say(f"[live] scored {n} ({live} live, {rate:,.0f}/s) | "
                     f"orders {len(watcher.order_ids)} ({watcher.orders_flagged} flagged) | "
                     f"dead-lettered {watcher.dead} | {lat} | customers learning online "
                     f"{len(watcher.updated_customers)} | last: customer {last.get('customer_id')} "
                     f"p_offline {last.get('p_offline')} p_online {last.get('p_online')}")
            if job.poll() is not None:
                raise RuntimeError(f"the Flink job exited with code {job.returncode}; see {log_file}")
            if args.events is not None and len(watcher.live_ids) >= args.events:
                break
        stop.set()
        traffic_thread.join(timeout=10)
        _say("")
        _say(f"[demo] summary: {len(watcher.event_ids)} interactions scored "
             f"({len(watcher.live_ids)} live, {len(watcher.event_ids) - len(watcher.live_ids)} from "
             f"the history snapshot), {len(watcher.order_ids)} orders scored for anomalies "
             f"({watcher.orders_flagged} flagged), {watcher.duplicates} duplicate deliveries absorbed, "
             f"{watcher.dead} dead-lettered; live commit->score latency p50 {watcher.latency(0.5)} ms, "
             f"p99 {watcher.latency(0.99)} ms; {len(watcher.updated_customers)} customers with online "
             f"updates; traffic wrote {counts}")
        return 0
    except KeyboardInterrupt:
        _say("\n[demo] interrupted; stopping")
        return 130
    finally:
        stop.set()
        if traffic_thread is not None:
            traffic_thread.join(timeout=10)
        if watcher is not None:
            watcher.close()
        if job is not None:
            stop_pid(job.pid, timeout_s=20)
        if started_stack:
            stopped = manager.down(cfg)
            _say(f"[demo] stopped the job and {', '.join(stopped)}")


# -- entry point ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livefit", description=__doc__)
    p.add_argument("--config", default="", help="config file (default: $LIVEFIT_CONFIG or ./livefit.toml)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stack", help="start/stop/inspect the embedded PostgreSQL, broker and Debezium")
    s.add_argument("action", choices=["up", "down", "status"])
    s.add_argument("--seed", action="store_true", help="with up: seed history before Debezium starts")
    s.add_argument("--traffic", type=float, metavar="RATE",
                   help="with up: keep writing live traffic at RATE interactions/s in the background")
    s.set_defaults(func=cmd_stack)
    sub.add_parser("seed", help="write seeded history into an empty shop database").set_defaults(func=cmd_seed)
    sub.add_parser("train", help="train a new version of the offline model").set_defaults(func=cmd_train)
    j = sub.add_parser("job", help="run the scoring job in the foreground (local execution)")
    j.add_argument("--restore", metavar="latest|PATH",
                   help="resume state and offsets from the newest checkpoint, or a given checkpoint/savepoint")
    j.set_defaults(func=cmd_job)
    t = sub.add_parser("traffic", help="write live interactions and orders into PostgreSQL")
    t.add_argument("--rate", type=float, default=50.0, help="interactions per second")
    t.add_argument("--events", type=int, help="stop after this many interactions")
    t.add_argument("--duration", type=float, help="stop after this many seconds")
    t.set_defaults(func=cmd_traffic)
    d = sub.add_parser("demo", help="everything: stack, seed, train, job, live traffic, live view")
    d.add_argument("--events", type=int, help="stop after this many live interactions are scored")
    d.add_argument("--rate", type=float, default=50.0, help="live interactions per second")
    d.set_defaults(func=cmd_demo)
    c = sub.add_parser("cluster", help="the Flink standalone session cluster (web UI on 127.0.0.1:8081)")
    c.add_argument("action", choices=["up", "down", "status"])
    c.set_defaults(func=cmd_cluster)
    su = sub.add_parser("submit", help="train if needed, then `flink run -d` the job on the cluster")
    su.add_argument("--restore", metavar="PATH", help="start from this savepoint or checkpoint")
    su.set_defaults(func=cmd_submit)
    sub.add_parser("cancel", help="cancel the job on the cluster").set_defaults(func=cmd_cancel)
    sub.add_parser("stop", help="stop the job on the cluster with a savepoint").set_defaults(func=cmd_stop)
    m = sub.add_parser("model", help="list model versions, or make the running job serve one")
    m.add_argument("action", choices=["list", "use"])
    m.add_argument("--version", type=int, help="with use: the version (default: the newest)")
    m.set_defaults(func=cmd_model)
    b = sub.add_parser("bench", help="benchmark: the job vs the in-process limit and the naive baseline")
    b.add_argument("--quick", action="store_true", help="a reduced run (a few minutes)")
    b.add_argument("--events", type=int, help="about this many interactions in the workload")
    b.add_argument("--throughput-only", action="store_true",
                   help="only the job (configured mode) vs the in-process limit and the naive baseline; "
                        "with --events 450000, a sustained run of ~2 minutes of scoring")
    b.add_argument("--cluster", action="store_true",
                   help="with --throughput-only: the job on a session cluster of its own "
                        "(flink.cluster_taskmanagers TaskManagers x flink.cluster_task_slots slots) "
                        "instead of local execution")
    b.add_argument("--latency-rate", type=float, action="append",
                   help="offered load for the latency run (repeatable; default 1000 quick (the target's load), 1000 and 5000 full)")
    b.add_argument("--scale", type=int, action="append", metavar="CUSTOMERS",
                   help="only the state-at-scale measurement (rocksdb), with this many customers "
                        "(repeatable; the full run does 100000 and 1000000)")
    b.set_defaults(func=cmd_bench)
    r = sub.add_parser("report", help="model quality: offline vs offline + online vs River (Markdown, "
                                      "PNG, summary.json)")
    r.add_argument("--seed", type=int, help="workload seed (default: data.seed, 7)")
    r.add_argument("--also-seed", type=int, action="append", help="more seeds in the same report")
    r.add_argument("--customers", type=int,
                   help="customers in the workload (default: data.report_customers, 3000)")
    r.add_argument("--out", default="docs/quality", help="output directory (default %(default)s)")
    r.add_argument("--no-river", action="store_true", help="skip the River baseline (no venv)")
    r.set_defaults(func=cmd_report)
    sc = sub.add_parser("scores", help="tail the score topic")
    sc.add_argument("--raw", action="store_true", help="print the JSON records as they are")
    sc.set_defaults(func=cmd_scores)
    return p


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the command's finally blocks stop
    # the processes it started (a broker, a job, a stack) instead of leaving them running.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        cfg = load_config(args.config)
        return int(args.func(cfg, args) or 0)
    except (ConfigError, FileNotFoundError, RuntimeError) as exc:
        print(f"livefit {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"livefit {args.command}: interrupted; stopped what it had started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
