from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from livefit.config import Config, DataConfig, load_config
from livefit.workload import Workload, build_workload
from models.train import train_on_history
from udfs.customer import CustomerLogic

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def score_validator() -> Any:
    import jsonschema

    schema = json.loads((ROOT / "schemas" / "score.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="session")
def golden_orders() -> list[dict[str, Any]]:
    """Kafka records exactly as Debezium 3.6.3 wrote them (create, update, delete, tombstone)."""
    lines = (FIXTURES / "debezium-postgres-orders.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


Trained = Callable[[DataConfig], tuple[Config, Workload, CustomerLogic]]


@pytest.fixture
def trained(tmp_path: Path) -> Trained:
    """A seeded workload of the given size, its history's models trained into ``tmp_path``, and
    the logic serving them (default configuration)."""
    def make(data: DataConfig) -> tuple[Config, Workload, CustomerLogic]:
        cfg = load_config(None, env={})
        workload = build_workload(cfg, data)
        train_on_history(workload.history, workload.products, str(tmp_path), cfg.job.model_name,
                         int(cfg.job.label_horizon_s * 1000), cfg.job.history_len, say=lambda m: None)
        cfg.job.model_dir = str(tmp_path)
        return cfg, workload, CustomerLogic.for_serving(
            str(tmp_path), cfg.job.model_name, 0, cfg.job.anomaly_model_name, cfg.job.scoring_params())
    return make
