"""Replay history through the job's own feature code, for offline training.

Training examples must be computed by the same code the job runs on keyed state, over events in
time order, so a training row sees only what was known at its event time (no leakage) and the
offline model sees the features it will be served (no training/serving skew).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from udfs.anomaly import order_features
from udfs.envelope import ChangeEvent
from udfs.features import CustomerProfile, Product, interaction_features


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    ts_ms: int
    table: str  # "interactions" | "orders"
    row_id: int
    customer_id: int
    product_id: int
    kind: str = ""  # interactions
    amount: float = 0.0  # orders
    quantity: int = 1  # orders


@dataclass(frozen=True, slots=True)
class Example:
    event: HistoryEvent
    x: list[float]
    label: int | None  # None: the horizon had not passed when the history ends


# At equal event time: products and customers before the changes that refer to them, orders
# before interactions.
TABLE_ORDER = {"products": 0, "customers": 1, "orders": 2, "interactions": 3}


def in_commit_order(events: Iterable[HistoryEvent]) -> list[HistoryEvent]:
    return sorted(events, key=lambda e: (e.ts_ms, TABLE_ORDER[e.table], e.row_id))


def replay_order_key(ev: ChangeEvent) -> tuple[int, int, int]:
    """Where a change goes in the order :func:`in_commit_order` replays history: how the job
    applies Debezium's initial snapshot, which arrives table by table.

    >>> from udfs.envelope import ChangeEvent
    >>> def change(table, row_id, ts):
    ...     return ChangeEvent(table, "r", {"id": row_id}, None, f"{table}:{row_id}", ts, 0, True, 1)
    >>> arrived = [change("interactions", 7, 2_000), change("interactions", 3, 1_000),
    ...            change("orders", 9, 2_000), change("customers", 1, 500)]
    >>> [(c.table, c.row["id"]) for c in sorted(arrived, key=replay_order_key)]
    [('customers', 1), ('interactions', 3), ('orders', 9), ('interactions', 7)]
    """
    return ev.event_ts_ms, TABLE_ORDER.get(ev.table, len(TABLE_ORDER)), int(ev.row.get("id") or 0)


def walk(
    ordered: list[HistoryEvent], products: dict[int, Product], history_len: int,
) -> Iterator[tuple[HistoryEvent, CustomerProfile, Product | None]]:
    """Each event with its customer's profile as it was just *before* the event, which is applied
    to the profile when the caller asks for the next one (what the job's keyed state does)."""
    profiles: dict[int, CustomerProfile] = {}
    for e in ordered:
        profile = profiles.setdefault(e.customer_id, CustomerProfile())
        product = products.get(e.product_id)
        yield e, profile, product
        if e.table == "orders":
            profile.observe_order(product, e.product_id, e.amount, e.ts_ms, history_len)
        else:
            profile.observe_interaction(product, e.kind, e.ts_ms, history_len)


def order_examples(
    events: Iterable[HistoryEvent], products: dict[int, Product], history_len: int,
) -> Iterator[tuple[HistoryEvent, list[float]]]:
    """Each order with the anomaly model's features as of just before it."""
    for e, profile, product in walk(in_commit_order(events), products, history_len):
        if e.table == "orders":
            yield e, order_features(profile, product, e.quantity, e.amount, e.ts_ms, e.product_id)


def replay(
    events: Iterable[HistoryEvent], products: dict[int, Product], history_len: int,
    label_horizon_ms: int, history_end_ms: int,
) -> Iterator[Example]:
    """Yield one example per interaction, with features as of just before it and its label."""
    ordered = in_commit_order(events)
    orders_by_pair: dict[tuple[int, int], list[int]] = {}
    for e in ordered:
        if e.table == "orders":
            orders_by_pair.setdefault((e.customer_id, e.product_id), []).append(e.ts_ms)
    for e, profile, product in walk(ordered, products, history_len):
        if e.table == "orders":
            continue
        x = interaction_features(profile, product, e.kind, e.ts_ms)
        label: int | None
        if e.ts_ms + label_horizon_ms > history_end_ms:
            label = None
        else:
            hits = orders_by_pair.get((e.customer_id, e.product_id), ())
            label = int(any(e.ts_ms <= t <= e.ts_ms + label_horizon_ms for t in hits))
        yield Example(e, x, label)
