"""What happens to one customer's state on each event: score, remember, resolve labels, learn.

:class:`CustomerLogic` is plain Python; the Flink job's keyed function only loads and stores a
:class:`CustomerState` around these calls and registers the timers they ask for.

Labels are delayed: an interaction is scored now and kept as *pending*; it becomes a positive
example when the customer orders that product within ``label_horizon_ms`` of event time, and a
negative one when an event-time timer at ``ts + horizon`` fires first. Only then does the online
model learn from it (test-then-train: a score is always computed before its label is used).
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import time
from array import array
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

from udfs.anomaly import order_features
from udfs.drift import segment_key
from udfs.envelope import ChangeEvent
from udfs.features import (
    COLD_START_INTERACTIONS,
    FEATURE_SET,
    N_FEATURES,
    CustomerProfile,
    Product,
    feature_set_id,
    interaction_features,
)
from udfs.online import PRIOR_PRECISION_B, PRIOR_PRECISION_W, OnlineResidual, sigmoid
from udfs.scoring import OfflineModel, OrderAnomalyModel, cold_start_name

MAX_PENDING = 500  # per customer; beyond it the oldest pending label expires unlearned (counted)
MAX_RECENT_ORDERS = 500  # per customer; a safety bound, normally the watermark prunes them
# Per customer: how many recent changes a re-send is recognised against. Debezium re-sends the
# batch in flight when it crashed, seconds old; 128 changes of one customer is far beyond that.
MAX_SEEN_CHANGES = 128
KEY_BYTES = 8  # a change's de-duplication key: a signed 64-bit hash


@dataclass(slots=True)
class PendingLabel:
    interaction_id: int
    customer_id: int
    product_id: int
    ts_ms: int
    x: list[float]  # the features the score was computed from
    offline_logit: float
    model_name: str = ""  # the offline model that gave offline_logit
    model_version: int = 0
    p_online: float = 0.0  # what was served: progressive validation compares this with the label
    shared_offset: float = 0.0  # the segment's drift correction the score was computed with
    # How encode_state stores this label, made once: a label never changes after it is made,
    # and a customer's state is encoded after every event with all its pending labels (on a
    # backlog, packing them each time was a third of encode_state).
    packed: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)
    # ``x`` as the residual learns on it (OfflineModel.standardize), by the model that scaled it
    # at scoring: learning reuses it while that model still serves, instead of scaling again.
    # Not stored in Flink state; a restored label is scaled again when it resolves.
    scaled: np.ndarray | None = field(default=None, repr=False, compare=False)
    scaled_by: OfflineModel | None = field(default=None, repr=False, compare=False)

    def pack(self) -> tuple[Any, ...]:
        if self.packed is None:
            self.packed = (self.interaction_id, self.customer_id, self.product_id, self.ts_ms,
                           array("d", self.x).tobytes(), self.offline_logit, self.model_name,
                           self.model_version, self.p_online, self.shared_offset)
        return self.packed


@dataclass(slots=True)
class CustomerState:
    profile: CustomerProfile = field(default_factory=CustomerProfile)
    online: OnlineResidual = field(default_factory=lambda: OnlineResidual.zeros(N_FEATURES))
    pending: list[PendingLabel] = field(default_factory=list)
    # Orders not yet passed by the watermark, so that an interaction arriving after its own order
    # (the CDC topics are read independently; in a snapshot all orders may come first) still
    # resolves as a positive. Once the watermark passes an order's time, every interaction that
    # could match it has arrived, so it can go.
    recent_orders: list[tuple[int, int]] = field(default_factory=list)
    # Stable 64-bit hashes of the most recent changes applied (change_digest), oldest first, for
    # de-duplication: Debezium re-sends the batch in flight after a crash. KEY_BYTES each, laid out
    # as array("q") lays out change_key, which is how states stored them before; kept as bytes
    # because bytes.find looks a key up in C (array's `in` makes an int of every entry: ~3 us
    # at the cap, per event).
    seen: bytearray = field(default_factory=bytearray)
    duplicates: int = 0
    segment: str | None = None
    last_event_ms: int = 0  # event time of the newest change applied (for inactivity expiry)
    expiry_timer_ms: int = 0  # the inactivity timer registered last (0: none)
    positives: int = 0
    negatives: int = 0
    expired: int = 0


# -- state in Flink: a compact, versioned encoding ----------------------------------------------

STATE_FORMAT = 3  # 3: + the feature set of the online weights; 2: + pending labels' shared_offset
# The feature list the online weights of states before format 3 (sessions <= 29) were learned on:
# the affinities as plain shares.
LEGACY_FEATURE_SET = feature_set_id((
    "kind_click", "kind_add_to_cart", "log_interactions", "log_orders", "order_rate",
    "log_hours_since_last", "category_share", "color_share", "price_band_share",
    "category_x_color", "log_price", "price_vs_usual_spend", "seen_product", "cold_start",
    "product_known"))


def encode_state(state: CustomerState) -> bytes:
    """``state`` as the bytes the job keeps in Flink state, written on every event.

    Pickling the dataclasses themselves cost ~70 us per event (dumps + loads, mostly class and
    numpy reconstruction) and ~1.7 KB; this flat tuple of builtins with the arrays as raw bytes
    pickles in C only. The first field is the format version, so a later layout can still read
    this one; the last is the feature set the online weights were learned on.

    >>> blob = encode_state(CustomerState(segment="casual", positives=2))
    >>> restored = decode_state(blob)
    >>> (restored.segment, restored.positives, encode_state(restored) == blob)
    ('casual', 2, True)
    """
    prof, online = state.profile, state.online
    return pickle.dumps((
        STATE_FORMAT,
        prof.n_interactions, prof.n_orders, prof.spend, prof.last_ts_ms, prof.decay_ts_ms,
        prof.category_aff, prof.color_aff, prof.band_aff, prof.aff_total,
        prof.history_ts.tobytes(), prof.history_pid.tobytes(), bytes(prof.history_kind),
        online.w.tobytes(), online.b, online.n_updates,
        None if online.precision_w is None else online.precision_w.tobytes(), online.precision_b,
        [p.pack() for p in state.pending],
        array("q", [v for o in state.recent_orders for v in o]).tobytes(),
        bytes(state.seen), state.duplicates, state.segment, state.last_event_ms,
        state.expiry_timer_ms, state.positives, state.negatives, state.expired, FEATURE_SET,
    ), protocol=pickle.HIGHEST_PROTOCOL)


def decode_state(blob: bytes | CustomerState) -> CustomerState:
    """The state :func:`encode_state` wrote, or a ``CustomerState`` pickled whole (as such, or
    already unpickled by Flink): the layout before format 1, so state from older checkpoints and
    savepoints still restores.

    Online weights learned on another feature set than the job computes (a state from before
    the affinities became smoothed log shares, or from a later feature list) are not applied to these
    features: the customer's residual starts again at zero, i.e. at the offline model. Their
    profile, history and pending labels stay; a pending label still teaches the new residual
    with the features it was served with (at most one label horizon of them per customer).
    """
    t = blob if isinstance(blob, CustomerState) else pickle.loads(blob)
    if isinstance(t, CustomerState):
        for part in (t, t.profile, t.online, *t.pending):
            _fill_defaults(part)
        t.seen = _legacy_seen(t.seen)
        return _with_weights_for(LEGACY_FEATURE_SET, t)
    if t[0] not in (1, 2, STATE_FORMAT):
        raise ValueError(f"customer state format {t[0]} is newer than this job reads ({STATE_FORMAT})")
    (_, n_int, n_ord, spend, last_ts, decay_ts, cat, col, band, aff_total, h_ts, h_pid, h_kind,
     w, b, n_upd, prec_w, prec_b, pending, orders, seen, dups, segment, last_event, expiry,
     pos, neg, expired) = t[:28]
    feature_set = t[28] if t[0] >= 3 else LEGACY_FEATURE_SET
    profile = CustomerProfile(n_int, n_ord, spend, last_ts, decay_ts, cat, col, band, aff_total,
                              array("q", h_ts), array("q", h_pid), bytearray(h_kind))
    online = OnlineResidual(np.frombuffer(w).copy(), b, n_upd,
                            None if prec_w is None else np.frombuffer(prec_w).copy(), prec_b)
    o = array("q", orders)
    return _with_weights_for(feature_set, CustomerState(
        profile=profile, online=online,
        # format 1 had no shared_offset: its default (0.0) is what those scores were served with
        pending=[PendingLabel(*p[:4], list(array("d", p[4])), *p[5:10],  # type: ignore[call-arg, misc]
                              packed=p if len(p) == 10 else None) for p in pending],
        recent_orders=[(o[i], o[i + 1]) for i in range(0, len(o), 2)],
        seen=bytearray(seen), duplicates=dups, segment=segment, last_event_ms=last_event,
        expiry_timer_ms=expiry, positives=pos, negatives=neg, expired=expired))


def _fill_defaults(obj: Any) -> None:
    """Give a dataclass object unpickled whole the defaults of the fields it was pickled without:
    pickle restores only the slots it stored, and fields were added since (a pending label's
    ``packed``, ``scaled`` and ``scaled_by``)."""
    for f in fields(obj):
        if not hasattr(obj, f.name):
            if f.default is not MISSING:
                setattr(obj, f.name, f.default)
            elif f.default_factory is not MISSING:
                setattr(obj, f.name, f.default_factory())
            else:
                raise ValueError(f"a stored {type(obj).__name__} has no {f.name!r}, and it has no default")


def _legacy_seen(seen: Any) -> bytearray:
    """A state pickled whole kept its de-duplication keys as an ``array("q")`` of change_key
    values, or (before that) as a dict of the changes' identities (:func:`_change_identity`)."""
    if isinstance(seen, dict):
        return bytearray(b"".join(_digest(identity) for identity in seen))
    return bytearray(seen)  # an array's buffer is its bytes


