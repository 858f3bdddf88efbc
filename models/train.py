"""``livefit train``: extract history from the warehouse with SQL, replay it through the job's
feature code, fit the purchase-propensity model, evaluate it on a later time slice, and save a
new version with its manifest. Rerunning on fresh data writes the next version; a running job
keeps serving the version it loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.registry import save_model
from udfs.anomaly import ORDER_FEATURE_NAMES
from udfs.envelope import DEFAULT_MAX_CREATED_AFTER_COMMIT_MS, VALIDATORS, InvalidEvent, iso_ms
from udfs.features import FEATURE_NAMES, Product
from udfs.replay import HistoryEvent, order_examples, replay
from udfs.scoring import cold_start_name

HOLDOUT_SHARE = 0.2
ANOMALY_REVIEW_SHARE = 0.02
# A few hundred cold-start holdout rows: a smaller AUC difference is noise, not a better model.
COLD_START_MARGIN = 0.01
MIN_ORDERS = 20  # an isolation forest needs some normal history to say what is unusual


def without_rows_from_the_future(events: list[HistoryEvent], now_ms: int,
                                 say: Callable[[str], None] = print,
                                 margin_ms: int = DEFAULT_MAX_CREATED_AFTER_COMMIT_MS,
                                 ) -> list[HistoryEvent]:
    """The history without rows created later than ``now_ms`` (the database's clock) plus
    ``margin_ms``, the margin the job allows a ``created_at`` after its commit
    (``job.max_created_after_commit_ms``). The job dead-letters such rows (a
    wrong clock wrote them), so training on them would learn from what serving never sees; one
    of them would also set the history's end, and with it which interactions count as negatives
    because their horizon has passed, a year ahead. Says what it left out. (A row the job
    dead-lettered whose created_at has passed since cannot be told apart here: the warehouse
    keeps no commit time.)

    >>> e = [HistoryEvent(1_000, "interactions", 1, 7, 3, kind="view"),
    ...      HistoryEvent(10**12, "orders", 2, 7, 3, amount=5.0, quantity=1)]
    >>> [x.row_id for x in without_rows_from_the_future(e, now_ms=2_000, say=print)]
    [train] left out 1 row created after the database's clock (now 1970-01-01T00:00:02Z): orders 2 (2001-09-09T01:46:40Z); the job dead-letters them too
    [1]
    """
    cutoff = now_ms + margin_ms
    kept: list[HistoryEvent] = []
    future: list[HistoryEvent] = []
    for e in events:
        (future if e.ts_ms > cutoff else kept).append(e)
    if future:
        say(f"[train] left out {_rows(len(future))} created after the database's clock (now "
            f"{iso_ms(now_ms)}): {_first_few(f'{e.table} {e.row_id} ({iso_ms(e.ts_ms)})' for e in future)}; "
            "the job dead-letters them too")
    return kept


def _rows(n: int, table: str = "") -> str:
    """``n`` rows, for a message: "1 row", "2 orders rows"."""
    return f"{n} {table + ' ' if table else ''}row{'s' * (n > 1)}"


def _first_few(items: Iterable[str], shown: int = 5) -> str:
    """The first ``shown`` of ``items``, then "..." if there are more."""
    items = list(items)
    return ", ".join(items[:shown]) + (", ..." if len(items) > shown else "")


def rows_the_job_accepts(table: str, rows: list[dict[str, Any]],
                         say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """The warehouse rows of ``table`` that the job would accept, by the parser's own checks
    (``udfs.envelope.VALIDATORS``). The job dead-letters the rest (an order of -5, a product
    without a price), so training leaves them out too, and says which and why: on such a row
    the features are undefined (the log of a negative amount), or serving never sees it.

    >>> order = {"id": 1, "customer_id": 2, "product_id": 3, "quantity": 1, "amount": 9.5}
    >>> kept = rows_the_job_accepts("orders", [order, {**order, "id": 2, "amount": -5.0}])
    [train] left out 1 orders row the job dead-letters: id 2 (amount: -5.0 is outside [0, 1e+09])
    >>> [r["id"] for r in kept]
    [1]
    """
    validate = VALIDATORS[table]
    kept, refused = [], []
    for row in rows:
        try:
            validate(row)
            kept.append(row)
        except InvalidEvent as exc:
            refused.append(f"id {row.get('id')} ({exc})")
    if refused:
        say(f"[train] left out {_rows(len(refused), table)} the job dead-letters: {_first_few(refused)}")
    return kept


def extract_history(dsn: str, say: Callable[[str], None] = print,
                    margin_ms: int = DEFAULT_MAX_CREATED_AFTER_COMMIT_MS,
                    ) -> tuple[list[HistoryEvent], dict[int, Product]]:
    """The warehouse's history as the job would have seen it: only rows it accepts, none created
    after the database's clock."""
    import psycopg

    from livefit.sql import scalar

    def ms(ts: datetime) -> int:
        return int(ts.timestamp() * 1000)

    with psycopg.connect(dsn) as conn:
        def fetch(table: str, columns: str) -> list[dict[str, Any]]:
            cur = conn.execute(f"SELECT {columns} FROM {table}")
            names = [d.name for d in cur.description or []]
            # numeric columns arrive as Decimal; the job reads them as JSON numbers (floats)
            rows = [{k: float(v) if isinstance(v, Decimal) else v for k, v in zip(names, r, strict=True)}
                    for r in cur]
            return rows_the_job_accepts(table, rows, say)

        now_ms = ms(scalar(conn, "SELECT now()"))
        products = {int(r["id"]): Product.from_row(r)
                    for r in fetch("products", "id, category, color, price")}
        events = [HistoryEvent(ms(r["created_at"]), "interactions", r["id"], r["customer_id"],
                               r["product_id"], kind=r["kind"])
                  for r in fetch("interactions", "id, customer_id, product_id, kind, created_at")]
        events += [HistoryEvent(ms(r["created_at"]), "orders", r["id"], r["customer_id"], r["product_id"],
                                amount=r["amount"], quantity=r["quantity"])
                   for r in fetch("orders", "id, customer_id, product_id, amount, created_at, quantity")]
    return without_rows_from_the_future(events, now_ms, say, margin_ms), products


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
    say: Callable[[str], None] = print, anomaly_name: str = "order_anomaly",
    max_created_after_commit_ms: int = DEFAULT_MAX_CREATED_AFTER_COMMIT_MS,
) -> dict[str, Any]:
    """Train on the warehouse at ``dsn`` (see the module docstring)."""
    events, products = extract_history(dsn, say, max_created_after_commit_ms)
    return train_on_history(events, products, model_dir, name, label_horizon_ms, history_len, say,
                            anomaly_name)


