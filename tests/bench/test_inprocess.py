"""The in-process limit (bench/inprocess.py): the job's per-event work in a plain loop, whose
label counts the regression guard holds the job to."""

from __future__ import annotations

import numpy as np

from bench.inprocess import SklearnOnlinePerEvent, customer_sample, naive_logic, run_loop
from livefit.config import DataConfig, load_config
from livefit.workload import build_workload
from tests.conftest import Trained
from udfs.envelope import ChangeEvent, parse_record


def test_every_interaction_gets_one_label_and_the_state_sizes_are_measured(trained: Trained):
    cfg, workload, logic = trained(DataConfig(customers=60, products=40, history_days=20))
    r = run_loop(workload, logic, cfg.job.max_out_of_orderness_ms)
    assert r["interactions_scored"] == workload.interactions
    assert r["labels"] == workload.interactions  # the end of input resolves the pending ones
    assert 0 < r["positives"] < r["labels"]
    assert r["customers"] > 0
    assert 0 < r["state_bytes_per_customer_mean"] <= min(2048, r["state_bytes_per_customer_max"])


def test_the_naive_baseline_does_the_same_work_through_sklearn(trained: Trained):
    """Same labels at the same moments as the limit; every model call through sklearn, the online
    model learning by partial_fit."""
    cfg, workload, logic = trained(DataConfig(customers=40, products=30, history_days=15))
    limit = run_loop(workload, logic, cfg.job.max_out_of_orderness_ms)
    naive = run_loop(workload, naive_logic(logic), cfg.job.max_out_of_orderness_ms)
    scoring_only = run_loop(workload, naive_logic(logic, online_through_sklearn=False),
                            cfg.job.max_out_of_orderness_ms)
    for r in (naive, scoring_only):
        assert (r["interactions_scored"], r["orders_scored"], r["labels"], r["positives"]) == (
            limit["interactions_scored"], limit["orders_scored"], limit["labels"], limit["positives"])


def test_the_naive_online_model_starts_at_the_offline_model_and_learns_by_partial_fit():
    m = SklearnOnlinePerEvent()
    x = np.array([0.5, -1.0, 2.0])
    assert m.predict_proba_one(x, offline_logit=0.0) == 0.5
    assert m.learn_one(x, 0.0, 1) == 0.5  # p before the step
    assert m.n_updates == 1
    assert m.predict_proba_one(x, 0.0) > 0.5  # moved toward the positive it saw


def test_the_naive_baselines_sample_keeps_whole_histories_of_every_nth_customer():
    """Not the workload's first interactions: the sample spans the whole time range, holds every
    change of the customers it keeps and none of the others', and every product change."""
    cfg = load_config(None, env={})
    workload = build_workload(cfg, DataConfig(customers=60, products=40, history_days=20))
    sample = customer_sample(workload, 4)

    def parsed(records: list) -> list:
        return [parse_record(t, 0, i, ts, k, v) for i, (t, k, v, ts) in enumerate(records)]

    full, kept = parsed(workload.records), parsed(sample.records)
    def customers(events: list) -> set:
        return {e.customer_id for e in events if isinstance(e, ChangeEvent) and e.customer_id is not None}
    assert customers(kept) == {c for c in customers(full) if c % 4 == 0} != set()
    expected = [r for r, e in zip(workload.records, full, strict=True)
                if not (isinstance(e, ChangeEvent) and e.customer_id is not None and e.customer_id % 4)]
    assert sample.records == expected  # in order, nothing of a kept customer left out
    assert sum(isinstance(e, ChangeEvent) and e.table == "products" for e in kept) == sum(
        isinstance(e, ChangeEvent) and e.table == "products" for e in full)
    interactions = [e for e in kept if isinstance(e, ChangeEvent) and e.table == "interactions"]
    assert sample.interactions == len(interactions) < workload.interactions
    every_one = [e.event_ts_ms for e in full if isinstance(e, ChangeEvent) and e.table == "interactions"]
    span = every_one[-1] - every_one[0]
    assert interactions[-1].event_ts_ms - interactions[0].event_ts_ms > 0.8 * span
    assert customer_sample(workload, 1).records == workload.records
