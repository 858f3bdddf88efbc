"""``livefit train``: extract history from the warehouse with SQL, replay it through the job's
feature code, fit the purchase-propensity model, evaluate it on a later time slice, and save a
new version with its manifest. Rerunning on fresh data writes the next version; a running job
keeps serving the version it loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.registry import save_model
from udfs.features import FEATURE_NAMES, Product
from udfs.replay import HistoryEvent, replay

HOLDOUT_SHARE = 0.2


def extract_history(dsn: str) -> tuple[list[HistoryEvent], dict[int, Product]]:
    import psycopg

    def ms(ts: datetime) -> int:
        return int(ts.timestamp() * 1000)

    with psycopg.connect(dsn) as conn:
        products = {
            int(r[0]): Product(int(r[0]), r[1], r[2], float(r[3]))
            for r in conn.execute("SELECT id, category, color, price FROM products")
        }
        events = [
            HistoryEvent(ms(r[4]), "interactions", int(r[0]), int(r[1]), int(r[2]), kind=r[3])
            for r in conn.execute(
                "SELECT id, customer_id, product_id, kind, created_at FROM interactions")
        ]
        events += [
            HistoryEvent(ms(r[4]), "orders", int(r[0]), int(r[1]), int(r[2]), amount=float(r[3]))
            for r in conn.execute(
                "SELECT id, customer_id, product_id, amount, created_at FROM orders")
        ]
    return events, products


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    out = {"n": int(len(y)), "positive_rate": round(float(y.mean()), 4) if len(y) else 0.0}
    if len(set(y.tolist())) == 2:
        out.update({
            "roc_auc": round(float(roc_auc_score(y, p)), 4),
            "log_loss": round(float(log_loss(y, p, labels=[0, 1])), 4),
            "brier": round(float(brier_score_loss(y, p)), 4),
        })
    return out


def train(
    dsn: str, model_dir: str, name: str, label_horizon_ms: int, history_len: int,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train on the warehouse at ``dsn`` (see the module docstring)."""
    events, products = extract_history(dsn)
    return train_on_history(events, products, model_dir, name, label_horizon_ms, history_len, say)


def train_on_history(
    events: list[HistoryEvent], products: dict[int, Product], model_dir: str, name: str,
    label_horizon_ms: int, history_len: int, say: Callable[[str], None] = print,
) -> dict[str, Any]:
    t0 = time.monotonic()
    if not events:
        raise RuntimeError("the warehouse has no interactions to train on: run 'livefit seed' first")
    end_ms = max(e.ts_ms for e in events)
    examples = [ex for ex in replay(events, products, history_len, label_horizon_ms, end_ms)
                if ex.label is not None]
    if len(examples) < 50:
        raise RuntimeError(f"only {len(examples)} labeled interactions: too few to train on")
    X = np.asarray([ex.x for ex in examples], dtype=np.float64)
    y = np.asarray([ex.label for ex in examples], dtype=np.int64)
    if len(set(y.tolist())) < 2:
        raise RuntimeError("every labeled interaction has the same label: cannot train a classifier")
    say(f"[train] {len(examples)} labeled interactions from {len(events)} events, "
        f"{y.mean():.1%} positive ({time.monotonic() - t0:.1f}s)")

    def fit(Xf: np.ndarray, yf: np.ndarray) -> Pipeline:
        return Pipeline([("scale", StandardScaler()),
                         ("logreg", LogisticRegression(C=1.0, max_iter=2000))]).fit(Xf, yf)

    # Evaluate on the most recent slice (examples are in time order), then refit on everything.
    cut = int(len(examples) * (1 - HOLDOUT_SHARE))
    holdout = _metrics(y[cut:], fit(X[:cut], y[:cut]).predict_proba(X[cut:])[:, 1])
    model = fit(X, y)
    window = {
        "from": datetime.fromtimestamp(min(e.ts_ms for e in events) / 1000, UTC).isoformat(),
        "to": datetime.fromtimestamp(end_ms / 1000, UTC).isoformat(),
        "label_horizon_s": label_horizon_ms / 1000,
        "examples": len(examples),
    }
    manifest = save_model(
        model_dir, name, model, FEATURE_NAMES, window,
        {"holdout": holdout, "train": _metrics(y, model.predict_proba(X)[:, 1]),
         "holdout_share": HOLDOUT_SHARE},
    )
    say(f"[train] {name} v{manifest['version']}: holdout ROC-AUC {holdout.get('roc_auc')}, "
        f"log loss {holdout.get('log_loss')} -> {model_dir}/{name}/v{manifest['version']} "
        f"({time.monotonic() - t0:.1f}s)")
    return manifest
