"""Training from a seeded history: every model, versioned, with the metrics that chose it."""

from __future__ import annotations

from livefit.config import Config, DataConfig
from livefit.workload import build_workload
from models.train import train_on_history
from udfs.customer import CustomerLogic, ScoringParams


def test_training_writes_propensity_cold_start_and_anomaly_models_and_retrains_as_new_versions(tmp_path):
    w = build_workload(Config(), DataConfig(seed=3, customers=150, products=40, history_days=30))
    said: list[str] = []
    for _ in range(2):
        manifest = train_on_history(w.history, w.products, str(tmp_path), "propensity", 120_000, 20,
                                    say=said.append)
    assert manifest["version"] == 2 and manifest["metrics"]["holdout"]["roc_auc"] > 0.6
    logic = CustomerLogic.for_serving(str(tmp_path), "propensity", 0, "order_anomaly", ScoringParams())
    assert (logic.model.name, logic.model.version) == ("propensity", 2)
    assert logic.anomaly_model is not None and logic.anomaly_model.version == 2
    cold = (tmp_path / "propensity_cold" / "v2" / "manifest.json").read_text()
    assert "serve_for_cold_start" in cold and "holdout_cold_start" in cold
    assert any("cold-start holdout" in s for s in said) and any("IsolationForest" in s for s in said)
