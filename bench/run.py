"""`livefit bench [--quick]`: one run, three measurements of the same work, and their ratios.

1. job: the CDC topics preloaded with the workload (no feeder in the way), the job started on
   them (local execution), throughput = interactions scored / (last score - first score), from
   the score records' broker timestamps; peak RSS of the job's JVM and Python workers sampled;
   checkpoint sizes and durations read from Flink's log.
2. limit and naive: the same records through bench/inprocess.py in this process.
3. latency: the full embedded stack (PostgreSQL, Debezium, broker, job) with live traffic at a
   fixed offered rate, after a warm-up at that rate; commit (source.ts_ms) to score record
   (broker timestamp), p50/p95/p99, split at Debezium's envelope ts_ms and the score's scored_at.
4. job-only latency: broker -> job -> broker, change events produced at a fixed rate into a
   running job whose state is warm; hand-off to the producer to score record (broker timestamp).
5. state at scale: the rocksdb backend with N customers (100k and 1M; 100k in quick mode: with
   fewer, the small-state window passes before labels resolve) first created, then returning at
   random; throughput with all N in state against throughput while the state was still small,
   in the same run, and the bytes per customer on disk.
Results: a table on stdout and bench/results/<timestamp>.json.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import operator
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from confluent_kafka import Consumer, TopicPartition

from bench.inprocess import customer_sample, naive_logic, run_loop
from bench.operator import Feed, run_operator
from livefit import flink_cluster as fc
from livefit.config import Config, DataConfig, load_config
from livefit.kafka_io import client_conf, ensure_topics, producer
from livefit.stack import broker, manager
from livefit.stack.procs import free_port, stop_pid
from livefit.workload import Workload, build_workload
from udfs.customer import CustomerLogic, ScoringParams
from udfs.envelope import ChangeEvent, parse_record
from udfs.replay import replay

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# About how many interactions the naive baseline runs on (a customer sample's whole histories):
# at 300-800/s through sklearn (the machine's speed drifts), 8-20 s in process and 6-22 s as a
# PyFlink job at parallelism 2 (at 3,000 the job's run was ~3 s on a fast day, too short to trust).
NAIVE_INTERACTIONS = 6000
# The producer settings a result records (config["sink"]): what shapes the broker's share of the cores.
SINK_SETTINGS = ("linger.ms", "batch.size", "compression.type")


def _say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def _process_tree(pid: int, descendants: bool = True) -> list[psutil.Process]:
    """A process and (with ``descendants``) its live descendants; [] if it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)] if descendants else [root]
    except psutil.Error:
        return []


class ProcessTreeSampler(threading.Thread):
    """Peak RSS of process trees (the local job's client, or a session cluster's JVMs): the
    JVMs and the Python workers, separately, each summed over the trees."""

    def __init__(self, *pids: int):
        super().__init__(daemon=True, name="rss-sampler")
        self.pids = pids
        self.peak = {"jvm_mb": 0.0, "python_workers_mb": 0.0, "job_client_mb": 0.0}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            jvm = workers = client = 0.0
            for pid in self.pids:
                for p in _process_tree(pid):
                    try:
                        rss = p.memory_info().rss / 2**20
                        name = " ".join(p.cmdline()[:3])
                    except psutil.Error:
                        continue
                    if "java" in name:
                        jvm += rss
                    elif p.pid == pid:
                        client += rss  # the Python process that started the job locally
                    else:
                        workers += rss
            self.peak["jvm_mb"] = max(self.peak["jvm_mb"], round(jvm))
            self.peak["python_workers_mb"] = max(self.peak["python_workers_mb"], round(workers))
            self.peak["job_client_mb"] = max(self.peak["job_client_mb"], round(client))


def _cpu_seconds(pid: int, tree: bool) -> float:
    """User + system CPU time of a process, with its live descendants if ``tree`` (0 if it is gone)."""
    procs = _process_tree(pid, descendants=tree)
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def _named_processes(trees: dict[str, int] | None, alone: dict[str, int] | None) -> dict[str, tuple[int, bool]]:
    """name -> (pid, with its descendants): ``trees`` whole, ``alone`` each process by itself."""
    return {**{name: (pid, True) for name, pid in (trees or {}).items()},
            **{name: (pid, False) for name, pid in (alone or {}).items()}}


def _cpu_by_name(pids: dict[str, tuple[int, bool]]) -> dict[str, float]:
    return {name: _cpu_seconds(*how) for name, how in pids.items()}


class CpuShares:
    """CPU of named process trees (``trees``) and single processes (``alone``, e.g. the bench's
    own process, whose children are the stack and the job) over a window, in cores (1.0 = one
    core busy throughout): which part of the path uses the machine while load is offered. A
    descendant that exits inside the window is not counted.

    >>> shares = CpuShares(alone={"bench": os.getpid()})
    >>> _ = sum(i * i for i in range(200_000))
    >>> shares.cores()["bench"] > 0
    True
    """

    def __init__(self, trees: dict[str, int] | None = None, alone: dict[str, int] | None = None):
        self.pids = _named_processes(trees, alone)
        self.t0 = time.monotonic()
        self.c0 = _cpu_by_name(self.pids)

    def cores(self) -> dict[str, float]:
        seconds = max(time.monotonic() - self.t0, 1e-9)
        c1 = _cpu_by_name(self.pids)
        return {name: round((c1[name] - self.c0[name]) / seconds, 2) for name in self.pids}


class CpuTimeline(threading.Thread):
    """Cumulative CPU seconds of named process trees and single processes (as :class:`CpuShares`
    counts them), sampled every ``every_s`` on the wall clock (the clock of the broker's
    timestamps on this machine): the cores each part used between two moments known only
    afterwards, e.g. a job's first and last score.

    >>> t = CpuTimeline(alone={"bench": os.getpid()}, every_s=0.05)
    >>> t.start(); t0 = time.time(); _ = sum(i * i for i in range(2_000_000)); t1 = time.time()
    >>> time.sleep(0.1); t.stop.set()
    >>> 0 < t.cores_between(t0, t1)["bench"] <= 1.5
    True
    """

    def __init__(self, trees: dict[str, int] | None = None, alone: dict[str, int] | None = None,
                 every_s: float = 0.5):
        super().__init__(daemon=True, name="cpu-timeline")
        self.pids = _named_processes(trees, alone)
        self.every_s = every_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.stop = threading.Event()

    def _sample(self) -> None:
        self.samples.append((time.time(), _cpu_by_name(self.pids)))

    def run(self) -> None:
        self._sample()
        while not self.stop.wait(self.every_s):
            self._sample()

    def cores_between(self, t0: float, t1: float) -> dict[str, float]:
        """Cores used by each tree from the last sample at or before ``t0`` to the first at or
        after ``t1`` (wall-clock seconds); {} if the samples do not cover the window (it began
        before the first sample, or has not ended). A process that exits inside the window takes
        its CPU time with it: sample live trees only."""
        if self.samples and self.samples[-1][0] < t1 <= time.time():
            self._sample()  # the window ended since the last sample: no need to wait for the next
        samples = list(self.samples)  # two threads append: not necessarily in time order
        before = [s for s in samples if s[0] <= t0]
        after = [s for s in samples if s[0] >= t1]
        if not before or not after:
            return {}
        (a, ca), (b, cb) = max(before, key=lambda s: s[0]), min(after, key=lambda s: s[0])
        cores = {n: round((cb[n] - ca[n]) / (b - a), 2) for n in self.pids}
        return {**cores, "total": round(sum(cores.values()), 2), "window_s": round(b - a, 1)}


def _consumer(cfg: Config, topic: str) -> Consumer:
    """A consumer of ``topic`` from its first record (no group offsets: every read is whole)."""
    c = Consumer(client_conf(cfg.kafka, **{"group.id": f"bench-{time.time_ns()}", "enable.auto.commit": False}))
    c.assign([TopicPartition(topic, 0, 0)])
    return c