def _with_weights_for(feature_set: int, state: CustomerState) -> CustomerState:
    """``state``, its online residual reset if it was learned on another feature set."""
    if feature_set != FEATURE_SET:
        state.online = OnlineResidual.zeros(N_FEATURES)
    return state


@dataclass(frozen=True, slots=True)
class Applied:
    """One thing applied to a customer's state since it was last written, with what it was
    applied with: a change (the product as it was, the watermark) or, with ``change`` None, the
    timer at ``at_ms``; the shared drift corrections and the offline model then served."""

    change: ChangeEvent | None
    product: Product | None
    at_ms: int | None  # a change: the watermark it was applied under; a timer: its time
    drift: dict[str, float]
    model: OfflineModel


def reapply(logic: CustomerLogic, state: CustomerState | None, steps: Iterable[Applied]
            ) -> CustomerState | None:
    """``state`` (None: the customer has none) after ``steps`` are applied again, in order, as
    they were (same products, watermarks, drift corrections and model), their outputs discarded:
    how a job rebuilds a customer's state when a later change failed half-way. The logic is
    deterministic in these inputs, so the result equals the state before the failure.
    """
    serving = logic.drift, logic.model
    try:
        for step in steps:
            logic.drift, logic.model = step.drift, step.model
            if step.change is None:  # a timer: only a customer with a state has one
                if state is None:
                    continue
                out = logic.on_timer(state, step.at_ms or 0)
                current = state
            else:
                current = state if state is not None else CustomerState()
                out = logic.on_event(current, step.change, step.product, watermark_ms=step.at_ms)
            state = None if out.clear_state else current
    finally:
        logic.drift, logic.model = serving
    return state


