"""The command line's own decisions, without the stack."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from livefit import cli
from livefit.config import load_config
from models.registry import save_model
from tests.helpers import fitted_pipeline
from udfs.features import FEATURE_NAMES


@pytest.fixture
def trained(monkeypatch):
    """The model directories ``livefit train`` was asked to train (no database here)."""
    calls: list[str] = []
    monkeypatch.setattr(cli, "cmd_train", lambda cfg, args: calls.append(cfg.job.model_dir))
    return calls


def config(model_dir):
    return load_config(None, env={"LIVEFIT_JOB__MODEL_DIR": str(model_dir)})


def save(model_dir, features):
    save_model(model_dir, "propensity", fitted_pipeline(), features, {}, {})


def test_demo_and_submit_train_when_there_is_no_model(tmp_path, trained):
    cli._ensure_model(config(tmp_path))
    assert trained == [str(tmp_path)]


def test_a_model_of_older_features_is_retrained_not_handed_to_the_job(tmp_path, trained, capsys):
    """After an upgrade that changed the features, the stored versions cannot be served: the job
    would refuse them and stop, so `livefit demo` / `submit` train a new version first."""
    save(tmp_path, ["kind_click", "category_share"])
    cli._ensure_model(config(tmp_path))
    assert trained == [str(tmp_path)]
    assert "none of the 1 stored version(s) of 'propensity' can be served" in capsys.readouterr().out


def test_a_servable_model_is_kept(tmp_path, trained):
    save(tmp_path, ["kind_click", "category_share"])
    save(tmp_path, list(FEATURE_NAMES))
    cli._ensure_model(config(tmp_path))
    assert trained == []


def test_sigterm_stops_what_the_bench_started():
    """A CI timeout or `kill` sends SIGTERM: the bench stops its broker and its Flink job on the
    way out (until session 31 they kept running)."""
    repo = Path(__file__).resolve().parents[2]
    bench = subprocess.Popen([sys.executable, "-m", "livefit.cli", "bench", "--scale", "20000"],
                             cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        assert bench.stdout is not None
        for line in bench.stdout:  # until its job is up: a broker and a Flink job of its own
            if "rocksdb job starting" in line or time.monotonic() > deadline:
                break
        time.sleep(5)
        started = psutil.Process(bench.pid).children(recursive=True)
        assert any("tansu" in " ".join(p.cmdline()) for p in started), "no broker started"
        assert any("score_job.py" in " ".join(p.cmdline()) for p in started), "no job started"
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(180) == 130
        _, alive = psutil.wait_procs(started, timeout=60)
        assert not alive, [" ".join(p.cmdline())[:80] for p in alive]
    finally:
        for p in [*started, psutil.Process(bench.pid)] if bench.poll() is None else started:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


def test_report_runs_on_the_report_workload_unless_told_how_many_customers(tmp_path, monkeypatch):
    """`livefit report` replays data.report_customers customers (more than the demo's, so that its
    intervals decide); --customers overrides it."""
    runs: list[int] = []
    from livefit import report

    def fake_report(seeds, out, say, with_river, cfg):
        runs.append(cfg.data.customers)
        return {"seeds": []}

    monkeypatch.setattr(report, "report", fake_report)
    cfg = load_config(None, env={})
    assert cfg.data.report_customers > cfg.data.customers
    parser = cli.build_parser()
    for argv in (["report", "--no-river"], ["report", "--no-river", "--customers", "150"]):
        args = parser.parse_args([*argv, "--out", str(tmp_path)])
        assert cli.cmd_report(load_config(None, env={}), args) == 0
    assert runs == [cfg.data.report_customers, 150]
