"""Offline replay: the job's own features in time order, labels from the horizon, no leakage."""

from __future__ import annotations

from tests.helpers import interaction, offline_model, order
from udfs.customer import CustomerLogic, CustomerState, ScoringParams
from udfs.features import FEATURE_NAMES, Product
from udfs.replay import HistoryEvent, replay

P = {1: Product(1, "shoes", "red", 80.0), 2: Product(2, "bags", "black", 120.0)}
H = 60_000


def events() -> list[HistoryEvent]:
    return [
        HistoryEvent(0, "interactions", 1, 7, 1, kind="view"),
        HistoryEvent(10_000, "orders", 1, 7, 1, amount=80.0),
        HistoryEvent(20_000, "interactions", 2, 7, 2, kind="click"),
        HistoryEvent(500_000, "interactions", 3, 7, 1, kind="view"),
        HistoryEvent(990_000, "interactions", 4, 7, 1, kind="view"),
    ]


def test_labels_follow_the_horizon_and_unresolved_ones_are_none():
    ex = list(replay(reversed(events()), P, 20, H, history_end_ms=1_000_000))
    assert [e.label for e in ex] == [1, 0, 0, None]


def test_replay_features_equal_the_jobs_features():
    """The same event sequence through replay and through the job's logic: identical vectors."""
    offline = [e.x for e in replay(events(), P, 20, H, history_end_ms=10**9)]
    logic = CustomerLogic(offline_model(), ScoringParams(label_horizon_ms=H, history_len=20))
    state, online = CustomerState(), []
    for e in events():
        if e.table == "orders":
            logic.on_order(state, order(e.row_id, e.ts_ms, e.product_id, e.amount), P[e.product_id])
        else:
            logic.on_interaction(state, interaction(e.row_id, e.ts_ms, e.product_id, e.kind), P[e.product_id])
            online.append(state.pending[-1].x if state.pending and state.pending[-1].interaction_id == e.row_id
                          else None)
    # interaction 1 resolved at once? no: its order came later, so it was pending when recorded
    assert online[0] == offline[0]
    assert online[1:] == offline[1:]
    assert len(offline[0]) == len(FEATURE_NAMES)
