"""The README's run command, as a user runs it: `livefit demo --events N` stops by itself,
prints a summary, and leaves no process behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from livefit.stack.procs import _group_alive

pytestmark = pytest.mark.e2e


def test_demo_runs_everything_and_stops_by_itself(run_dir: Path):
    env = {**os.environ,
           "LIVEFIT_STACK__RUN_DIR": str(run_dir),
           "LIVEFIT_JOB__MODEL_DIR": str(run_dir / "models"),
           "LIVEFIT_DATA__CUSTOMERS": "50", "LIVEFIT_DATA__PRODUCTS": "30",
           "LIVEFIT_DATA__HISTORY_DAYS": "10"}
    proc = subprocess.Popen([sys.executable, "-m", "livefit.cli", "demo", "--events", "40", "--rate", "20"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=420)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    print(out[-3000:])
    assert proc.returncode == 0, out[-3000:]
    summary = re.search(r"\[demo\] summary: (\d+) interactions scored \((\d+) live", out)
    assert summary, out[-2000:]
    assert int(summary.group(2)) >= 40
    assert "[stack] PostgreSQL" in out and "Debezium feeder started" in out and "[train]" in out
    assert "[live] scored" in out or int(summary.group(2)) >= 40
    assert not _group_alive(proc.pid)
    state = (run_dir / "stack.json").read_text()
    for pid in map(int, re.findall(r'"(?:postgres|broker|feeder)_pid": (\d+)', state)):
        assert not Path(f"/proc/{pid}").exists()
