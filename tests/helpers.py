"""Small builders shared by unit tests (no Flink, no I/O)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from udfs.envelope import ChangeEvent
from udfs.features import FEATURE_NAMES, N_FEATURES
from udfs.scoring import OfflineModel


def fitted_pipeline(seed: int = 0) -> Pipeline:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, N_FEATURES))
    y = (X[:, 6] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=400) > 0.3).astype(int)
    return Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression())]).fit(X, y)


def offline_model(version: int = 1) -> OfflineModel:
    return OfflineModel(fitted_pipeline(), {"name": "propensity", "version": version,
                                            "features": list(FEATURE_NAMES)})


def event(table: str, op: str, row_id: int, ts_ms: int, customer_id: int = 7, **row: Any) -> ChangeEvent:
    full = {"id": row_id, "customer_id": customer_id, **row}
    return ChangeEvent(table=table, op=op, row=full, before=None,
                       event_id=f"{table}:{row_id}:{1000 + row_id}", event_ts_ms=ts_ms,
                       commit_ts_ms=ts_ms + 5, snapshot=op == "r", customer_id=customer_id)


def interaction(row_id: int, ts_ms: int, product_id: int = 1, kind: str = "view", op: str = "c",
                customer_id: int = 7) -> ChangeEvent:
    return event("interactions", op, row_id, ts_ms, customer_id, product_id=product_id, kind=kind)


def order(row_id: int, ts_ms: int, product_id: int = 1, amount: float = 50.0, op: str = "c",
          customer_id: int = 7) -> ChangeEvent:
    return event("orders", op, row_id, ts_ms, customer_id, product_id=product_id, amount=amount,
                 quantity=1, status="new")


def anomaly_model(version: int = 1) -> Any:
    """An IsolationForest fitted on 'normal' orders (1 item at list price, by day, just viewed)."""
    from sklearn.ensemble import IsolationForest

    from udfs.anomaly import ORDER_FEATURE_NAMES
    from udfs.scoring import OrderAnomalyModel

    rng = np.random.default_rng(1)
    n = 500
    hour = rng.uniform(8, 22, n)
    X = np.column_stack([np.log1p(rng.uniform(20, 150, n)), rng.normal(0, 0.3, n), np.ones(n),
                         np.ones(n), np.log1p(rng.uniform(0.1, 3, n)),
                         np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)])
    forest = IsolationForest(contamination=0.02, random_state=0).fit(X)
    return OrderAnomalyModel(forest, {"name": "order_anomaly", "version": version,
                                      "features": list(ORDER_FEATURE_NAMES)})


def cold_model(serve: bool, version: int = 1) -> OfflineModel:
    return OfflineModel(fitted_pipeline(seed=5), {
        "name": "propensity_cold", "version": version, "features": list(FEATURE_NAMES),
        "selection": {"serve_for_cold_start": serve}})