def _collect(cfg: Config, topic: str, entry: Callable[[Any, dict[str, Any]], Any],
             want: Callable[[dict[str, Any]], bool], timeout_s: float, job: Any = None,
             what: str = "records", partial: bool = False, quiet_s: float | None = None,
             key: Callable[[dict[str, Any]], Any] = operator.itemgetter("event_id")) -> dict[Any, Any]:
    """``key(record)`` (default: its event_id) -> ``entry(message, record)`` (None: skip) of
    ``topic``'s records, first one wins, until ``want`` says done. A timeout or the job exiting
    raises, or with ``partial`` ends the read with what arrived; so does ``quiet_s`` without a
    new record."""
    consumer = _consumer(cfg, topic)
    seen: dict[Any, Any] = {}
    deadline = time.monotonic() + timeout_s
    last_new, count = time.monotonic(), 0
    try:
        while not want(seen):
            if quiet_s is not None and len(seen) == count and time.monotonic() - last_new > quiet_s:
                break
            if len(seen) != count:
                last_new, count = time.monotonic(), len(seen)
            if time.monotonic() > deadline:
                if partial:
                    break
                raise TimeoutError(f"only {len(seen)} {what} after {timeout_s:.0f}s")
            if job is not None and job.poll() is not None:
                if partial:
                    break
                raise RuntimeError(f"the job exited ({job.returncode})")
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                value = msg.value()
                if msg.error() or value is None:
                    continue
                r = json.loads(value)
                item = entry(msg, r)
                if item is not None:
                    seen.setdefault(key(r), item)
    finally:
        consumer.close()
    return seen


def _await_topic_written(cfg: Config, topic: str, expected: int, timeout_s: float, job: Any,
                         quiet_s: float = 3.0, poll_s: float = 0.5) -> None:
    """Wait, without reading, until ``topic`` holds ``expected`` records or its end offset has
    stopped growing for ``quiet_s`` after it started: the job's output is read afterwards, so the
    bench's consumer (JSON per record, the broker serving its fetches) does not share the two
    cores with the job it measures. Only a wait: Tansu's end offset is the last batch's base
    offset + 1 (PLATFORM.md), so the read that follows is what counts."""
    consumer = _consumer(cfg, topic)
    deadline = time.monotonic() + timeout_s
    end, changed = 0, time.monotonic()
    try:
        while time.monotonic() < deadline:
            if job is not None and job.poll() is not None:
                return  # the read that follows says what is missing
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5, cached=False)
            if high >= expected:
                return
            if high != end:
                end, changed = high, time.monotonic()
            elif end > 0 and time.monotonic() - changed > quiet_s:
                return
            time.sleep(poll_s)
    finally:
        consumer.close()


def _score_entry(msg: Any, r: dict[str, Any]) -> dict[str, Any] | None:
    if r.get("kind") != "interaction":
        return None  # order anomaly scores: measured as part of the work, counted apart
    return {"broker_ts": msg.timestamp()[1], "commit_ts": r["commit_ts"],
            "snapshot": r["snapshot"], "interaction_id": r["interaction_id"], "scored_at": r["scored_at"],
            "product_known": r["product_known"], "drift_offset": r["drift_offset"]}


def _order_score_ts(msg: Any, r: dict[str, Any]) -> int | None:
    return msg.timestamp()[1] if r.get("kind") == "order" else None


def _collect_scores(cfg: Config, want: Callable[[dict[str, dict[str, Any]]], bool], timeout_s: float,
                    job: Any = None) -> dict[str, dict[str, Any]]:
    """event_id -> {"broker_ts", "commit_ts", ...} of every interaction score, until ``want`` says done."""
    return _collect(cfg, cfg.kafka.scores_topic, _score_entry, want, timeout_s, job, "scores")


def _labels(cfg: Config, want: int, timeout_s: float, job: Any = None,
            features: dict[int, list[float]] | None = None, quiet_s: float | None = None) -> list[tuple[int, int]]:
    """(broker timestamp, label) of the label records (one per interaction once its label
    resolved), in time order, until ``want`` are there, ``timeout_s`` passes or (with
    ``quiet_s``) none came for that long; then whatever arrived. ``features``, if given, gets
    each interaction's features as scored."""
    def entry(msg: Any, r: dict[str, Any]) -> tuple[int, int]:
        if features is not None:
            features.setdefault(r["interaction_id"], r["features"])
        return msg.timestamp()[1], r["label"]
    labels = _collect(cfg, cfg.kafka.labels_topic, entry,
                      lambda seen: len(seen) >= want, timeout_s, job, "labels", partial=True, quiet_s=quiet_s)
    return sorted(labels.values())


_COMPLETED_CHECKPOINT = re.compile(
    r"Completed checkpoint \d+ for job \w+ \((\d+) bytes, .*?(?:completedCheckpointDuration|checkpointDuration)=(\d+) ms")


def _completed_checkpoints(flink_log_dir: Path) -> list[tuple[int, int]]:
    """(size in bytes, duration in ms) of each checkpoint Flink's log says completed."""
    return [(int(m.group(1)), int(m.group(2))) for f in flink_log_dir.glob("*.log*")
            for m in _COMPLETED_CHECKPOINT.finditer(f.read_text(errors="replace"))]


def _checkpoints(flink_log_dir: Path) -> dict[str, Any]:
    done = _completed_checkpoints(flink_log_dir)
    if not done:
        return {"count": 0}
    sizes, durations = [size for size, _ in done], [ms for _, ms in done]
    return {"count": len(sizes), "size_bytes_last": sizes[-1], "size_bytes_max": max(sizes),
            "duration_ms_median": statistics.median(durations), "duration_ms_max": max(durations)}


def _await_checkpoint(cfg: Config, flink_log_dir: Path) -> None:
    """Until one more checkpoint than now has completed (it then holds the state as it is now),
    or 1.5 checkpoint intervals passed."""
    before = len(_completed_checkpoints(flink_log_dir))
    deadline = time.monotonic() + cfg.job.checkpoint_interval_ms / 1000 * 1.5
    while time.monotonic() < deadline and len(_completed_checkpoints(flink_log_dir)) <= before:
        time.sleep(0.25)


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 1) if s else float("nan")


def _job_env(cfg: Config, run_dir: Path, mode: str | None = None) -> dict[str, str]:
    env = {**os.environ, "LIVEFIT_STACK__RUN_DIR": str(run_dir),
           "LIVEFIT_JOB__PARALLELISM": str(cfg.job.parallelism),
           "LIVEFIT_JOB__CHECKPOINT_INTERVAL_MS": str(cfg.job.checkpoint_interval_ms),
           "LIVEFIT_KAFKA__SCORES_TOPIC": cfg.kafka.scores_topic,
           "LIVEFIT_KAFKA__LABELS_TOPIC": cfg.kafka.labels_topic}
    if mode:
        env["LIVEFIT_FLINK__PYTHON_EXECUTION_MODE"] = mode
    return env


def _preload_and_train(cfg: Config, run_dir: Path, workload: Any,
                       records: list[tuple[str, bytes, bytes, int]], **producer_conf: Any) -> None:
    """Create the topics, write ``records`` to them, train the models on the workload's history
    into ``run_dir/models``."""
    from models.train import train_on_history

    ensure_topics(cfg.kafka, cfg.kafka.all_topics())
    _preload(cfg, records, **producer_conf)
    cfg.job.model_dir = str(run_dir / "models")
    train_on_history(workload.history, workload.products, cfg.job.model_dir, cfg.job.model_name,
                     int(cfg.job.label_horizon_s * 1000), cfg.job.history_len, say=lambda m: None)


def _preload(cfg: Config, records: list[tuple[str, bytes, bytes, int]], **producer_conf: Any) -> None:
    prod = producer(cfg.kafka, **producer_conf)
    for topic, key, value, ts in records:
        while True:
            try:
                prod.produce(topic, key=key, value=value, timestamp=ts)
                break
            except BufferError:
                prod.poll(0.1)
    assert prod.flush(120) == 0


class ClusterJob:
    """The job on a session cluster, as the waits see the local job's process: ``poll()`` is
    None while it runs."""

    def __init__(self, cfg: Config, every_s: float = 2.0):
        self.cfg = cfg
        self.returncode: int | None = None
        self.every_s = every_s  # the waits poll on every read; the REST API is asked this often
        self.checked = 0.0

    def poll(self) -> int | None:
        if self.returncode is None and time.monotonic() - self.checked >= self.every_s:
            self.checked = time.monotonic()
            if fc.running_job(self.cfg) is None:
                self.returncode = 1  # failed, cancelled or finished: the cluster's log says which
        return self.returncode


