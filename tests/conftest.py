from __future__ import annotations

import gc
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


@pytest.fixture(autouse=True)
def no_frozen_heap_left_behind() -> Any:
    """An operator's open() freezes the heap for good, as at a job's start (livefit.gc_tuning):
    a test that opens one outside ``streaming_gc()`` leaks that into every later test (a later
    doctest of streaming_gc failed in CI). Named here, at the test that did it."""
    frozen = gc.get_freeze_count()
    yield
    assert gc.get_freeze_count() == frozen, "this test left objects frozen: wrap open() in streaming_gc()"


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
