"""LocalRunner (udfs/runner.py), the job's wiring without Flink: a Debezium heartbeat moves
event time on like a change does, so the labels of a quiet database's last interactions fall
due without a later change, as they do in the job (ChangeEventTimeAssigner)."""

from __future__ import annotations

from pathlib import Path

from livefit.config import DataConfig, load_config
from livefit.workload import build_workload
from models.train import train_on_history
from udfs.customer import CustomerLogic
from udfs.runner import LocalRunner


def _labels(runner: LocalRunner, records: list[tuple[str, bytes, bytes, int]]) -> int:
    return sum(len(out.labels) for offset, (topic, key, value, ts) in enumerate(records)
               for out in runner.process(topic, offset, ts, key, value))


def test_the_closing_heartbeat_lets_every_label_fall_due(tmp_path: Path):
    cfg = load_config(None, env={})
    workload = build_workload(cfg, DataConfig(customers=40, products=30, history_days=10))
    train_on_history(workload.history, workload.products, str(tmp_path), cfg.job.model_name,
                     int(cfg.job.label_horizon_s * 1000), cfg.job.history_len, say=lambda m: None)

    def runner() -> LocalRunner:
        logic = CustomerLogic.for_serving(str(tmp_path), cfg.job.model_name, 0,
                                          cfg.job.anomaly_model_name, cfg.job.scoring_params())
        return LocalRunner(logic, cfg.job.max_out_of_orderness_ms)

    *changes, heartbeat = workload.records
    assert heartbeat[2].startswith(b'{"ts_ms":')
    quiet = runner()
    pending_at_the_end = workload.interactions - _labels(quiet, changes)
    assert pending_at_the_end > 0  # the last interactions' horizons are not over at the last change
    assert sum(len(out.labels) for out in quiet.finish()) == pending_at_the_end
    assert _labels(runner(), workload.records) == workload.interactions  # no finish() needed
