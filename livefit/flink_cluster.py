"""A Flink standalone session cluster from the pip-installed Flink, and the job on it.

``apache-flink`` ships a full Flink distribution in ``site-packages/pyflink`` (``bin/``,
``lib/``, ``opt/``). livefit runs its scripts with ``FLINK_CONF_DIR`` pointing at a runtime copy
of ``flink-conf/`` (plus this machine's paths), logs and pid files under the run directory, and
talks to the cluster through the ``flink`` CLI and the REST API (web UI on 127.0.0.1:8081).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from livefit.config import Config
from livefit.jars import job_jars

REPO = Path(__file__).resolve().parents[1]
JOB_NAME = "livefit-score"


def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).parent


def _dirs(cfg: Config) -> dict[str, Path]:
    run = cfg.run_dir
    return {"conf": run / "flink-conf", "logs": run / "logs" / "flink-cluster",
            "pids": run / "flink-pids", "checkpoints": run / "cluster-checkpoints",
            "savepoints": run / "cluster-savepoints"}


def log_dir(cfg: Config) -> Path:
    """The cluster's JobManager and TaskManager logs."""
    return _dirs(cfg)["logs"]


def rest_url(cfg: Config) -> str:
    return f"http://127.0.0.1:{cfg.flink.rest_port}"


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_runtime_conf(cfg: Config) -> Path:
    """flink-conf/ + what only this machine knows: the venv's python, directories, ports."""
    d = _dirs(cfg)
    d["conf"].mkdir(parents=True, exist_ok=True)
    for f in (REPO / "flink-conf").iterdir():
        if f.name != "config.yaml":
            shutil.copy(f, d["conf"] / f.name)
    # Flink's shipped defaults (they carry the JVM --add-opens flags Java 17 needs), with
    # flink-conf/config.yaml on top.
    conf = _deep_merge(yaml.safe_load((flink_home() / "conf" / "config.yaml").read_text()) or {},
                       yaml.safe_load((REPO / "flink-conf" / "config.yaml").read_text()))
    conf.setdefault("rest", {})["port"] = cfg.flink.rest_port
    conf.setdefault("jobmanager", {}).setdefault("rpc", {})["port"] = cfg.flink.rpc_port
    conf.setdefault("parallelism", {})["default"] = cfg.job.parallelism
    conf.setdefault("taskmanager", {})["numberOfTaskSlots"] = cfg.flink.cluster_task_slots
    # start-cluster.sh starts a TaskManager per line; "localhost" ones without ssh
    (d["conf"] / "workers").write_text("localhost\n" * cfg.flink.cluster_taskmanagers)
    conf.setdefault("state", {}).setdefault("backend", {})["type"] = cfg.flink.state_backend
    ck = conf.setdefault("execution", {}).setdefault("checkpointing", {})
    ck["dir"] = d["checkpoints"].as_uri()
    ck["savepoint-dir"] = d["savepoints"].as_uri()
    py = conf.setdefault("python", {})
    py["executable"] = sys.executable
    py.setdefault("client", {})["executable"] = sys.executable
    py["execution-mode"] = cfg.flink.python_execution_mode
    py.setdefault("fn-execution", {})["bundle"] = {"size": cfg.flink.bundle_size,
                                                   "time": cfg.flink.bundle_time_ms}
    if cfg.flink.python_execution_mode == "thread":
        # Thread mode needs the venv on the embedded interpreter's path (else "No module named
        # 'pemja'") and flink-python on the cluster classpath (see flink_lib_dir) -- PLATFORM.md.
        import site

        py["pythonpath"] = os.pathsep.join(site.getsitepackages())
    (d["conf"] / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=True))
    return d["conf"]


def _flink_env(cfg: Config) -> dict[str, str]:
    d = _dirs(cfg)
    for p in d.values():
        p.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FLINK_CONF_DIR": str(d["conf"]), "FLINK_LOG_DIR": str(d["logs"]),
           "FLINK_PID_DIR": str(d["pids"])}
    if cfg.flink.python_execution_mode == "thread":
        env["FLINK_LIB_DIR"] = str(flink_lib_dir(cfg))
    return env


def flink_lib_dir(cfg: Config) -> Path:
    """lib/ plus opt/flink-python-*.jar: thread mode needs flink-python on the cluster classpath."""
    lib = cfg.run_dir / "flink-lib"
    lib.mkdir(parents=True, exist_ok=True)
    home = flink_home()
    for jar in [*(home / "lib").glob("*.jar"), *(home / "opt").glob("flink-python-*.jar")]:
        link = lib / jar.name
        if not link.exists():
            link.symlink_to(jar)
    return lib


