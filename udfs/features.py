"""Customer features, computed the same way offline (replaying history) and online (keyed state).

A :class:`CustomerProfile` is what the job keeps per customer: counts, spend, recency, affinities
to categories / colors / price bands (decayed with a half-life of event time) and the bounded
warm-up history. :func:`interaction_features` joins it with the product's current attributes into
the model's feature vector. Features are computed *before* the event updates the profile, so an
example never sees itself.

>>> p = CustomerProfile()
>>> shoes = Product(1, "shoes", "red", 80.0)
>>> x0 = interaction_features(p, shoes, "view", 1_000_000)
>>> x0[FEATURE_NAMES.index("cold_start")], round(math.exp(x0[FEATURE_NAMES.index("log_category_affinity")]), 3)
(1.0, 0.125)
>>> p.observe_interaction(shoes, "click", 1_000_000, history_len=20)
>>> x1 = interaction_features(p, shoes, "view", 1_060_000)
>>> round(math.exp(x1[FEATURE_NAMES.index("log_category_affinity")]), 3)  # (2 + 4/8) / (2 + 4)
0.417
>>> x1[FEATURE_NAMES.index("seen_product")] > 0
True
"""

from __future__ import annotations

import functools
import math
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

HALF_LIFE_MS = 14 * 24 * 3600 * 1000  # affinities halve every two weeks of event time
KIND_WEIGHT = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0}
ORDER_WEIGHT = 8.0
COLD_START_INTERACTIONS = 3
# An affinity enters the model as the log of the customer's *smoothed* share of a value: their
# decayed weight on it plus PRIOR_SHARE of PRIOR_WEIGHT, over their total plus PRIOR_WEIGHT (the
# posterior mean under a Dirichlet prior). A few looks are weak evidence of a taste, dozens strong,
# and a value never looked at stays finite. The log: each step up from "never" counts more than
# one from "mostly" to "only". On validation seeds 101-105, for warm customers: +0.004 ROC-AUC
# offline and +0.006 with online learning over log(share + 0.05) (session 31), which had beaten
# the plain shares by +0.007 (session 30); prior shares 1/16-1/4 measured within 0.0005.
PRIOR_SHARE = 0.125  # as if eight values were equally likely; the result barely depends on it
PRIOR_WEIGHT = 4.0  # as much as four views
# What a history entry can be, stored as its index here (one byte).
HISTORY_KINDS = ("view", "click", "add_to_cart", "order")
_KIND_CODE = {kind: code for code, kind in enumerate(HISTORY_KINDS)}
ORDER_CODE = _KIND_CODE["order"]

FEATURE_NAMES: tuple[str, ...] = (
    "kind_click",
    "kind_add_to_cart",
    "log_interactions",
    "log_orders",
    "order_rate",
    "log_hours_since_last",
    "log_category_affinity",
    "log_color_affinity",
    "log_price_band_affinity",
    "category_x_color_affinity",
    "log_price",
    "price_vs_usual_spend",
    "seen_product",
    "cold_start",
    "product_known",
)
N_FEATURES = len(FEATURE_NAMES)


def feature_set_id(names: Sequence[str]) -> int:
    """A stable id of a feature list (CRC-32 of its names, in order). A feature whose meaning
    changes gets a new name (as ``log_category_affinity`` replaced ``log_category_share``), so a
    different id means weights learned on one list do not apply to the other; the job's state
    records the id its online weights were learned on.

    >>> feature_set_id(["a", "b"]) == feature_set_id(["a", "b"]) != feature_set_id(["b", "a"])
    True
    """
    return zlib.crc32("\n".join(names).encode())


FEATURE_SET = feature_set_id(FEATURE_NAMES)


@functools.lru_cache(maxsize=4096)
def price_band(price: float) -> int:
    """The log2 price band of ``price``: <20, 20-40, 40-80, ... capped at 7. Asked twice per
    interaction for a catalogue of a few thousand prices: cached, it costs a third as much.

    >>> [price_band(p) for p in (5.0, 19.99, 20.0, 79.0, 80.0, 1e6)]
    [0, 0, 1, 2, 3, 7]
    """
    return max(0, min(7, int(math.log2(max(price, 1.0) / 10.0))))


@dataclass(slots=True)
class Product:
    product_id: int
    category: str
    color: str
    price: float

    @property
    def price_band(self) -> int:
        """Log2 price bands: <20, 20-40, 40-80, ... capped at 7."""
        return price_band(self.price)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Product:
        return cls(int(row["id"]), str(row["category"]), str(row["color"]), float(row["price"]))


