from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from livefit.config import Config, DataConfig, load_config
from livefit.workload import Workload, build_workload
from models.train import train_on_history
from udfs.customer import CustomerLogic

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