def rest(cfg: Config, path: str, method: str = "GET", body: Any = None, timeout: float = 5) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(rest_url(cfg) + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def taskmanagers(cfg: Config) -> int:
    """TaskManagers registered with the cluster's JobManager (0: no cluster answers)."""
    try:
        return int(rest(cfg, "/overview", timeout=2).get("taskmanagers", 0))
    except (urllib.error.URLError, OSError, ValueError):
        return 0


def is_up(cfg: Config) -> bool:
    return taskmanagers(cfg) > 0


def start(cfg: Config, timeout_s: float = 90) -> None:
    if is_up(cfg):
        raise RuntimeError(f"a Flink cluster already answers on {rest_url(cfg)}")
    write_runtime_conf(cfg)
    subprocess.run([str(flink_home() / "bin" / "start-cluster.sh")], env=_flink_env(cfg),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    want = cfg.flink.cluster_taskmanagers
    while (registered := taskmanagers(cfg)) < want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Flink cluster did not come up in {timeout_s:.0f}s ({registered} of "
                               f"{want} TaskManagers registered); see {_dirs(cfg)['logs']}")
        time.sleep(1)


def cluster_pids(cfg: Config) -> list[int]:
    pids = []
    for f in _dirs(cfg)["pids"].glob("*.pid"):
        pids += [int(x) for x in f.read_text().split() if x.strip().isdigit()]
    return pids


def stop(cfg: Config) -> list[int]:
    """Stop the cluster with Flink's script, then make sure every recorded PID is gone."""
    from livefit.stack.procs import pid_alive, stop_pid

    pids = cluster_pids(cfg)
    if not pids:
        return []
    subprocess.run([str(flink_home() / "bin" / "stop-cluster.sh")], env=_flink_env(cfg),
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    for p in pids:
        if pid_alive(p):
            try:
                stop_pid(p, timeout_s=5)
            except ProcessLookupError:
                pass
    for f in _dirs(cfg)["pids"].glob("*.pid"):
        f.unlink()
    return pids


def submit_command(cfg: Config, restore: str | None = None) -> list[str]:
    jars = ";".join(j.as_uri() for j in job_jars())
    cmd = [str(flink_home() / "bin" / "flink"), "run", "-m", f"127.0.0.1:{cfg.flink.rest_port}", "-d",
           "-pyexec", sys.executable, "-pyclientexec", sys.executable,
           "-pyfs", ",".join(str(REPO / p) for p in ("udfs", "models", "livefit")),
           f"-Dpipeline.jars={jars}"]
    if restore:
        cmd += ["-s", restore]
    cmd += ["-py", str(REPO / "jobs" / "score_job.py"),
            "--bootstrap-servers", cfg.kafka.bootstrap_servers,
            "--model-dir", str(Path(cfg.job.model_dir).resolve()),
            "--checkpoint-dir", str(_dirs(cfg)["checkpoints"])]
    return cmd


def submit(cfg: Config, restore: str | None = None, timeout_s: float = 120,
           env_overrides: dict[str, str] | None = None) -> str:
    """``flink run -d``; returns the job id once the job is RUNNING. ``env_overrides``: livefit
    settings (``LIVEFIT_...``) for the client that builds the job graph."""
    env = {**_flink_env(cfg), **(env_overrides or {})}
    if os.environ.get("LIVEFIT_CONFIG"):
        env["LIVEFIT_CONFIG"] = os.environ["LIVEFIT_CONFIG"]
    out = subprocess.run(submit_command(cfg, restore), env=env, capture_output=True, text=True,
                         timeout=timeout_s)
    if out.returncode != 0:
        text = out.stdout + out.stderr
        start = text.find("Traceback")  # the Python error, not only the Java stack around it
        raise RuntimeError(f"flink run failed ({out.returncode}):\n"
                           f"{text[start:start + 3000] if start >= 0 else text[-3000:]}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = running_job(cfg)
        if job is not None:
            return str(job["jid"])
        time.sleep(1)
    raise TimeoutError(f"{JOB_NAME} submitted but not RUNNING after {timeout_s:.0f}s:\n{out.stdout[-2000:]}")


def running_job(cfg: Config) -> dict[str, Any] | None:
    try:
        jobs = rest(cfg, "/jobs/overview")["jobs"]
    except (urllib.error.URLError, OSError):
        return None
    live = [j for j in jobs if j["name"] == JOB_NAME and j["state"] == "RUNNING"]
    return max(live, key=lambda j: j["start-time"]) if live else None


def cancel(cfg: Config) -> str | None:
    job = running_job(cfg)
    if job is None:
        return None
    rest(cfg, f"/jobs/{job['jid']}?mode=cancel", method="PATCH")
    return str(job["jid"])


def stop_with_savepoint(cfg: Config, timeout_s: float = 120) -> str:
    job = running_job(cfg)
    if job is None:
        raise RuntimeError(f"no {JOB_NAME} job is running on {rest_url(cfg)}")
    trigger = rest(cfg, f"/jobs/{job['jid']}/stop", method="POST",
                   body={"targetDirectory": _dirs(cfg)["savepoints"].as_uri(), "drain": False})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = rest(cfg, f"/jobs/{job['jid']}/savepoints/{trigger['request-id']}")
        if st["status"]["id"] == "COMPLETED":
            op = st.get("operation", {})
            if "failure-cause" in op:
                raise RuntimeError(f"savepoint failed: {op['failure-cause'].get('stack-trace', '')[:2000]}")
            return str(op["location"])
        time.sleep(1)
    raise TimeoutError("the savepoint did not complete")


def operator_metrics(cfg: Config, job_id: str, names: list[str]) -> dict[str, dict[str, float]]:
    """Custom metrics per vertex, summed over subtasks: {vertex name: {metric: value}}."""
    out: dict[str, dict[str, float]] = {}
    for v in rest(cfg, f"/jobs/{job_id}")["vertices"]:
        available = [m["id"] for m in rest(cfg, f"/jobs/{job_id}/vertices/{v['id']}/subtasks/metrics")]
        wanted = [m for m in available if m.rsplit(".", 1)[-1] in names]
        if not wanted:
            continue
        values = rest(cfg, f"/jobs/{job_id}/vertices/{v['id']}/subtasks/metrics?get={','.join(wanted)}&agg=sum,max")
        out[v["name"]] = {m["id"].rsplit(".", 1)[-1]: m.get("sum", m.get("max")) for m in values}
    return out
