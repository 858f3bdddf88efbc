"""The Flink configuration the job is submitted with follows livefit's configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.score_job import flink_settings
from livefit.config import load_config


def _settings(env: dict[str, str], **kwargs: str | None) -> dict[str, str]:
    return flink_settings(load_config(env=env, path=None), kwargs.get("checkpoint_dir"),
                          kwargs.get("restore_from"))


def test_hashmap_backend_has_no_rocksdb_settings() -> None:
    s = _settings({})
    assert s["state.backend.type"] == "hashmap"
    assert not any(k.startswith("state.backend.rocksdb.") for k in s)


def test_checkpoint_barriers_stay_aligned_behind_the_flush_markers() -> None:
    """The scoring operator writes changed states at the flush markers before each barrier
    (MicroBatcher.java): an unaligned barrier would overtake them and snapshot stale states."""
    assert _settings({})["execution.checkpointing.unaligned.enabled"] == "false"


def test_rocksdb_reads_customers_through_bloom_filters_and_partitioned_indexes() -> None:
    s = _settings({"LIVEFIT_FLINK__STATE_BACKEND": "rocksdb"})
    assert s["state.backend.type"] == "rocksdb"
    assert s["state.backend.rocksdb.use-bloom-filter"] == "true"
    assert float(s["state.backend.rocksdb.bloom-filter.bits-per-key"]) == 10.0
    assert s["state.backend.rocksdb.memory.partitioned-index-filters"] == "true"
    assert s["state.backend.rocksdb.timer-service.factory"] == "ROCKSDB"
    assert s["execution.checkpointing.incremental"] == "true"


def test_rocksdb_settings_can_be_turned_off() -> None:
    s = _settings({"LIVEFIT_FLINK__STATE_BACKEND": "rocksdb", "LIVEFIT_FLINK__ROCKSDB_BLOOM_BITS_PER_KEY": "0",
                   "LIVEFIT_FLINK__ROCKSDB_PARTITIONED_INDEX": "false"})
    assert "state.backend.rocksdb.use-bloom-filter" not in s
    assert s["state.backend.rocksdb.memory.partitioned-index-filters"] == "false"


def test_unknown_timer_service_is_refused() -> None:
    with pytest.raises(ValueError, match="rocksdb_timers"):
        _settings({"LIVEFIT_FLINK__STATE_BACKEND": "rocksdb", "LIVEFIT_FLINK__ROCKSDB_TIMERS": "disk"})


def test_checkpoints_and_restore_paths_become_file_uris(tmp_path: Path) -> None:
    s = _settings({}, checkpoint_dir=str(tmp_path / "ck"), restore_from=str(tmp_path / "sp" / "savepoint-1"))
    assert s["execution.checkpointing.dir"] == (tmp_path / "ck").resolve().as_uri()
    assert s["execution.state-recovery.path"] == (tmp_path / "sp" / "savepoint-1").resolve().as_uri()
    assert _settings({}, restore_from="s3://bucket/sp-1")["execution.state-recovery.path"] == "s3://bucket/sp-1"



_TINY_JOB = """
import sys

from jobs.score_job import make_env, run_until_stopped
from livefit.config import load_config

MODE = sys.argv[1]  # read here: the function below runs in the TaskManager, with its own argv


def where_udfs_comes_from(x: int) -> str:
    import udfs.envelope  # runs in the interpreter the TaskManager embeds (thread mode)

    if MODE == "fail":
        raise ValueError("this function fails on every start")
    return udfs.envelope.__file__


env = make_env(load_config(path=None), checkpoint_dir=None)
if MODE == "fail":  # as the job runs: it announces why it stopped
    env.from_collection([1]).map(where_udfs_comes_from).print()
    run_until_stopped(env, "fails-on-every-start", "savepoints")
with env.from_collection([1]).map(where_udfs_comes_from).execute_and_collect() as results:
    print("UDFS", list(results)[0])
"""


def _run_tiny_job(tmp_path: Path, mode: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """A one-record job built by the job's own make_env, run from a directory outside the
    repository (local execution, thread mode: the default)."""
    script = tmp_path / "tiny_job.py"
    script.write_text(_TINY_JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEFIT_")}
    env.update(settings, FLINK_LOG_DIR=str(tmp_path / "flink-logs"))
    return subprocess.run([sys.executable, str(script), mode], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)


def test_thread_mode_finds_livefits_packages_from_any_working_directory(tmp_path: Path) -> None:
    """Started from outside the repository, every task used to fail with "No module named
    'udfs'" and the job restarted forever."""
    import udfs

    out = _run_tiny_job(tmp_path, "ok")
    assert out.returncode == 0, out.stderr[-3000:]
    found = [line.split(" ", 1)[1] for line in out.stdout.splitlines() if line.startswith("UDFS ")]
    assert found == [str(Path(udfs.__file__).parent / "envelope.py")]


def test_a_job_that_fails_on_every_start_stops_with_its_cause(tmp_path: Path) -> None:
    out = _run_tiny_job(tmp_path, "fail", LIVEFIT_FLINK__RESTART_ATTEMPTS="2")
    assert out.returncode != 0
    assert "Recovery is suppressed" in out.stderr, out.stderr[-3000:]
    said = [line for line in out.stdout.splitlines() if "stopped restarting" in line]
    assert said == ["[livefit-job] the job failed and stopped restarting (flink.restart_attempts); the "
                    "cause: pemja.core.PythonException: <class 'ValueError'>: this function fails on "
                    "every start (Flink's log has the whole trace)"], out.stdout