@dataclass(frozen=True, slots=True)
class ScoringParams:
    label_horizon_ms: int = 120_000
    history_len: int = 20
    # Prior precisions of the online residual's weights and bias (see udfs.online).
    prior_precision: float = PRIOR_PRECISION_W
    prior_precision_bias: float = PRIOR_PRECISION_B
    # A customer with no change for this long (event time) is forgotten; 0: never.
    inactivity_ttl_ms: int = 0


# Inactivity timers are rounded up to the hour: a customer active all day registers a new timer
# at most once an hour instead of on every event (Flink keeps one timer per key and timestamp).
EXPIRY_GRANULARITY_MS = 3_600_000


@dataclass(slots=True)
class Outcome:
    """What one event produced: score records to emit, timers to register, labels learned."""

    records: list[dict[str, Any]] = field(default_factory=list)
    timers: list[int] = field(default_factory=list)
    learned: int = 0
    clear_state: bool = False
    duplicate: bool = False
    labels: list[dict[str, Any]] = field(default_factory=list)  # resolved examples, for the labels topic


def _change_identity(ev: ChangeEvent) -> str:
    """What makes two change events the same change. A row's creation (``c``, or ``r`` when a
    snapshot reads it) is identified by table and primary key alone, so a snapshot re-reading
    rows already seen live is recognised too; updates and deletes also by their LSN."""
    return f"{ev.table}:{ev.row.get('id')}" if ev.op in ("c", "r") else ev.event_id


