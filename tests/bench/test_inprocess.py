"""The in-process limit (bench/inprocess.py): the job's per-event work in a plain loop, whose
label counts the regression guard holds the job to."""

from __future__ import annotations

from pathlib import Path

from bench.inprocess import run_loop
from livefit.config import DataConfig, load_config
from livefit.workload import build_workload
from models.train import train_on_history
from udfs.customer import CustomerLogic


def test_every_interaction_gets_one_label_and_the_state_sizes_are_measured(tmp_path: Path):
    cfg = load_config(None, env={})
    workload = build_workload(cfg, DataConfig(customers=60, products=40, history_days=20))
    horizon_ms = int(cfg.job.label_horizon_s * 1000)
    train_on_history(workload.history, workload.products, str(tmp_path), cfg.job.model_name,
                     horizon_ms, cfg.job.history_len, say=lambda m: None)
    logic = CustomerLogic.for_serving(str(tmp_path), cfg.job.model_name, 0, cfg.job.anomaly_model_name,
                                      cfg.job.scoring_params())
    r = run_loop(workload, logic, cfg.job.max_out_of_orderness_ms)
    assert r["interactions_scored"] == workload.interactions
    assert r["labels"] == workload.interactions  # the end of input resolves the pending ones
    assert 0 < r["positives"] < r["labels"]
    assert r["customers"] > 0
    assert 0 < r["state_bytes_per_customer_mean"] <= min(2048, r["state_bytes_per_customer_max"])