def where_it_runs(cfg: Config, cluster: bool) -> str:
    if not cluster:
        return "local execution (mini cluster)"
    f = cfg.flink
    return (f"a session cluster of {f.cluster_taskmanagers} TaskManager(s) x {f.cluster_task_slots} "
            f"slot(s), parallelism {cfg.job.parallelism}")


def _run_job(cfg: Config, run_dir: Path, interactions: int, orders: int, mode: str,
             say: Callable[[str], None], reference: dict[int, list[float]],
             cluster: bool = False, broker_pid: int | None = None) -> dict[str, Any]:
    """The job in one Python execution mode over the preloaded topics, into its own score topic,
    in local execution or (``cluster``) submitted to a session cluster of its own
    (``flink.cluster_taskmanagers``). ``reference``: each interaction's features as offline
    training computes them. Throughput in interactions/s, and in scored events/s: the
    interactions' and ``orders``' score records (each order gets its anomaly score), first to
    last; with ``broker_pid``, the cores the job, the broker and this process used from first to
    last score."""
    from livefit.cli import start_job

    base_topic, base_labels = cfg.kafka.scores_topic, cfg.kafka.labels_topic
    cfg.kafka.scores_topic = f"{base_topic}.bench-{mode}"
    cfg.kafka.labels_topic = f"{base_labels}.bench-{mode}"
    base_run_dir, base_ports = cfg.stack.run_dir, (cfg.flink.rest_port, cfg.flink.rpc_port)
    job: Any = None
    sampler = timeline = None
    try:
        ensure_topics(cfg.kafka, [cfg.kafka.scores_topic, cfg.kafka.labels_topic])
        env = _job_env(cfg, run_dir, mode)
        t_submit = time.time()
        if cluster:
            cfg.stack.run_dir = str(run_dir / "cluster")
            cfg.flink.rest_port, cfg.flink.rpc_port = free_port(), free_port()
            fc.start(cfg)
            fc.submit(cfg, env_overrides={k: v for k, v in env.items() if k.startswith("LIVEFIT_")})
            job, flink_logs = ClusterJob(cfg), fc.log_dir(cfg)
            sampler = ProcessTreeSampler(*fc.cluster_pids(cfg))
        else:
            job = start_job(cfg, run_dir / "logs" / "job.log", env=env)
            flink_logs = run_dir / "logs" / "flink"
            sampler = ProcessTreeSampler(job.pid)
        sampler.start()
        if broker_pid is not None and not cluster:
            timeline = CpuTimeline({"job": job.pid, "broker": broker_pid}, alone={"bench": os.getpid()})
            timeline.start()
        _await_topic_written(cfg, cfg.kafka.scores_topic, interactions + orders, timeout_s=1800, job=job)
        scores = _collect_scores(cfg, lambda s: len(s) >= interactions, timeout_s=1800, job=job)
        ts = sorted(v["broker_ts"] for v in scores.values())
        span = (ts[-1] - ts[0]) / 1000
        eps = interactions / span if span > 0 else float("nan")
        order_ts = sorted(_collect(cfg, cfg.kafka.scores_topic, _order_score_ts, lambda s: len(s) >= orders,
                                   timeout_s=60, job=job, what="order scores", partial=True).values())
        all_span = (max(ts[-1], *order_ts[-1:]) - min(ts[0], *order_ts[:1])) / 1000
        events_eps = (interactions + len(order_ts)) / all_span if all_span > 0 else float("nan")
        say(f"job, python {mode} mode: {eps:,.0f} interactions/s over {span:.1f}s "
            f"(first score {ts[0] / 1000 - t_submit:.0f}s after start); with the orders' anomaly "
            f"scores, {events_eps:,.0f} scored events/s ({interactions:,} + {len(order_ts):,} of {orders:,} orders)")
        cores = timeline.cores_between(ts[0] / 1000, ts[-1] / 1000) if timeline else {}
        if cores:
            say(f"job, python {mode} mode: cores used from first to last score: {cores}")
        # The whole path ends when the last label has been learned (the last labels fall due
        # after the last score: the watermark trails the reading by the horizon).
        features: dict[int, list[float]] = {}
        resolved = _labels(cfg, interactions, timeout_s=600, job=job, features=features)
        parity = _feature_parity(scores, features, reference)
        say(f"job, python {mode} mode: features as offline training computes them for {parity['identical']:,} of "
            f"{parity['compared']:,} labelled interactions; {parity['scored_without_product']:,} "
            "scored without their product's attributes")
        labels = [t for t, _ in resolved]
        positives = sum(y for _, y in resolved)
        # The shared drift correction travels through the control topic: scores that applied
        # one show that it reached the scoring operator while the job caught up.
        drift_applied = sum(1 for s in scores.values() if s["drift_offset"])
        during = bisect.bisect_right(labels, ts[-1])
        learned_span = (labels[-1] - ts[0]) / 1000 if labels else float("nan")
        learned_eps = len(labels) / learned_span if labels and learned_span > 0 else float("nan")
        say(f"job, python {mode} mode: {len(labels):,} labels learned, the last {learned_span:.1f}s "
            f"after the first score: {learned_eps:,.0f} interactions/s scored and learned from; "
            f"{during:,} before the last score; {positives:,} positive; {drift_applied:,} scores "
            "applied a segment's drift correction")
        _await_checkpoint(cfg, flink_logs)
    finally:
        for thread in (sampler, timeline):
            if thread is not None:
                thread.stop.set()
        if cluster:
            with contextlib.suppress(OSError, ValueError):  # a cluster that never answered
                fc.cancel(cfg)
            fc.stop(cfg)
            cfg.stack.run_dir, (cfg.flink.rest_port, cfg.flink.rpc_port) = base_run_dir, base_ports
        elif job is not None:
            stop_pid(job.pid, timeout_s=30)
        cfg.kafka.scores_topic, cfg.kafka.labels_topic = base_topic, base_labels
    return {"eps": round(eps, 1), "seconds": round(span, 1),
            "scored_events_eps": round(events_eps, 1), "orders_scored": len(order_ts),
            "learned_eps": round(learned_eps, 1), "learned_seconds": round(learned_span, 1),
            "labels": len(labels), "labels_before_last_score": during, "positives": positives,
            "scores_with_drift_correction": drift_applied,
            "feature_parity": parity,
            "memory_peak": sampler.peak if sampler else {},
            "cpu_cores": cores,
            "checkpoints": _checkpoints(flink_logs)}


def run_naive_job(cfg: Config, run_dir: Path, sample: Workload, say: Callable[[str], None],
                  mode: str = "process", parallelism: int = 2, timeout_s: float = 900) -> dict[str, Any]:
    """The naive baseline as a PyFlink job (``bench/naive_job.py``) over ``sample``'s changes, on
    the broker at ``cfg.kafka``, with the models in ``cfg.job.model_dir``; by default in PyFlink's
    default ``mode`` at the issue's parallelism 2, two Python processes, one per core (livefit's
    job runs at 1: one interpreter measured faster for it).

    Throughput: scored interactions / s, first to last, by the time each score record was made
    (its ``scored_at``: the sink stamps records with their event time, not the broker's clock).
    Raises if it scored or learned less than ``sample`` holds: the baseline would have measured
    less work than the job's."""
    topic = f"{cfg.kafka.changes_topic}.naive-job"
    out_topic = f"{cfg.kafka.scores_topic}.naive-job"
    ensure_topics(cfg.kafka, [topic, out_topic])
    _preload(cfg, [(topic, key, value, ts) for _, key, value, ts in sample.records])
    log = run_dir / "logs" / "naive-job.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**_job_env(cfg, run_dir), "FLINK_LOG_DIR": str(run_dir / "logs" / "flink")}
    cmd = [sys.executable, "-m", "bench.naive_job", "--bootstrap-servers", cfg.kafka.bootstrap_servers,
           "--topic", topic, "--records", str(len(sample.records)), "--out-topic", out_topic,
           "--model-dir", str(Path(cfg.job.model_dir).resolve()),
           "--parallelism", str(parallelism), "--mode", mode]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=REPO, env=env)
    try:
        returncode = proc.wait(timeout=timeout_s)  # its source is bounded: it ends by itself
    finally:
        stop_pid(proc.pid)
    if returncode != 0:
        raise RuntimeError(f"the naive baseline's job failed (exit {returncode}): see {log}")
    records = list(_collect(cfg, out_topic, lambda _msg, r: r, lambda seen: False, timeout_s=120,
                            what="naive scores", partial=True, quiet_s=3).values())
    scored = sorted(r["scored_at"] for r in records if r["kind"] == "interaction")
    labels = sum(r["kind"] == "label" for r in records)
    if len(scored) < sample.interactions or labels < sample.interactions:
        raise RuntimeError(f"the naive baseline's job scored {len(scored):,} and learned {labels:,} of "
                           f"{sample.interactions:,} interactions: see {log}")
    span = (scored[-1] - scored[0]) / 1000
    eps = len(scored) / span if span > 0 else float("nan")
    say(f"naive as a PyFlink job ({mode} mode, parallelism {parallelism}, the same sample): "
        f"{eps:,.0f} interactions/s over {span:.1f}s")
    return {"eps": round(eps, 1), "seconds": round(span, 1), "mode": mode, "parallelism": parallelism,
            "interactions_scored": len(scored), "labels": labels,
            "positives": sum(r["label"] for r in records if r["kind"] == "label"),
            "orders_scored": sum(r["kind"] == "order" for r in records),
            "scored_without_product": sum(r["kind"] == "interaction" and not r["product_known"]
                                          for r in records)}