_NATIVE_LITTLE_ENDIAN = sys.byteorder == "little"


def _digest(identity: str) -> bytes:
    d = hashlib.blake2b(identity.encode(), digest_size=KEY_BYTES).digest()
    return d if _NATIVE_LITTLE_ENDIAN else d[::-1]


def change_digest(ev: ChangeEvent) -> bytes:
    """:func:`change_key` as the 8 bytes a customer's state keeps it in (a native signed 64-bit
    integer, as ``array("q")`` stores it).

    >>> ev = ChangeEvent("orders", "c", {"id": 7}, None, "orders:7:1", 0, 0, False, 1)
    >>> change_digest(ev) == array("q", [change_key(ev)]).tobytes()
    True
    """
    return _digest(_change_identity(ev))


def change_key(ev: ChangeEvent) -> int:
    """What makes two change events the same change (:func:`_change_identity`), as a stable
    signed 64-bit hash. (Python's hash() is salted per process and would not survive a restore
    from a checkpoint.)"""
    return int.from_bytes(change_digest(ev), sys.byteorder, signed=True)


def _seen_before(seen: bytearray, digest: bytes) -> bool:
    """Whether ``digest`` is one of the keys in ``seen``."""
    i = seen.find(digest)
    while i >= 0 and i % KEY_BYTES:  # a match across two keys' bytes is no key
        i = seen.find(digest, i + 1)
    return i >= 0


