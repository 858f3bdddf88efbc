"""The Flink configuration the job is submitted with follows livefit's configuration."""

from __future__ import annotations

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