def offline_features(workload: Workload, params: ScoringParams) -> dict[int, list[float]]:
    """Each interaction's features as offline training computes them (udfs.replay: the history
    replayed in commit order through the job's feature code)."""
    end_ms = max(e.ts_ms for e in workload.history)
    return {ex.event.row_id: ex.x for ex in replay(workload.history, workload.products,
                                                   params.history_len, params.label_horizon_ms, end_ms)}


def _feature_parity(scores: dict[str, dict[str, Any]], features: dict[int, list[float]],
                    reference: dict[int, list[float]]) -> dict[str, int]:
    """How far the job's features (as its labels carry them) match ``reference``, the offline
    replay's: equal only if the job applied every change in commit order (a customer's orders
    after the interactions that preceded them, a product's row before the interactions that
    followed it)."""
    compared = [iid for iid in features if iid in reference]
    return {"compared": len(compared),
            "identical": sum(features[iid] == reference[iid] for iid in compared),
            "scored_without_product": sum(not s["product_known"] for s in scores.values())}


def _fresh(logic: CustomerLogic) -> CustomerLogic:
    """The same models and parameters, none of the drift corrections ``logic`` has learned: what
    a second loop over the same events must start from to do the same work."""
    return CustomerLogic(logic.model, logic.params, logic.cold_model, logic.anomaly_model)