class CustomerLogic:
    """The per-customer logic with the models it serves.

    ``model`` is the personalised propensity model; ``cold_model`` (optional) replaces it for
    customers in their cold start when training found it better there (its manifest says so);
    ``anomaly_model`` (optional) scores orders. ``drift`` holds the newest shared correction of
    each segment (:mod:`udfs.drift`), added to the offline logit under the customer's residual.
    """

    def __init__(self, model: OfflineModel, params: ScoringParams,
                 cold_model: OfflineModel | None = None,
                 anomaly_model: OrderAnomalyModel | None = None):
        self.model = model
        self.params = params
        self.cold_model = cold_model if cold_model is not None and cold_model.serves_cold_start else None
        self.anomaly_model = anomaly_model
        self.drift: dict[str, float] = {}

    @classmethod
    def for_serving(cls, model_dir: str, model_name: str, pinned_version: int, anomaly_name: str,
                    params: ScoringParams, warn: Any = None) -> CustomerLogic:
        """The logic with the models a job serves: the propensity model (pinned, else the newest
        version that verifies; required) and, if trained, its cold-start variant and the order
        anomaly model (newest verified versions)."""
        return cls(OfflineModel.load_for_serving(model_dir, model_name, pinned_version, warn=warn),
                   params,
                   cold_model=OfflineModel.load_optional(model_dir, cold_start_name(model_name), warn),
                   anomaly_model=OrderAnomalyModel.load_optional(model_dir, anomaly_name, warn))

    def propensity_model(self, profile: CustomerProfile) -> tuple[OfflineModel, str]:
        """Which offline model scores this customer now, and why."""
        if self.cold_model is not None and profile.n_interactions < COLD_START_INTERACTIONS:
            return self.cold_model, "cold_start"
        return self.model, "personalised"

    # -- events -------------------------------------------------------------------------------

    def on_event(
        self, state: CustomerState, ev: ChangeEvent, product: Product | None,
        now_ms: int | None = None, watermark_ms: int | None = None,
    ) -> Outcome:
        key = change_digest(ev)
        if _seen_before(state.seen, key):
            state.duplicates += 1
            return Outcome(duplicate=True)
        state.seen += key
        if len(state.seen) > KEY_BYTES * MAX_SEEN_CHANGES:
            del state.seen[:KEY_BYTES]
        if watermark_ms is not None and state.recent_orders:
            state.recent_orders = [(q, t) for q, t in state.recent_orders if t >= watermark_ms]
        if ev.table == "interactions":
            out = self.on_interaction(state, ev, product, now_ms)
        elif ev.table == "orders":
            out = self.on_order(state, ev, product, now_ms)
        elif ev.table == "customers":
            out = self.on_customer(state, ev)
        else:
            raise ValueError(f"event of table {ev.table!r} is not customer-keyed")
        self._schedule_expiry(state, ev.event_ts_ms, out)
        return out

    def _schedule_expiry(self, state: CustomerState, event_ts_ms: int, out: Outcome) -> None:
        """Keep an event-time timer at (newest change + inactivity TTL), rounded up to the hour.

        Event time, not Flink's processing-time state TTL: a replay expires exactly the same
        customers, and it works in PyFlink's thread mode, where state TTL cannot be configured.
        """
        ttl = self.params.inactivity_ttl_ms
        state.last_event_ms = max(state.last_event_ms, event_ts_ms)
        if ttl <= 0 or out.clear_state:
            return
        due = -(-(state.last_event_ms + ttl) // EXPIRY_GRANULARITY_MS) * EXPIRY_GRANULARITY_MS
        if due != state.expiry_timer_ms:
            state.expiry_timer_ms = due
            out.timers.append(due)

    def on_interaction(
        self, state: CustomerState, ev: ChangeEvent, product: Product | None,
        now_ms: int | None = None,
    ) -> Outcome:
        out = Outcome()
        row = ev.row
        if ev.op == "d":
            # The interaction was retracted: never learn from it.
            iid = int(row["id"])
            state.pending = [p for p in state.pending if p.interaction_id != iid]
            return out
        if ev.op == "u":
            return out  # a correction of an already scored interaction: scored once, at creation
        kind = str(row["kind"])
        ts = ev.event_ts_ms
        x = interaction_features(state.profile, product, kind, ts)
        model, selected = self.propensity_model(state.profile)
        if model is self.model:  # the residual learns on the personalised model's scale
            offline_logit, xs = model.logit_and_scaled(x)
        else:
            offline_logit, xs = model.logit_one(x), self.model.standardize(x)
        shared = self.drift.get(segment_key(state.segment), 0.0)
        p_online = state.online.predict_proba_one(xs, offline_logit + shared)
        history_len = len(state.profile.history_ts)  # what the score was computed from
        cold = state.profile.n_interactions < COLD_START_INTERACTIONS
        state.profile.observe_interaction(product, kind, ts, self.params.history_len)
        out.records.append({
            "kind": "interaction",
            "event_id": ev.event_id,
            "interaction_id": int(row["id"]),
            "customer_id": ev.customer_id,
            "product_id": int(row["product_id"]),
            "interaction_kind": kind,
            "event_ts": ts,
            "commit_ts": ev.commit_ts_ms,
            "scored_at": now_ms if now_ms is not None else int(time.time() * 1000),
            "p_offline": round(sigmoid(offline_logit), 6),
            "p_online": round(p_online, 6),
            "model": model.ref,
            "selected": selected,
            "drift_offset": shared,
            "online_updates": state.online.n_updates,
            "history_len": history_len,
            "snapshot": ev.snapshot,
            "cold_start": cold,
            "product_known": product is not None,
        })
        pending = PendingLabel(int(row["id"]), int(ev.customer_id or 0), int(row["product_id"]), ts, x,
                               offline_logit, model.name, model.version, p_online, shared,
                               scaled=xs, scaled_by=self.model)
        horizon = self.params.label_horizon_ms
        if any(pid == pending.product_id and ts <= t_o <= ts + horizon
               for pid, t_o in state.recent_orders):
            self._learn(state, pending, 1, out)  # its order arrived first; the score came first
        else:
            state.pending.append(pending)
            if len(state.pending) > MAX_PENDING:
                state.pending.pop(0)
                state.expired += 1
            out.timers.append(ts + horizon)
        return out

    def on_order(self, state: CustomerState, ev: ChangeEvent, product: Product | None,
                 now_ms: int | None = None) -> Outcome:
        out = Outcome()
        if ev.op not in ("c", "r"):
            return out  # status changes and deletions do not change what was learned
        row = ev.row
        pid, ts = int(row["product_id"]), ev.event_ts_ms
        amount, quantity = float(row["amount"]), int(row.get("quantity") or 1)
        out.records.append(self._order_record(state, ev, product, quantity, amount, now_ms))
        state.profile.observe_order(product, pid, amount, ts, self.params.history_len)
        horizon = self.params.label_horizon_ms
        hits: list[PendingLabel] = []
        still_pending: list[PendingLabel] = []
        for p in state.pending:
            (hits if p.product_id == pid and p.ts_ms <= ts <= p.ts_ms + horizon else still_pending).append(p)
        if hits:
            state.pending = still_pending
            for p in sorted(hits, key=lambda p: p.ts_ms):
                self._learn(state, p, 1, out)
        state.recent_orders.append((pid, ts))
        if len(state.recent_orders) > MAX_RECENT_ORDERS:
            state.recent_orders.sort(key=lambda o: o[1])
            del state.recent_orders[:-MAX_RECENT_ORDERS]
        return out

    def _order_record(self, state: CustomerState, ev: ChangeEvent, product: Product | None,
                      quantity: int, amount: float, now_ms: int | None) -> dict[str, Any]:
        """The order's score record: its anomaly score against this customer's own history."""
        record: dict[str, Any] = {
            "kind": "order",
            "event_id": ev.event_id,
            "order_id": int(ev.row["id"]),
            "customer_id": ev.customer_id,
            "product_id": int(ev.row["product_id"]),
            "quantity": quantity,
            "amount": amount,
            "event_ts": ev.event_ts_ms,
            "commit_ts": ev.commit_ts_ms,
            "scored_at": now_ms if now_ms is not None else int(time.time() * 1000),
            "anomaly_score": None,
            "anomalous": None,
            "model": None,
            "history_len": len(state.profile.history_ts),
            "snapshot": ev.snapshot,
            "product_known": product is not None,
        }
        if self.anomaly_model is not None:
            x = order_features(state.profile, product, quantity, amount, ev.event_ts_ms,
                               product_id=int(ev.row["product_id"]))
            score = self.anomaly_model.anomaly_score_one(x)
            record["anomaly_score"] = round(score, 6)
            record["anomalous"] = self.anomaly_model.is_anomaly(score)
            record["model"] = self.anomaly_model.ref
        return record

    def on_customer(self, state: CustomerState, ev: ChangeEvent) -> Outcome:
        if ev.op == "d":
            return Outcome(clear_state=True)  # the customer is gone: forget everything about them
        state.segment = str(ev.row.get("segment"))
        return Outcome()

    def on_timer(self, state: CustomerState, timestamp_ms: int) -> Outcome:
        """The horizon passed for pending interactions up to ``timestamp_ms``: negatives. Past
        the inactivity TTL the customer is forgotten (after those labels are learned and sent)."""
        out = Outcome()
        horizon = self.params.label_horizon_ms
        due = [p for p in state.pending if p.ts_ms + horizon <= timestamp_ms]
        if due:
            state.pending = [p for p in state.pending if p.ts_ms + horizon > timestamp_ms]
            for p in due:
                self._learn(state, p, 0, out)
        ttl = self.params.inactivity_ttl_ms
        if ttl > 0 and timestamp_ms >= state.last_event_ms + ttl:
            out.clear_state = True
        return out

    def _learn(self, state: CustomerState, p: PendingLabel, y: int, out: Outcome) -> None:
        xs = p.scaled
        if xs is None or p.scaled_by is not self.model:
            xs = self.model.standardize(p.x)
        p_before = state.online.learn_one(xs,
                                          p.offline_logit + p.shared_offset, y,
                                          self.params.prior_precision, self.params.prior_precision_bias)
        if y:
            state.positives += 1
        else:
            state.negatives += 1
        out.learned += 1
        out.labels.append({
            "kind": "label",
            "event_id": f"label:interactions:{p.interaction_id}",
            "interaction_id": p.interaction_id,
            "customer_id": p.customer_id,
            "product_id": p.product_id,
            "event_ts": p.ts_ms,
            "label": y,
            "offline_logit": round(p.offline_logit, 6),
            "segment": segment_key(state.segment),  # whose shared drift correction it teaches
            "drift_offset": p.shared_offset,
            "p_online": round(p.p_online, 6),  # served when the interaction was scored
            "p_online_before": round(p_before, 6),  # what the online model said just before learning
            "online_updates": state.online.n_updates,  # after this step
            "features": p.x,  # exactly as served (rounding 15 floats cost ~15 us per label)
            "model": {"name": p.model_name, "version": p.model_version},
        })