def train_on_history(
    events: list[HistoryEvent], products: dict[int, Product], model_dir: str, name: str,
    label_horizon_ms: int, history_len: int, say: Callable[[str], None] = print,
    anomaly_name: str = "order_anomaly",
) -> dict[str, Any]:
    """Train every model from one history: propensity, its cold-start variant, order anomaly.

    Returns the propensity model's manifest.
    """
    manifest = train_propensity(events, products, model_dir, name, label_horizon_ms, history_len,
                                say)
    train_order_anomaly(events, products, model_dir, anomaly_name, history_len, say)
    return manifest


def _fit_propensity(X: np.ndarray, y: np.ndarray) -> Pipeline:
    return Pipeline([("scale", StandardScaler()),
                     ("logreg", LogisticRegression(C=1.0, max_iter=2000))]).fit(X, y)


def train_propensity(
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

    fit = _fit_propensity
    # Evaluate on the most recent slice (examples are in time order), then refit on everything.
    cut = int(len(examples) * (1 - HOLDOUT_SHARE))
    early = fit(X[:cut], y[:cut])
    holdout = _metrics(y[cut:], early.predict_proba(X[cut:])[:, 1])
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
    _train_cold_start(X, y, cut, early, window, model_dir, cold_start_name(name), say)
    return manifest


def _train_cold_start(X: np.ndarray, y: np.ndarray, cut: int, early: Pipeline,
                      window: dict[str, Any], model_dir: str, name: str,
                      say: Callable[[str], None]) -> dict[str, Any] | None:
    """A propensity model fitted only on cold-start examples; served to cold-start customers only
    if, on the same later holdout slice, it beats the personalised model there."""
    cold = X[:, FEATURE_NAMES.index("cold_start")] == 1.0
    train_rows, holdout_rows = cold.copy(), cold.copy()
    train_rows[cut:] = False
    holdout_rows[:cut] = False
    if train_rows.sum() < 50 or len(set(y[train_rows].tolist())) < 2 or holdout_rows.sum() < 20:
        say(f"[train] {name}: only {int(cold.sum())} cold-start examples, not trained")
        return None
    on_holdout = {
        "cold_start_model": _metrics(y[holdout_rows], _fit_propensity(
            X[train_rows], y[train_rows]).predict_proba(X[holdout_rows])[:, 1]),
        "personalised_model": _metrics(y[holdout_rows], early.predict_proba(X[holdout_rows])[:, 1]),
    }
    c, p = on_holdout["cold_start_model"], on_holdout["personalised_model"]
    serve = ("roc_auc" in c and "roc_auc" in p and c["roc_auc"] >= p["roc_auc"] + COLD_START_MARGIN
             and c["log_loss"] < p["log_loss"])
    model = _fit_propensity(X[cold], y[cold])
    manifest = save_model(
        model_dir, name, model, FEATURE_NAMES, {**window, "examples": int(cold.sum())},
        {"holdout_cold_start": on_holdout, "holdout_share": HOLDOUT_SHARE},
        extra={"selection": {"serve_for_cold_start": serve,
                             "rule": f"ROC-AUC >= {COLD_START_MARGIN} higher and log loss lower "
                                     "than the personalised model's on the cold-start rows of "
                                     "the holdout slice"}})
    say(f"[train] {name} v{manifest['version']}: on cold-start holdout rows ROC-AUC "
        f"{c.get('roc_auc')} vs {p.get('roc_auc')} (personalised) -> "
        f"{'served' if serve else 'not served'} to cold-start customers")
    return manifest


def train_order_anomaly(
    events: list[HistoryEvent], products: dict[int, Product], model_dir: str, name: str,
    history_len: int, say: Callable[[str], None] = print,
) -> dict[str, Any] | None:
    """IsolationForest on the order history's features (see udfs.anomaly)."""
    rows = [x for _e, x in order_examples(events, products, history_len)]
    if len(rows) < MIN_ORDERS:
        say(f"[train] {name}: only {len(rows)} orders (fewer than {MIN_ORDERS}), not trained; "
            "orders are scored without an anomaly score until it is")
        return None
    X = np.asarray(rows, dtype=np.float64)
    # contamination: the share of orders flagged for review (sets the threshold, not the scores).
    forest = IsolationForest(n_estimators=100, max_samples=min(256, len(rows)),
                             contamination=ANOMALY_REVIEW_SHARE,
                             random_state=0).fit(X)
    flagged = float((forest.predict(X) == -1).mean())
    orders = [e.ts_ms for e in events if e.table == "orders"]
    window = {"from": datetime.fromtimestamp(min(orders) / 1000, UTC).isoformat(),
              "to": datetime.fromtimestamp(max(orders) / 1000, UTC).isoformat(), "orders": len(rows)}
    manifest = save_model(model_dir, name, forest, ORDER_FEATURE_NAMES, window,
                          {"train_flagged_share": round(flagged, 4)})
    say(f"[train] {name} v{manifest['version']}: IsolationForest on {len(rows)} orders, "
        f"{flagged:.1%} of them flagged")
    return manifest
