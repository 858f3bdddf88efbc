"""The seeded generator's history as Debezium change events, exactly as Debezium writes them
(envelope, key, topic): the benchmark preloads the CDC topics with it (the job measured without
the feeder in the way) and the quality report replays it through the job's logic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from livefit.config import Config, DataConfig
from livefit.datagen import SEGMENTS, PurchaseTruth, build_world, generate_history
from udfs.features import Product
from udfs.replay import HistoryEvent


@dataclass
class Workload:
    records: list[tuple[str, bytes, bytes, int]]  # (topic, key, value, timestamp_ms), time order
    history: list[HistoryEvent]
    products: dict[int, Product]
    interactions: int
    anomalous_order_ids: set[int]  # ground truth: orders the generator made abnormal
    purchase_truth: dict[int, PurchaseTruth]  # ground truth: each interaction's purchase logit, by id
    history_window_ms: tuple[int, int]  # the generator's (start, end), epoch ms
    segments: dict[int, int]  # ground truth: each customer's segment (SEGMENTS index), by id


def iso_utc(ts: datetime) -> str:
    """``ts`` as Debezium writes a timestamp column: ISO 8601 in UTC with a Z."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def change_record(cfg: Config, table: str, row: dict[str, Any], ts_ms: int,
                  lsn: int) -> tuple[str, bytes, bytes, int]:
    """A row's creation as Debezium writes it: (topic, key, envelope, timestamp_ms)."""
    env = {"before": None, "after": row,
           "source": {"version": "3.6.3.Final", "connector": "postgresql", "name": "shop",
                      "ts_ms": ts_ms, "snapshot": "false", "db": "shop", "schema": "public",
                      "table": table, "txId": lsn, "lsn": lsn * 8},
           "transaction": None, "op": "c", "ts_ms": ts_ms}
    # The key as Debezium's ByLogicalTableRouter writes it: the row's id and its table.
    key = {"id": row["id"], "__dbz__physicalTableIdentifier": f"{cfg.kafka.topic_prefix}.{cfg.kafka.schema}.{table}"}
    return (cfg.kafka.changes_topic, json.dumps(key).encode(),
            json.dumps(env, separators=(",", ":")).encode(), ts_ms)


def heartbeat_record(cfg: Config, ts_ms: int) -> tuple[str, bytes, bytes, int]:
    """Debezium's heartbeat as it reaches the changes topic (``heartbeat.interval.ms``, routed
    like every other record): after the history's last change it lets every label fall due, as
    it does for a quiet database. (topic, key, value, timestamp_ms)"""
    key = {"serverName": cfg.kafka.topic_prefix,
           "__dbz__physicalTableIdentifier": f"__debezium-heartbeat.{cfg.kafka.topic_prefix}"}
    return (cfg.kafka.changes_topic, json.dumps(key).encode(),
            json.dumps({"ts_ms": ts_ms}, separators=(",", ":")).encode(), ts_ms)


def build_workload(cfg: Config, data: DataConfig) -> Workload:
    end = datetime(2026, 11, 1, tzinfo=UTC)  # fixed anchor: the same bytes every run
    world = build_world(data, end)
    interactions, orders, anomalous, truth = generate_history(world, data)
    rows: list[tuple[datetime, str, dict[str, Any]]] = []
    for p in world.products:
        rows.append((p["created_at"], "products", {**p, "created_at": iso_utc(p["created_at"]),
                                                    "updated_at": iso_utc(p["created_at"])}))
    for c in world.customers:
        rows.append((c["created_at"], "customers", {**c, "created_at": iso_utc(c["created_at"])}))
    for i, (t, cid, pid, kind) in enumerate(interactions, 1):
        rows.append((t, "interactions", {"id": i, "customer_id": cid, "product_id": pid,
                                         "kind": kind, "created_at": iso_utc(t)}))
    for i, (t, cid, pid, qty, amount) in enumerate(orders, 1):
        rows.append((t, "orders", {"id": i, "customer_id": cid, "product_id": pid, "quantity": qty,
                                   "amount": amount, "status": "new", "created_at": iso_utc(t)}))
    rows.sort(key=lambda r: r[0])
    records = [change_record(cfg, table, row, int(t.timestamp() * 1000), lsn)
               for lsn, (t, table, row) in enumerate(rows, start=10_000_000)]
    if records:  # then the database falls quiet, and Debezium's heartbeat says how long for
        records.append(heartbeat_record(cfg, records[-1][3] + int(cfg.job.label_horizon_s * 1000)
                                        + cfg.job.max_out_of_orderness_ms + 1000))
    history = [HistoryEvent(int(t.timestamp() * 1000), "interactions", i, cid, pid, kind=kind)
               for i, (t, cid, pid, kind) in enumerate(interactions, 1)]
    history += [HistoryEvent(int(t.timestamp() * 1000), "orders", i, cid, pid, amount=amount,
                             quantity=qty)
                for i, (t, cid, pid, qty, amount) in enumerate(orders, 1)]
    products = {p["id"]: Product(p["id"], p["category"], p["color"], float(p["price"]))
                for p in world.products}
    return Workload(records, history, products, len(interactions),
                    {i for i, row in enumerate(orders, 1) if row in anomalous},
                    dict(enumerate(truth, 1)),
                    (int(world.start.timestamp() * 1000), int(world.end.timestamp() * 1000)),
                    {cust["id"]: SEGMENTS.index(cust["segment"]) for cust in world.customers})
