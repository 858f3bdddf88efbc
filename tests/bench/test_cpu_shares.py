"""CpuShares: which process tree used the machine during a window. A live child's CPU counts
toward its parent's tree, not toward the parent alone; a process that is gone counts as
nothing, not as an error."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from bench.run import CpuShares

BUSY_THEN_IDLE = ("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
                  "time.sleep(60)")


def test_a_busy_child_counts_toward_its_parents_tree_only_and_an_idle_process_not_at_all():
    idle = subprocess.Popen(["sleep", "60"])
    try:
        shares = CpuShares({"me": os.getpid(), "idle": idle.pid, "gone": 2**22 + 12345},
                           alone={"me alone": os.getpid()})
        busy = subprocess.Popen([sys.executable, "-c", BUSY_THEN_IDLE])
        try:
            deadline = time.monotonic() + 30
            # Wait for most of its 0.4 s: the kernel's tick-based times can lag the precise
            # clock the child stops on (once seen in a full run, right after the cluster test).
            while sum(psutil.Process(busy.pid).cpu_times()[:2]) < 0.3:
                assert time.monotonic() < deadline, "the busy child never got its CPU"
                time.sleep(0.05)
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
