"""The session cluster's runtime configuration (no cluster started: tests/e2e/test_cluster.py runs one)."""

from __future__ import annotations

import yaml

from livefit import flink_cluster as fc
from livefit.config import load_config


def test_runtime_conf_starts_the_configured_taskmanagers_and_slots(tmp_path):
    cfg = load_config(None, env={"LIVEFIT_STACK__RUN_DIR": str(tmp_path),
                                 "LIVEFIT_FLINK__CLUSTER_TASKMANAGERS": "2",
                                 "LIVEFIT_FLINK__CLUSTER_TASK_SLOTS": "1",
                                 "LIVEFIT_JOB__PARALLELISM": "2"})
    conf_dir = fc.write_runtime_conf(cfg)
    # start-cluster.sh starts one TaskManager per line of workers
    assert (conf_dir / "workers").read_text().splitlines() == ["localhost", "localhost"]
    conf = yaml.safe_load((conf_dir / "config.yaml").read_text())
    assert conf["taskmanager"]["numberOfTaskSlots"] == 1
    assert conf["parallelism"]["default"] == 2
    assert conf_dir.is_relative_to(tmp_path)


def test_default_cluster_is_one_taskmanager_with_two_slots(tmp_path):
    cfg = load_config(None, env={"LIVEFIT_STACK__RUN_DIR": str(tmp_path)})
    conf_dir = fc.write_runtime_conf(cfg)
    assert (conf_dir / "workers").read_text().splitlines() == ["localhost"]
    assert yaml.safe_load((conf_dir / "config.yaml").read_text())["taskmanager"]["numberOfTaskSlots"] == 2