@dataclass(slots=True)
class CustomerProfile:
    n_interactions: int = 0
    n_orders: int = 0
    spend: float = 0.0
    last_ts_ms: int | None = None
    decay_ts_ms: int | None = None
    category_aff: dict[str, float] = field(default_factory=dict)
    color_aff: dict[str, float] = field(default_factory=dict)
    band_aff: dict[int, float] = field(default_factory=dict)
    aff_total: float = 0.0
    # Bounded warm-up history of the most recent events, oldest first, in three columns: event
    # time, product id (-1: unknown) and kind (index into HISTORY_KINDS). Kept the way state
    # stores it, so writing a customer's state after every event copies bytes (building them
    # from (ts, product, kind) tuples was a third of that write).
    history_ts: array = field(default_factory=lambda: array("q"))
    history_pid: array = field(default_factory=lambda: array("q"))
    history_kind: bytearray = field(default_factory=bytearray)

    @property
    def history(self) -> list[tuple[int, int, str]]:
        """The history as (ts_ms, product_id, kind), oldest first."""
        return [(t, p, HISTORY_KINDS[k])
                for t, p, k in zip(self.history_ts, self.history_pid, self.history_kind, strict=True)]

    def _decay_to(self, ts_ms: int) -> None:
        if self.decay_ts_ms is None or ts_ms <= self.decay_ts_ms:
            self.decay_ts_ms = ts_ms if self.decay_ts_ms is None else self.decay_ts_ms
            return
        f = 0.5 ** ((ts_ms - self.decay_ts_ms) / HALF_LIFE_MS)
        for aff in (self.category_aff, self.color_aff, self.band_aff):
            for k in aff:
                aff[k] *= f  # type: ignore[index]
        self.aff_total *= f
        self.decay_ts_ms = ts_ms

    def _add_affinity(self, product: Product, weight: float, ts_ms: int) -> None:
        self._decay_to(ts_ms)
        self.category_aff[product.category] = self.category_aff.get(product.category, 0.0) + weight
        self.color_aff[product.color] = self.color_aff.get(product.color, 0.0) + weight
        band = product.price_band
        self.band_aff[band] = self.band_aff.get(band, 0.0) + weight
        self.aff_total += weight

    def _remember(self, ts_ms: int, product_id: int, kind: str, history_len: int) -> None:
        self.history_ts.append(ts_ms)
        self.history_pid.append(product_id)
        self.history_kind.append(_KIND_CODE[kind])
        extra = len(self.history_ts) - history_len
        if extra > 0:
            del self.history_ts[:extra], self.history_pid[:extra], self.history_kind[:extra]
        self.last_ts_ms = ts_ms if self.last_ts_ms is None else max(self.last_ts_ms, ts_ms)

    def observe_interaction(
        self, product: Product | None, kind: str, ts_ms: int, history_len: int
    ) -> None:
        self.n_interactions += 1
        if product is not None:
            self._add_affinity(product, KIND_WEIGHT.get(kind, 1.0), ts_ms)
        self._remember(ts_ms, product.product_id if product else -1, kind, history_len)

    def observe_order(
        self, product: Product | None, product_id: int, amount: float, ts_ms: int, history_len: int
    ) -> None:
        self.n_orders += 1
        self.spend += amount
        if product is not None:
            self._add_affinity(product, ORDER_WEIGHT, ts_ms)
        self._remember(ts_ms, product_id, "order", history_len)


def _smoothed_share(aff: dict[Any, float], key: Any, total: float, decay: float) -> float:
    return (aff.get(key, 0.0) * decay + PRIOR_WEIGHT * PRIOR_SHARE) / (total * decay + PRIOR_WEIGHT)


def interaction_features(
    profile: CustomerProfile, product: Product | None, kind: str, ts_ms: int
) -> list[float]:
    """The model's feature vector for this customer looking at this product now (FEATURE_NAMES)."""
    n_i, n_o = profile.n_interactions, profile.n_orders
    hours = 0.0
    if profile.last_ts_ms is not None:
        hours = max(0.0, (ts_ms - profile.last_ts_ms) / 3_600_000)
    # The weights decayed to now, against the prior's constant weight (the profile itself is
    # only decayed when it changes).
    total = profile.aff_total
    decay = 1.0
    if profile.decay_ts_ms is not None and ts_ms > profile.decay_ts_ms:
        decay = 0.5 ** ((ts_ms - profile.decay_ts_ms) / HALF_LIFE_MS)
    if product is not None:
        cat = _smoothed_share(profile.category_aff, product.category, total, decay)
        col = _smoothed_share(profile.color_aff, product.color, total, decay)
        band = _smoothed_share(profile.band_aff, product.price_band, total, decay)
        log_price = math.log1p(product.price)
        usual = profile.spend / n_o if n_o else 0.0
        vs_spend = math.log((product.price + 1.0) / (usual + 1.0)) if n_o else 0.0
        seen = profile.history_pid.count(product.product_id)
    else:  # an unknown product: as if of a value the customer never looked at
        cat = col = band = _smoothed_share({}, None, total, decay)
        log_price = vs_spend = 0.0
        seen = 0
    # The cross is the product of the shares: a log of it would only repeat the sum of the logs.
    return [
        1.0 if kind == "click" else 0.0,
        1.0 if kind == "add_to_cart" else 0.0,
        math.log1p(n_i),
        math.log1p(n_o),
        n_o / (n_i + 1.0),
        math.log1p(hours),
        math.log(cat),
        math.log(col),
        math.log(band),
        cat * col,
        log_price,
        vs_spend,
        math.log1p(seen),
        1.0 if n_i < COLD_START_INTERACTIONS else 0.0,
        1.0 if product is not None else 0.0,
    ]
