"""CpuShares: which process tree used the machine during a window. A live child's CPU counts
toward its parent's tree, not toward the parent alone; a process that is gone counts as
nothing, not as an error. CpuTimeline: the same, for a window known only afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from bench.run import CpuShares, CpuTimeline

BUSY_THEN_IDLE = ("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
                  "time.sleep(60)")


def _wait_until_it_used_most_of_its_cpu(pid: int) -> None:
    """Most of BUSY_THEN_IDLE's 0.4 s: the kernel's tick-based times can lag the precise clock
    the child stops on (once seen in a full run, right after the cluster test)."""
    deadline = time.monotonic() + 30
    while sum(psutil.Process(pid).cpu_times()[:2]) < 0.3:
        assert time.monotonic() < deadline, "the busy child never got its CPU"
        time.sleep(0.05)


def test_a_busy_child_counts_toward_its_parents_tree_only_and_an_idle_process_not_at_all():
    idle = subprocess.Popen(["sleep", "60"])
    try:
        shares = CpuShares({"me": os.getpid(), "idle": idle.pid, "gone": 2**22 + 12345},
                           alone={"me alone": os.getpid()})
        busy = subprocess.Popen([sys.executable, "-c", BUSY_THEN_IDLE])
        try:
            _wait_until_it_used_most_of_its_cpu(busy.pid)
            cores = shares.cores()
        finally:
            busy.kill()
            busy.wait()
    finally:
        idle.kill()
        idle.wait()
    assert cores["me"] > 0.1
    assert cores["me alone"] < cores["me"] - 0.1
    assert cores["idle"] < 0.1
    assert cores["gone"] == 0.0


def test_the_timeline_gives_the_cores_of_a_window_chosen_afterwards():
    timeline = CpuTimeline({"me": os.getpid()}, alone={"me alone": os.getpid()}, every_s=0.05)
    timeline.start()
    try:
        time.sleep(0.2)
        t0 = time.time()
        busy = subprocess.Popen([sys.executable, "-c", BUSY_THEN_IDLE])
        try:
            _wait_until_it_used_most_of_its_cpu(busy.pid)
            t1 = time.time()
            time.sleep(0.2)
            busy_window = timeline.cores_between(t0, t1)
            before = timeline.cores_between(t0 - 0.15, t0 - 0.05)  # the child not yet started
            assert timeline.cores_between(t0, time.time() + 60) == {}  # not sampled yet
        finally:
            busy.kill()
            busy.wait()
    finally:
        timeline.stop.set()
        timeline.join()
    assert busy_window["me"] > 0.2  # the child's 0.4 s of CPU within well under 2 s
    assert busy_window["me alone"] < busy_window["me"] - 0.2
    assert busy_window["total"] == round(busy_window["me"] + busy_window["me alone"], 2)
    assert before["me"] < 0.5
