"""`livefit report` end to end on a small seeded workload, River baseline included (its own venv)."""

from __future__ import annotations

import json

from livefit.config import Config
from livefit.report import report

KEYS = {"auc_offline", "auc_online", "auc_river", "logloss_offline", "logloss_online",
        "logloss_river", "labels", "positives"}


def test_report_writes_markdown_plots_and_summary_with_every_baseline(tmp_path):
    cfg = Config()
    cfg.data.customers, cfg.data.products, cfg.data.history_days = 200, 60, 40
    summary = report([11, 12], tmp_path, say=lambda m: None, cfg=cfg)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["seed"] == 11 and [s["seed"] for s in on_disk["seeds"]] == [11, 12]
    for group in ("warm", "new"):
        assert KEYS <= set(on_disk[group]), group
        assert on_disk[group]["labels"] > 0
        assert 0.5 < on_disk[group]["auc_river"] < 1.0  # River really ran on the same stream
    # A customer without labels is served exactly the offline model plus their segment's shared
    # correction (no cold-start model here unless training chose it; the report says which):
    # without the shared correction (the ablation run), exactly the offline model.
    new, without = summary["new"], summary["without_shared_drift"]["new"]
    if not summary["cold_start_model_served"]:
        assert without["auc_online"] == new["auc_offline"] and without["logloss_online"] == new["logloss_offline"]
    assert set(summary["shared_drift_offsets"]) >= {"budget", "premium"}
    assert summary["shared_drift_offsets"]["budget"] < summary["shared_drift_offsets"]["premium"]
    # The per-customer residual learns from a customer's own labels only: new customers are
    # served the same with and without it.
    assert summary["without_personal_residual"]["new"] == {k: new[k] for k in ("auc_online", "logloss_online")}
    # The generator's own purchase probability is the ceiling of every model on every group.
    for group in ("warm", "new", "all"):
        ceiling = summary["headroom"][group]["auc_generator"]
        assert all(summary[group][f"auc_{m}"] < ceiling for m in ("offline", "online", "river")), group
    # What a customer's labels can tell of their propensity is less than the propensity itself.
    h = summary["headroom"]["warm"]
    assert h["auc_offline_with_personal_from_labels"] <= h["auc_offline_with_true_personal"]
    assert h["auc_offline_with_fit_from_interactions"] <= h["auc_offline_with_true_fit"]
    assert summary["order_anomaly"]["orders"] > 0
    md = (tmp_path / "README.md").read_text()
    for part in ("Without the shared per-segment drift correction", "Without the per-customer residual",
                 "How much there is to learn", "a learner sees the propensity only through",
                 "labels' best - offline", "The fit, too, is seen only through the customer",
                 "AUC generator"):
        assert part in md, part
    assert "## Seed 11" in md and "## Seed 12" in md and "| target | met | by |" in md
    for seed in (11, 12):
        for f in ("warmup-auc.png", "warmup-logloss.png", "calibration.png"):
            assert (tmp_path / f"seed-{seed}" / f).read_bytes()[:4] == b"\x89PNG"
    # Calibration: every model's bins cover all warm labels; the ECE is in the report.
    for model, cal in summary["calibration_warm"].items():
        assert sum(b["n"] for b in cal["bins"]) == summary["warm"]["labels"], model
        assert 0.0 <= cal["ece"] < 0.5
    assert "Calibration on warm customers" in md
    # How sure the differences are: intervals from resampling customers, around the point values.
    for group in ("warm", "new", "all"):
        g, ci = summary[group], summary["gain_ci95"][group]
        assert ci["auc"][0] <= g["auc_online"] - g["auc_offline"] <= ci["auc"][1], group
        assert ci["logloss"][0] < ci["logloss"][1], group
    lo, hi = summary["warmup_rise_ci95"]
    first, last = summary["warmup_curve"][0]["auc_online"], summary["warmup_curve"][-1]["auc_online"]
    assert lo <= last - first <= hi
    lo, hi = summary["warmup_rise_new_to_warm_ci95"]
    assert lo <= summary["warm"]["auc_online"] - summary["new"]["auc_online"] <= hi
    assert "warm customers above new ones" in md
    # What each part adds, on the same rows with and without it (a paired interval).
    for part in ("without_shared_drift", "without_personal_residual"):
        lo, hi = summary[part]["gain_ci95"]["warm"]["auc"]
        assert lo <= summary["warm"]["auc_online"] - summary[part]["warm"]["auc_online"] <= hi, part
    assert "AUC added (95 % CI)" in md
    for c in summary["warmup_curve"]:  # and per bucket of the warm-up curve
        lo, hi = c["gain_ci95"]["auc"]
        assert lo <= c["auc_online"] - c["auc_offline"] <= hi, c["labels_before"]
    assert "95 % CI" in md and "online - offline (95 % CI)" in md