def measure_job(cfg: Config, run_dir: Path, data: DataConfig, say: Callable[[str], None],
                modes: tuple[str, ...] | None = None, cluster: bool = False,
                naive_extras: bool = True) -> dict[str, Any]:
    """Throughput of the job (in each Python execution mode of ``modes``; the configured one is
    the headline; on a session cluster of its own with ``cluster``) against the in-process limit
    and the naive baseline, on the same workload; with ``naive_extras`` the naive baseline also
    as a PyFlink job (:func:`run_naive_job`) and its loop once more after the job."""
    modes = modes or (cfg.flink.python_execution_mode,)
    workload = build_workload(cfg, data)
    say(f"workload: {len(workload.records)} change events, {workload.interactions} interactions")
    port = free_port()
    broker_pid = broker.start(port, run_dir / "logs" / "tansu.log")
    cfg.kafka.bootstrap_servers = f"127.0.0.1:{port}"
    try:
        _preload_and_train(cfg, run_dir, workload, workload.records,
                           **{"linger.ms": 50, "batch.num.messages": 10_000})
        say(f"preloaded the CDC topics on 127.0.0.1:{port}")
        logic = CustomerLogic.for_serving(
            cfg.job.model_dir, cfg.job.model_name, 0, cfg.job.anomaly_model_name,
            cfg.job.scoring_params())
        drift_every = cfg.job.drift_publish_every_labels
        reference = offline_features(workload, cfg.job.scoring_params())
        loop_features: dict[int, list[float]] = {}
        limit = run_loop(workload, logic, cfg.job.max_out_of_orderness_ms, drift_publish_every=drift_every,
                         features=loop_features)
        limit["feature_parity"] = {"compared": len(loop_features), "identical": sum(
            reference.get(iid) == x for iid, x in loop_features.items())}
        say(f"in-process limit: {limit['eps']:,.0f} interactions/s")
        every = max(1, workload.interactions // NAIVE_INTERACTIONS)
        sample = customer_sample(workload, every)
        naive = run_loop(sample, naive_logic(logic), cfg.job.max_out_of_orderness_ms,
                         drift_publish_every=drift_every)
        say(f"naive (sklearn per event for every model; every {every}th customer's whole history, "
            f"{sample.interactions:,} interactions): {naive['eps']:,.0f} interactions/s")
        # The limit on the same sample: how much cheaper (or dearer) than the whole workload the
        # sample's work is for livefit's own loop, and the two loops compared on the same events.
        limit_on_sample = run_loop(sample, _fresh(logic), cfg.job.max_out_of_orderness_ms,
                                   drift_publish_every=drift_every)
        say(f"in-process limit on that sample: {limit_on_sample['eps']:,.0f} interactions/s")
        naive_scoring = run_loop(sample, naive_logic(logic, online_through_sklearn=False),
                                 cfg.job.max_out_of_orderness_ms, drift_publish_every=drift_every)
        say(f"naive, scoring only (sklearn per event for the offline and anomaly models, livefit's "
            f"online model): {naive_scoring['eps']:,.0f} interactions/s")
        orders = sum(1 for e in workload.history if e.table == "orders")
        runs_on = where_it_runs(cfg, cluster)
        say(f"the job runs in {runs_on}")
        runs = {mode: _run_job(cfg, run_dir / f"job-{mode}", workload.interactions, orders, mode, say, reference,
                               cluster=cluster, broker_pid=broker_pid)
                for mode in modes}
        naive_job = run_naive_job(cfg, run_dir / "naive-job", sample, say) if naive_extras else None
    finally:
        stop_pid(broker_pid)
    headline = cfg.flink.python_execution_mode if cfg.flink.python_execution_mode in runs else modes[0]
    job = runs[headline]
    # The scoring operator alone, fed at the rate the job read its input: what its own Python
    # adds to the limit, apart from what Flink adds to it. Without the parity checks' feature
    # vectors (a 1.4M-event run holds ~1.6M lists of them): held, they slowed it by ~9 %.
    del reference, loop_features
    operator = run_operator(cfg, cfg.job.model_dir, Feed.of(
        workload, cfg, job["eps"] * len(workload.records) / max(workload.interactions, 1)))
    say(f"the scoring operator in this process, fed as the job fed it: {operator['eps']:,.0f} "
        f"interactions/s (micro-batches of {operator['records_per_batch']} records)")
    # The limit once more, after the job: on a machine whose speed drifts within minutes (the
    # limit measured 11,378-16,211/s across one hour's 450k runs in session 36) the two say how
    # far the ratios against the first may be off.
    limit_after = run_loop(workload, _fresh(logic), cfg.job.max_out_of_orderness_ms,
                           drift_publish_every=drift_every)
    say(f"in-process limit again, after the job: {limit_after['eps']:,.0f} interactions/s")
    limits_mean = (limit["eps"] + limit_after["eps"]) / 2
    # The naive loop once more too: its sklearn calls drift with the machine as the limit does
    # (483-802/s across sessions 34-39), and job / naive moved with it as much as with the job.
    naive_after = None
    if naive_extras:
        naive_after = run_loop(sample, naive_logic(logic), cfg.job.max_out_of_orderness_ms,
                               drift_publish_every=drift_every)
        say(f"naive again, after the job: {naive_after['eps']:,.0f} interactions/s")
    return {
        "events": len(workload.records), "interactions": workload.interactions,
        "job_eps": job["eps"], "job_seconds": job["seconds"], "job_mode": headline,
        "job_scored_events_eps": job["scored_events_eps"], "orders": orders,
        "limit_scored_events_eps": limit["scored_events_eps"],
        "job_learned_eps": job["learned_eps"], "job_learned_seconds": job["learned_seconds"],
        "job_by_mode": runs, "job_runs_on": runs_on,
        "limit_eps": limit["eps"], "naive_eps": naive["eps"],
        "operator_in_process": operator,
        "ratio_operator_limit": round(operator["eps"] / limit["eps"], 4),
        "ratio_job_operator": round(job["eps"] / operator["eps"], 4),
        "ratio_job_limit": round(job["eps"] / limit["eps"], 4),
        "limit_after_eps": limit_after["eps"],
        "ratio_limit_after_before": round(limit_after["eps"] / limit["eps"], 4),
        "ratio_job_limits_mean": round(job["eps"] / limits_mean, 4),
        "ratio_job_naive": round(job["eps"] / naive["eps"], 2),
        **({"naive_after_eps": naive_after["eps"],
            "ratio_naive_after_before": round(naive_after["eps"] / naive["eps"], 4),
            "ratio_job_naives_mean": round(job["eps"] / ((naive["eps"] + naive_after["eps"]) / 2), 2)}
           if naive_after else {}),
        "naive_sample": {"every_nth_customer": every, "interactions": sample.interactions,
                         "limit_eps": limit_on_sample["eps"],
                         "ratio_limit_naive": round(limit_on_sample["eps"] / naive["eps"], 2)},
        **({"naive_job": naive_job, "ratio_job_naive_job": round(job["eps"] / naive_job["eps"], 2),
            "ratio_naive_job_naive": round(naive_job["eps"] / naive["eps"], 3)} if naive_job else {}),
        "naive_scoring_only_eps": naive_scoring["eps"],
        "ratio_job_naive_scoring_only": round(job["eps"] / naive_scoring["eps"], 2),
        "limit": limit, "naive": naive, "naive_scoring_only": naive_scoring,
        "memory_peak": job["memory_peak"],
        "job_cpu_cores": job["cpu_cores"],
        "checkpoints": job["checkpoints"],
        "state_bytes_per_customer": {"mean": limit["state_bytes_per_customer_mean"],
                                     "max": limit["state_bytes_per_customer_max"],
                                     "how": "encode_state (the bytes the job keeps per customer), in-process loop"},
    }


def measure_latency(cfg: Config, run_dir: Path, rate: float, seconds: float,
                    say: Callable[[str], None], warmup_s: float = 10.0) -> dict[str, Any]:
    """Commit to score with the whole path: PostgreSQL -> Debezium -> broker -> job -> broker.

    Traffic runs ``warmup_s`` at ``rate`` before the measured ``seconds``: the first seconds of
    live traffic after the snapshot are slower (JIT compilation of the streaming paths, first
    timers), and their p99 is reported apart. The measured part is split by the Debezium
    envelope's own ``ts_ms`` (when the connector processed the change) and the score's
    ``scored_at``: commit -> Debezium -> (feeder, broker, job) -> scored -> score on the broker."""
    from livefit import datagen
    from livefit.cli import start_job
    from models.train import train

    cfg.stack.run_dir = str(run_dir)
    cfg.kafka.bootstrap_servers = ""
    cfg.postgres.dsn = ""
    cfg.data = DataConfig(customers=300, products=100, history_days=20)
    job = None
    try:
        stack = manager.up(cfg, seed=lambda r: datagen.seed(r.postgres.dsn, r.data, say=lambda m: None))
        say("latency: stack up, training")
        r = cfg.resolved()
        r.job.model_dir = str(run_dir / "models")
        train(r.postgres.dsn, r.job.model_dir, r.job.model_name, int(r.job.label_horizon_s * 1000),
              r.job.history_len, say=lambda m: None)
        say("latency: job starting; waiting for the snapshot's first score")
        job = start_job(r, run_dir / "logs" / "job.log", env=_job_env(r, run_dir))
        _collect_scores(r, lambda s: len(s) > 0, timeout_s=240, job=job)  # job up, snapshot flowing
        say("latency: snapshot scored; waiting for its labels to settle")
        # As in the job-only measurement: the snapshot's labels resolve at once when the idle
        # topics stop holding the watermark; that warm-up burst is not the steady state.
        _wait_until_quiet(r, r.kafka.labels_topic, min_s=r.job.source_idleness_ms / 1000 + 2,
                          quiet_s=3.0, timeout_s=300)
        say(f"latency: offering {rate:,.0f} interactions/s, {warmup_s:.0f}s of warm-up then {seconds:.0f}s measured")
        t_warm = time.time() * 1000
        warm = datagen.traffic(r.postgres.dsn, r.data, rate, duration_s=warmup_s)
        t0 = time.time() * 1000
        parts = {"job": job.pid, "feeder": stack.get("feeder_pid"), "postgres": stack.get("postgres_pid"),
                 "broker": stack.get("broker_pid")}
        cpu = CpuShares({name: int(pid) for name, pid in parts.items() if pid},
                        alone={"load_generator": os.getpid()})
        counts = datagen.traffic(r.postgres.dsn, r.data, rate, duration_s=seconds)
        cores = cpu.cores()
        say("latency: traffic offered; collecting its scores")
        achieved = counts["interactions"] / seconds
        live = counts["interactions"] + warm["interactions"]
        scores = _collect_scores(
            r, lambda s: sum(1 for v in s.values() if not v["snapshot"] and v["commit_ts"] >= t_warm) >= live,
            timeout_s=300, job=job)
        measured = [v for v in scores.values() if not v["snapshot"] and v["commit_ts"] >= t0]
        warming = [v for v in scores.values() if not v["snapshot"] and t_warm <= v["commit_ts"] < t0]
        lat = [v["broker_ts"] - v["commit_ts"] for v in measured]
        cdc_ts = _debezium_ts(r, {v["interaction_id"] for v in measured})
        at_debezium = [(v, cdc_ts[v["interaction_id"]]) for v in measured if v["interaction_id"] in cdc_ts]
        split = {"commit_to_debezium": [t - v["commit_ts"] for v, t in at_debezium],
                 "debezium_to_scored": [v["scored_at"] - t for v, t in at_debezium],
                 "scored_to_broker": [v["broker_ts"] - v["scored_at"] for v in measured]}
        out = {"offered_rate": rate, "achieved_rate": round(achieved, 1), "seconds": seconds,
               "scored": len(lat), "p50": _pct(lat, 0.5), "p95": _pct(lat, 0.95), "p99": _pct(lat, 0.99),
               "warmup_seconds": warmup_s,
               "warmup_p99": _pct([v["broker_ts"] - v["commit_ts"] for v in warming], 0.99),
               "split": {k: {"p50": _pct(x, 0.5), "p99": _pct(x, 0.99)} for k, x in split.items()},
               "cpu_cores": {**cores, "total": round(sum(cores.values()), 2), "machine": os.cpu_count()}}
        say(f"latency at {achieved:,.0f}/s offered (after {warmup_s:.0f}s of warm-up, p99 "
            f"{out['warmup_p99']} ms): p50 {out['p50']} ms, p95 {out['p95']} ms, p99 {out['p99']} ms; "
            f"split p50/p99: {out['split']}; cores while offered: {out['cpu_cores']}")
        return out
    finally:
        if job is not None:
            stop_pid(job.pid, timeout_s=30)
        manager.down(cfg)


def _debezium_ts(cfg: Config, ids: set[int], timeout_s: float = 60.0) -> dict[int, int]:
    """interaction id -> the Debezium envelope's ts_ms (when the connector processed the change),
    for ``ids``: read until each has been seen or ``timeout_s`` passed. Not until the topic is
    quiet: the connector's heartbeats keep it growing while the stack runs."""
    def entry(_msg: Any, env: dict[str, Any]) -> int | None:
        if (env.get("source") or {}).get("table") != "interactions" or env.get("ts_ms") is None:
            return None
        return int(env["ts_ms"]) if "id" in (env.get("after") or {}) else None

    return _collect(cfg, cfg.kafka.changes_topic, entry, lambda seen: ids <= seen.keys(), timeout_s,
                    what="Debezium changes", partial=True, key=lambda env: int(env["after"]["id"]))


def measure_job_latency(cfg: Config, run_dir: Path, data: DataConfig, rate: float, seconds: float,
                        say: Callable[[str], None]) -> dict[str, Any]:
    """Job-only latency: broker -> job -> broker, no feeder. The workload's first part is
    preloaded and scored (warm state); then its last ``rate * seconds`` change events are produced
    at ``rate`` per second while the job runs. Latency of an interaction: its score record's
    broker timestamp minus the moment it was handed to the producer."""
    from livefit.cli import start_job

    workload = build_workload(cfg, data)
    n_paced = int(rate * seconds)
    if n_paced >= len(workload.records):
        raise ValueError(f"the workload has {len(workload.records)} events, fewer than the "
                         f"{n_paced} to offer at {rate:,.0f}/s for {seconds:.0f}s")
    preload, paced = workload.records[:-n_paced], workload.records[-n_paced:]
    port = free_port()
    broker_pid = broker.start(port, run_dir / "logs" / "tansu.log")
    cfg.kafka.bootstrap_servers = f"127.0.0.1:{port}"
    job = None
    try:
        _preload_and_train(cfg, run_dir, workload, preload, **{"linger.ms": 50, "batch.num.messages": 10_000})
        warm = _scored_interaction_ids(preload)
        job = start_job(cfg, run_dir / "logs" / "job.log", env=_job_env(cfg, run_dir))
        _collect_scores(cfg, lambda s: warm <= s.keys(), timeout_s=600, job=job)
        # The idle topics (products, control) hold the watermark back until the source marks them
        # idle; then the labels of the whole preload resolve at once (measured: a 7-9 s stall of
        # everything offered then). That is warm-up, not the steady state measured here.
        labels = _wait_until_quiet(cfg, cfg.kafka.labels_topic, min_s=cfg.job.source_idleness_ms / 1000 + 2,
                                   quiet_s=3.0, timeout_s=300)
        say(f"job-only latency: {len(warm)} preloaded interactions scored, {labels} labels "
            f"resolved; offering {n_paced} events at {rate:,.0f}/s")
        prod = producer(cfg.kafka, **{"linger.ms": 5})  # as a CDC producer would batch
        cpu = CpuShares({"job": job.pid, "broker": broker_pid}, alone={"offering_process": os.getpid()})
        offered: dict[str, float] = {}
        ids = _event_ids(paced)
        t0 = time.monotonic()
        for i, (topic, key, value, _ts) in enumerate(paced):
            lag = t0 + i / rate - time.monotonic()
            if lag > 0:
                time.sleep(lag)
            prod.produce(topic, key=key, value=value)
            event_id = ids[i]
            if event_id is not None:
                offered[event_id] = time.time() * 1000
            prod.poll(0)
        achieved = len(paced) / (time.monotonic() - t0)
        cores = cpu.cores()
        assert prod.flush(60) == 0
        scores = _collect_scores(cfg, lambda s: offered.keys() <= s.keys(), timeout_s=300, job=job)
        lat = [scores[e]["broker_ts"] - t for e, t in offered.items()]  # in offering order
        q = max(1, len(lat) // 4)
        out = {"offered_rate": rate, "achieved_rate": round(achieved, 1), "seconds": seconds,
               "scored": len(lat), "p50": _pct(lat, 0.5), "p95": _pct(lat, 0.95), "p99": _pct(lat, 0.99),
               # a backlog shows as a later quarter slower than the first
               "p50_first_quarter": _pct(lat[:q], 0.5), "p50_last_quarter": _pct(lat[-q:], 0.5),
               "cpu_cores": cores}
        say(f"job-only latency at {achieved:,.0f} events/s: p50 {out['p50']} ms, "
            f"p95 {out['p95']} ms, p99 {out['p99']} ms; cores while offered: {cores}")
        return out
    finally:
        if job is not None:
            stop_pid(job.pid, timeout_s=30)
        stop_pid(broker_pid)


def scale_records(cfg: Config, customers: int, returning: int, products: int = 300,
                  seed: int = 11) -> list[tuple[str, bytes, bytes, int]]:
    """Change events for the state-scale measurement: ``products`` products, then one
    interaction by each of ``customers`` new customers (interaction id = customer id), then
    ``returning`` interactions by customers drawn at random among them (ids above
    ``customers``), 50 ms of event time apart."""
    from livefit.datagen import CATEGORIES, COLORS, KINDS
    from livefit.workload import change_record, iso_utc

    rng = np.random.default_rng(seed)
    t0 = 1_790_000_000_000
    out = [change_record(cfg, "products", {"id": i, "name": f"p{i}", "category": CATEGORIES[i % 8],
                                           "color": COLORS[(i // 8) % 8], "price": float(10 + i % 190)},
                         t0 - 86_400_000, i)
           for i in range(1, products + 1)]
    who = np.concatenate([np.arange(1, customers + 1), rng.integers(1, customers + 1, returning)])
    what = rng.integers(1, products + 1, len(who))
    kind = rng.choice(3, len(who), p=[0.7, 0.2, 0.1])
    for i in range(len(who)):
        ts = t0 + 50 * i
        out.append(change_record(cfg, "interactions", {
            "id": i + 1, "customer_id": int(who[i]), "product_id": int(what[i]), "kind": KINDS[kind[i]],
            "created_at": iso_utc(datetime.fromtimestamp(ts / 1000, UTC))},
            ts, 1_000_000 + i))
    return out


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure_state_scale(cfg: Config, run_dir: Path, customers: int, say: Callable[[str], None],
                        returning: int | None = None) -> dict[str, Any]:
    """The job on the rocksdb backend with ``customers`` customers in state. Throughput while a
    tenth of them are created (small state: from the 10 % point, or later if labels were not yet
    resolving) against the ``returning`` interactions (default: a tenth of the customers, at
    least 10,000) of customers at random once all are in state; labels resolved per second in
    both; bytes per customer in RocksDB's files."""
    from livefit.cli import start_job

    returning = returning if returning is not None else max(10_000, customers // 10)

    training = build_workload(cfg, DataConfig(customers=300, products=300, history_days=30))
    records = scale_records(cfg, customers, returning)
    port = free_port()
    broker_pid = broker.start(port, run_dir / "logs" / "tansu.log")
    cfg.kafka.bootstrap_servers = f"127.0.0.1:{port}"
    rocksdb_dir = run_dir / "rocksdb"
    job = sampler = None
    try:
        t = time.monotonic()
        _preload_and_train(cfg, run_dir, training, records, **{"linger.ms": 50, "batch.num.messages": 10_000})
        say(f"state at scale: {customers:,} customers + {returning:,} returning interactions "
            f"preloaded in {time.monotonic() - t:.0f}s; rocksdb job starting")
        # Its topics hold no orders, so letting the empty ones go idle while the backlog is read
        # cannot pass unread orders; with Flink's rule alone no label would fall due in either
        # window and the two would compare different work (session 11).
        env = {**_job_env(cfg, run_dir), "LIVEFIT_FLINK__STATE_BACKEND": "rocksdb",
               "LIVEFIT_FLINK__ROCKSDB_LOCAL_DIR": str(rocksdb_dir),
               "LIVEFIT_JOB__SOURCE_IDLE_WHEN_OTHERS_READ": "true"}
        job = start_job(cfg, run_dir / "logs" / "job.log", env=env)
        sampler = ProcessTreeSampler(job.pid)
        sampler.start()
        total = customers + returning
        progress = {"next": 0.0}

        def done(seen: dict[str, dict[str, Any]]) -> bool:
            if len(seen) / total >= progress["next"]:
                say(f"  state at scale: {len(seen):,} / {total:,} interactions scored")
                progress["next"] += 0.2
            return len(seen) >= total

        scores = _collect_scores(cfg, done, timeout_s=7200, job=job)
        state_bytes = _du(rocksdb_dir)
        # Not all labels can resolve: the last interactions' horizons end past the last event.
        label_ts = [t for t, _ in _labels(cfg, total, timeout_s=30, job=job, quiet_s=3.0)]
        _await_checkpoint(cfg, run_dir / "logs" / "flink")

        def window(lo: int, hi: int) -> dict[str, float]:
            ts = sorted(v["broker_ts"] for v in scores.values() if lo < v["interaction_id"] <= hi)
            if len(ts) < 2 or ts[-1] <= ts[0]:
                return {"eps": float("nan"), "labels_per_s": float("nan")}
            span = (ts[-1] - ts[0]) / 1000
            labels = bisect.bisect_right(label_ts, ts[-1]) - bisect.bisect_left(label_ts, ts[0])
            return {"eps": round(len(ts) / span, 1), "labels_per_s": round(labels / span, 1)}

        # Compared like for like: every interaction's label falls due job.label_horizon_s of event
        # time later, so the small-state window starts once labels resolve (the empty topics must
        # have gone idle first).
        first_label = label_ts[0] if label_ts else float("inf")
        start = max(customers // 10, sum(1 for v in scores.values() if v["broker_ts"] < first_label))
        if start + customers // 10 > customers // 2:  # too few customers to wait for the labels
            start = customers // 10
        small = window(start, start + customers // 10)
        full = window(customers, total)
        say(f"  labels resolved per second: {small['labels_per_s']:,.0f} while small, "
            f"{full['labels_per_s']:,.0f} with all in state"
            + ("" if small["labels_per_s"] >= 0.5 * small["eps"] else
               " (labels were not resolving yet while the state was small: not like for like)"))
        small_eps, full_eps = small["eps"], full["eps"]
        out = {"customers": customers, "returning_interactions": returning, "state_backend": "rocksdb",
               "managed_memory_mb": cfg.flink.managed_memory_mb or "flink default (128 MB locally)",
               "timers": cfg.flink.rocksdb_timers,
               "small_state_interactions": [start + 1, start + customers // 10],
               "eps_small_state": small_eps, "eps_all_in_state": full_eps,
               "labels_per_s_small_state": small["labels_per_s"],
               "labels_per_s_all_in_state": full["labels_per_s"],
               "ratio_all_in_state_vs_small": round(full_eps / small_eps, 3),
               "rocksdb_bytes_on_disk": state_bytes,
               "rocksdb_bytes_per_customer": round(state_bytes / customers),
               "memory_peak": sampler.peak, "checkpoints": _checkpoints(run_dir / "logs" / "flink")}
        say(f"state at scale, {customers:,} customers (rocksdb): {full_eps:,.0f}/s with all in state "
            f"vs {small_eps:,.0f}/s while small ({out['ratio_all_in_state_vs_small']:.2f}x); "
            f"{out['rocksdb_bytes_per_customer']} bytes per customer on disk")
        return out
    finally:
        if sampler is not None:
            sampler.stop.set()
        if job is not None:
            stop_pid(job.pid, timeout_s=60)
        stop_pid(broker_pid)


def _wait_until_quiet(cfg: Config, topic: str, min_s: float, quiet_s: float, timeout_s: float) -> int:
    """Wait at least ``min_s``, then until ``topic`` gets nothing new for ``quiet_s``; returns
    how many records it holds."""
    c = _consumer(cfg, topic)
    start = last_new = time.monotonic()
    n = 0
    try:
        while True:
            now = time.monotonic()
            if now - start >= min_s and now - last_new >= quiet_s:
                return n
            if now - start > timeout_s:
                raise TimeoutError(f"{topic} still growing after {timeout_s:.0f}s ({n} records)")
            got = [m for m in c.consume(num_messages=10_000, timeout=0.5) if not m.error()]
            if got:
                n += len(got)
                last_new = time.monotonic()
    finally:
        c.close()


def _event_ids(records: list[tuple[str, bytes, bytes, int]]) -> list[str | None]:
    """The event id of each record that the job scores as an interaction (else None)."""
    out: list[str | None] = []
    for offset, (topic, key, value, ts) in enumerate(records):
        rec = parse_record(topic, 0, offset, ts, key, value)
        scored = isinstance(rec, ChangeEvent) and rec.table == "interactions" and rec.op in ("c", "r")
        out.append(rec.event_id if isinstance(rec, ChangeEvent) and scored else None)
    return out


def _scored_interaction_ids(records: list[tuple[str, bytes, bytes, int]]) -> set[str]:
    return {e for e in _event_ids(records) if e is not None}


def run(quick: bool, events: int | None = None, out_dir: Path = RESULTS,
        latency_rates: tuple[float, ...] | None = None, say: Callable[[str], None] = _say,
        throughput_only: bool = False, cluster: bool = False) -> dict[str, Any]:
    """The whole benchmark, or with ``throughput_only`` just the job in its configured mode
    against the in-process limit and the naive baseline (a sustained run needs a large
    ``events`` and takes minutes; the latency and state-at-scale parts would add half an hour).
    ``cluster`` (with ``throughput_only``): the job on a session cluster of its own
    (``flink.cluster_taskmanagers`` x ``flink.cluster_task_slots``) instead of local execution."""
    if cluster and not throughput_only:
        raise ValueError("the job runs on a session cluster in the throughput measurement only: "
                         "add --throughput-only")
    cfg = load_config()
    base = REPO / ".livefit" / f"bench-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    customers = max(50, (events or (60_000 if quick else 200_000)) // 30)
    data = DataConfig(customers=customers, products=300, history_days=60)
    started = time.time()
    try:
        configured = cfg.flink.python_execution_mode
        # The full run compares both Python execution modes (the choice of the configured one
        # rests on it); --quick measures the configured one only, to stay under five minutes
        # (the other mode's job took ~35 s of its ~285 s). For the same reason --quick leaves
        # out the naive baseline's extras, the PyFlink job and the loop's second run: ~70 s of
        # a slow hour's 311-327 s (session 44; the naive loop ran at 275-364/s then); the
        # full and --throughput-only runs keep them.
        modes = (configured, *(m for m in ("thread", "process") if m != configured))
        result = measure_job(cfg, base / "job", data, say,
                             modes=modes[:1] if throughput_only or quick else modes, cluster=cluster,
                             naive_extras=not quick)
        if throughput_only:
            return _write_results(result, cfg, out_dir, "throughput", quick, started, say)
        rates = latency_rates if latency_rates is not None else ((1000.0,) if quick else (1000.0, 5000.0))
        result["latency_ms"] = {}
        for rate in rates:
            lat_cfg = load_config()
            result["latency_ms"][str(int(rate))] = measure_latency(
                lat_cfg, base / f"latency-{int(rate)}", rate, 20 if quick else 60, say)
        first = next(iter(result["latency_ms"].values()), None)
        if first:
            result["latency_ms"].update({k: first[k] for k in ("p50", "p95", "p99")})
        # Job-only: 2x the offered events, so the first half warms the state up.
        job_only_s = 20 if quick else 60
        result["job_only_latency_ms"] = {"1000": measure_job_latency(
            load_config(), base / "job-only", DataConfig(customers=job_only_s * 1000 * 2 // 20,
                                                         products=300, history_days=60),
            1000.0, job_only_s, say)}
        result["state_scale"] = [measure_state_scale(load_config(), base / f"scale-{n}", n, say)
                                 for n in ((100_000,) if quick else (100_000, 1_000_000))]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return _write_results(result, cfg, out_dir, "quick" if quick else "", quick, started, say)


def _write_results(result: dict[str, Any], cfg: Config, out_dir: Path, kind: str, quick: bool,
                   started: float, say: Callable[[str], None]) -> dict[str, Any]:
    f = cfg.flink
    result["config"] = {
        "parallelism": cfg.job.parallelism,
        "execution_mode": f"{result['job_runs_on']}, python {result['job_mode']} mode",
        "python_execution_mode": result["job_mode"],
        "bundle_size": f.bundle_size, "bundle_time_ms": f.bundle_time_ms,
        "bundle_applies_to": "process mode",
        "python_state_cache_size": f.python_state_cache_size, "state_backend": f.state_backend,
        "shards": cfg.job.shards, "micro_batch_records": f.micro_batch_records,
        "micro_batch_ms": f.micro_batch_ms,
        "checkpoint_interval_ms": cfg.job.checkpoint_interval_ms, "quick": quick,
        "state_cache_customers": cfg.job.state_cache_customers,
        "state_write_back": cfg.job.state_write_back,
        # The job's producer: its batching and compression (not the security settings, which
        # may hold secrets).
        "sink": {k: v for k, v in cfg.kafka.java_sink_properties().items() if k in SINK_SETTINGS},
    }
    result["machine"] = _machine()
    result["wall_seconds"] = round(time.time() - started)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"bench-{kind + '-' if kind else ''}{stamp}.json"
    path.write_text(json.dumps(result, indent=2))
    print_table(result)
    say(f"results: {path}")
    return result


def _machine() -> dict[str, Any]:
    """What the figures came from. The CPU too: machines of the same kind (2 cores) have differed
    2.5x in per-core speed between sessions, which only ratios from one run are immune to."""
    cpu: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            name, _, value = line.partition(":")
            cpu.setdefault(name.strip(), value.strip())
    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30),
            "cpu_model": cpu.get("model name") or platform.processor(), "cpu_mhz": cpu.get("cpu MHz"),
            "python": platform.python_version(), "platform": platform.platform()}


def run_state_scale(customers: list[int], out_dir: Path = RESULTS,
                    say: Callable[[str], None] = _say) -> list[dict[str, Any]]:
    """Only the state-at-scale measurement (``livefit bench --scale N``), into its own JSON."""
    base = REPO / ".livefit" / f"bench-scale-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    try:
        results = [measure_state_scale(load_config(), base / f"scale-{n}", n, say) for n in customers]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-scale-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps({"state_scale": results, "machine": _machine()}, indent=2))
    say(f"results: {path}")
    return results


def _memory_line(mode: str, peak: dict[str, float]) -> str:
    """Thread mode runs Python inside the JVM (no worker process): say so rather than print 0."""
    if mode == "thread":
        return f"JVM with the embedded Python {peak.get('jvm_mb')}"
    return f"JVM {peak.get('jvm_mb')} / Python workers {peak.get('python_workers_mb')}"


def _cores_line(cores: dict[str, float]) -> str:
    return ", ".join(f"{name} {v}" for name, v in cores.items())


def print_table(r: dict[str, Any]) -> None:
    rows = [
        (f"job throughput, {r['job_mode']} mode (interactions/s)", f"{r['job_eps']:,.0f}"),
        *((f"  job throughput, {m} mode (interactions/s)", f"{v['eps']:,.0f}")
          for m, v in r.get("job_by_mode", {}).items() if m != r["job_mode"]),
        ("job throughput: scored events (interactions + orders) / s", f"{r.get('job_scored_events_eps', float('nan')):,.0f}"
         f" (in-process: {r.get('limit_scored_events_eps', float('nan')):,.0f})"),
        ("job, first score to last label learned (interactions/s)", f"{r.get('job_learned_eps', float('nan')):,.0f}"),
        *((f"  job, {m} mode: features as offline training's / labelled; scored without product",
           f"{v['feature_parity']['identical']:,} / {v['feature_parity']['compared']:,}; "
           f"{v['feature_parity']['scored_without_product']:,} (in-process: "
           f"{r['limit'].get('feature_parity', {}).get('identical', 0):,} / "
           f"{r['limit'].get('feature_parity', {}).get('compared', 0):,}; "
           f"{r['limit'].get('scored_without_product', 0):,})")
          for m, v in r.get("job_by_mode", {}).items() if "feature_parity" in v),
        *((f"  job, {m} mode: cores used, first to last score", _cores_line(v["cpu_cores"]))
          for m, v in r.get("job_by_mode", {}).items() if v.get("cpu_cores")),
        ("in-process limit (interactions/s)", f"{r['limit_eps']:,.0f}"
         + (f" (after the job: {r['limit_after_eps']:,.0f}, x{r['ratio_limit_after_before']:.2f})"
            if "limit_after_eps" in r else "")),
        ("naive: sklearn per event for every model (interactions/s)", f"{r['naive_eps']:,.0f}"
         + (f" (after the job: {r['naive_after_eps']:,.0f}, x{r['ratio_naive_after_before']:.2f})"
            if "naive_after_eps" in r else "")),
        *((("  on every Nth customer's history: N; interactions; limit there (interactions/s); limit / naive",
            f"{r['naive_sample']['every_nth_customer']}; {r['naive_sample']['interactions']:,}; "
            f"{r['naive_sample']['limit_eps']:,.0f}; {r['naive_sample']['ratio_limit_naive']:.1f}"),)
          if "naive_sample" in r else ()),
        *((("naive as a PyFlink job, on that sample (interactions/s); / naive",
            f"{r['naive_job']['eps']:,.0f} ({r['naive_job']['mode']} mode, parallelism "
            f"{r['naive_job']['parallelism']}); {r['ratio_naive_job_naive']:.2f}"),) if "naive_job" in r else ()),
        *((("naive, scoring only: sklearn for the offline and anomaly models (interactions/s)",
            f"{r['naive_scoring_only_eps']:,.0f}"),) if "naive_scoring_only_eps" in r else ()),
        *((("the scoring operator in process, no Flink (interactions/s); / limit; job / it",
            f"{r['operator_in_process']['eps']:,.0f}; {r['ratio_operator_limit']:.3f}; "
            f"{r['ratio_job_operator']:.3f}"),) if "operator_in_process" in r else ()),
        ("job / limit", f"{r['ratio_job_limit']:.3f}"
         + (f" (against the mean of the limit before and after: {r['ratio_job_limits_mean']:.3f})"
            if "ratio_job_limits_mean" in r else "")),
        ("job / naive", f"{r['ratio_job_naive']:.2f}"
         + (f" (against the mean of the naive before and after: {r['ratio_job_naives_mean']:.2f})"
            if "ratio_job_naives_mean" in r else "")),
        *((("job / naive as a PyFlink job", f"{r['ratio_job_naive_job']:.2f}"),) if "ratio_job_naive_job" in r else ()),
        *((("job / naive, scoring only", f"{r['ratio_job_naive_scoring_only']:.2f}"),)
          if "ratio_job_naive_scoring_only" in r else ()),
        *((f"latency commit->score at {rate}/s, feeder in the path: p50 / p95 / p99 (ms)",
           f"{v['p50']} / {v['p95']} / {v['p99']}")
          for rate, v in r.get("latency_ms", {}).items() if isinstance(v, dict)),
        *(("  split p50 / p99 (ms): commit->Debezium, Debezium->scored, scored->broker",
           " | ".join(f"{x['p50']} / {x['p99']}" for x in v["split"].values()))
          for rate, v in r.get("latency_ms", {}).items() if isinstance(v, dict) and "split" in v),
        *((f"  p99 in the {v['warmup_seconds']:.0f} s of warm-up traffic before (ms)", f"{v['warmup_p99']}")
          for rate, v in r.get("latency_ms", {}).items() if isinstance(v, dict) and "warmup_p99" in v),
        *((f"  cores used while {rate}/s was offered", _cores_line(v["cpu_cores"]))
          for rate, v in r.get("latency_ms", {}).items() if isinstance(v, dict) and "cpu_cores" in v),
        *((f"job-only latency at {rate} events/s: p50 / p95 / p99 (ms)",
           f"{v['p50']} / {v['p95']} / {v['p99']}")
          for rate, v in r.get("job_only_latency_ms", {}).items()),
        *((f"  cores used while {rate} events/s were offered", _cores_line(v["cpu_cores"]))
          for rate, v in r.get("job_only_latency_ms", {}).items() if "cpu_cores" in v),
        *((f"peak RSS, {mode} mode (MB)", _memory_line(mode, j.get("memory_peak", {})))
          for mode, j in r.get("job_by_mode", {"": {"memory_peak": r["memory_peak"]}}).items()),
        ("checkpoints: last size (bytes) / median duration (ms)",
         f"{r['checkpoints'].get('size_bytes_last')} / {r['checkpoints'].get('duration_ms_median')}"),
        ("state per customer, encoded: mean / max (bytes)",
         f"{r['state_bytes_per_customer']['mean']} / {r['state_bytes_per_customer']['max']}"),
        *((f"rocksdb, {s['customers']:,} customers: all-in-state / small-state throughput, bytes per customer",
           f"{s['ratio_all_in_state_vs_small']:.2f}x ({s['eps_all_in_state']:,.0f} vs {s['eps_small_state']:,.0f}/s), "
           f"{s['rocksdb_bytes_per_customer']}")
          for s in r.get("state_scale", [])),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print()
