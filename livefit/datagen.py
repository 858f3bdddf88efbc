"""Seeded, deterministic shop data: history for training and warm-up, then live traffic.

Customers have latent tastes for categories, colors and a price level, which drift over time;
products have a category, a color and a price. Each customer's propensity to buy drifts on its
own, and a whole segment drifts together too (budget shoppers buy less as the season goes on,
premium ones more): the shared drift no single customer's labels reveal quickly. Customers browse in sessions (view / click /
add_to_cart), mostly what they like, and buy with a probability that depends on the fit between
their taste and the product, their own buying propensity, and how engaged the interaction was.
Purchases follow the interaction after a short delay, as in a real shop. Everything is drawn from
one ``numpy`` generator seeded by ``data.seed``; timestamps are relative to an anchor time.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from livefit.config import DataConfig

CATEGORIES = ("dresses", "skirts", "trousers", "shirts", "shoes", "bags", "jackets", "accessories")
BASE_PRICE = (70.0, 45.0, 60.0, 35.0, 90.0, 120.0, 150.0, 25.0)
COLORS = ("black", "white", "red", "blue", "green", "beige", "pink", "grey")
SEGMENTS = ("budget", "regular", "premium")
SEGMENT_TREND = (-1.0, 0.0, 1.0)  # direction of each segment's shared drift (see DataConfig)
REGIONS = ("north", "south", "east", "west")
KINDS = ("view", "click", "add_to_cart")
KIND_EFFECT = np.array([0.0, 0.8, 2.0])
MEAN_PURCHASE_DELAY_S = 25.0  # history; live traffic uses LIVE_PURCHASE_DELAY_S
LIVE_PURCHASE_DELAY_S = 6.0
BASE_PURCHASE_LOGIT = -3.6
TASTE_CONCENTRATION = 0.4  # Dirichlet over categories and over colors: most people like a few
PRICE_PREF_SD = 0.3  # spread of the preferred log price around the segment's (price_pref_mean)
PRICE_SENS_RANGE = (0.3, 1.5)  # how much a price away from the preferred one puts people off
BIAS_SD = 0.8  # spread of the customers' personal propensity to buy at the start of history (logit)
BIAS_DRIFT_SD = 1.0  # spread of where it drifts to (reached at 2x the history window: bias_at)


def price_pref_mean(segment: int) -> float:
    """The preferred log price of a segment's customers (``SEGMENTS`` index), on average."""
    return math.log(40.0) + 0.5 * segment


def taste_drift_share(frac: float) -> float:
    """How far tastes and propensity have drifted from where they started, at ``frac`` of the
    history window (half way at its end)."""
    return min(max(frac, 0.0), 1.5) * 0.5


def category_draw(taste: Any) -> Any:
    """How much a product's category draws a customer with ``taste`` for it to look at it
    (relative; times :func:`color_draw`, as :meth:`Shopper.pick_product` weighs products)."""
    return 0.7 * taste + 0.3 / 8


def color_draw(taste: Any) -> Any:
    return 0.6 * taste + 0.4 / 8


def purchase_fit(taste_cat: Any, taste_col: Any, price_sens: Any, log_price: Any, price_pref: Any,
                 log: Callable[[Any], Any] = math.log) -> Any:
    """How well a product fits a customer (``PurchaseTruth.fit``): their taste for its category
    and color, less their price sensitivity times its distance from their preferred log price.
    Floats (``math.log``) or numpy arrays of many customers' draws (``np.log``)."""
    return (1.3 * log(taste_cat * 8 + 0.05) + 0.9 * log(taste_col * 8 + 0.05)
            - price_sens * abs(log_price - price_pref))


def kind_logits(fit: Any) -> tuple[Any, Any, Any]:
    """The logits of what a customer does with a product (``KINDS``: view, click, add to cart):
    the better it fits, the more they engage."""
    return (0.0 * fit, -1.0 + 0.4 * fit, -2.2 + 0.6 * fit)


class PersonalPrior(NamedTuple):
    """A customer's personal propensity over the history window, as the generator draws it:
    ``start + frac * slope``, each part Gaussian (mean, standard deviation)."""

    start_mean: float
    start_sd: float
    slope_mean: float
    slope_sd: float


def personal_prior(segment: int, segment_drift: float) -> PersonalPrior:
    """How the personal propensity (``PurchaseTruth.personal``) of a customer of ``segment``
    (``SEGMENTS`` index) is drawn, before any of their purchases is seen: over the history window
    (``frac`` in [0, 1]) it is ``start + frac * slope`` (``World.bias_at`` plus
    ``World.segment_shift_at``), with ``start`` ~ N(0, BIAS_SD^2) and ``slope`` ~ N(segment trend
    * segment_drift, (BIAS_DRIFT_SD / 2)^2)."""
    return PersonalPrior(0.0, BIAS_SD, SEGMENT_TREND[segment] * segment_drift, BIAS_DRIFT_SD / 2)


@dataclass
class World:
    products: list[dict[str, Any]]
    customers: list[dict[str, Any]]
    taste_cat: np.ndarray  # (customers, categories), rows sum to 1, at the start of history
    taste_cat_late: np.ndarray  # where tastes drift to
    taste_col: np.ndarray
    price_pref: np.ndarray  # preferred log price
    price_sens: np.ndarray
    bias: np.ndarray  # personal propensity to buy, at the start of history
    bias_late: np.ndarray  # where it drifts to (people's circumstances change)
    kind_sens: np.ndarray  # how much engagement (click, cart) predicts a purchase for this person
    start: datetime
    end: datetime
    segment_drift: float = 0.0  # logit shift of a segment's propensity over the history window

    def segment_shift_at(self, c: int, frac: float) -> float:
        trend = SEGMENT_TREND[SEGMENTS.index(self.customers[c]["segment"])]
        return trend * self.segment_drift * min(max(frac, 0.0), 1.5)

    def taste_at(self, c: int, frac: float) -> np.ndarray:
        f = taste_drift_share(frac)
        return (1 - f) * self.taste_cat[c] + f * self.taste_cat_late[c]

    def bias_at(self, c: int, frac: float) -> float:
        f = taste_drift_share(frac)
        return float((1 - f) * self.bias[c] + f * self.bias_late[c])

    def add_customer(self, rng: np.random.Generator, created_at: datetime) -> int:
        c = len(self.customers)
        tc, tl, tcol = (rng.dirichlet([TASTE_CONCENTRATION] * 8) for _ in range(3))
        seg = int(rng.integers(0, 3))
        self.customers.append({
            "id": c + 1, "name": f"customer-{c + 1}", "segment": SEGMENTS[seg],
            "region": REGIONS[int(rng.integers(0, 4))], "created_at": created_at,
        })
        self.taste_cat = np.vstack([self.taste_cat, tc])
        self.taste_cat_late = np.vstack([self.taste_cat_late, tl])
        self.taste_col = np.vstack([self.taste_col, tcol])
        self.price_pref = np.append(self.price_pref, price_pref_mean(seg) + rng.normal(0, PRICE_PREF_SD))
        self.price_sens = np.append(self.price_sens, rng.uniform(*PRICE_SENS_RANGE))
        self.bias = np.append(self.bias, rng.normal(0, BIAS_SD))
        self.bias_late = np.append(self.bias_late, self.bias[-1] + rng.normal(0, BIAS_DRIFT_SD))
        self.kind_sens = np.append(self.kind_sens, rng.lognormal(0.0, 0.5))
        return c


def build_world(cfg: DataConfig, end: datetime) -> World:
    rng = np.random.default_rng(cfg.seed)
    start = end - timedelta(days=cfg.history_days)
    products = []
    for i in range(cfg.products):
        cat = int(rng.integers(0, len(CATEGORIES)))
        col = int(rng.integers(0, len(COLORS)))
        price = round(float(BASE_PRICE[cat] * math.exp(rng.normal(0, 0.5))), 2)
        products.append({"id": i + 1, "name": f"{COLORS[col]} {CATEGORIES[cat]} #{i + 1}",
                         "category": CATEGORIES[cat], "color": COLORS[col], "price": price,
                         "created_at": start - timedelta(days=30)})
    world = World(products, [], np.zeros((0, 8)), np.zeros((0, 8)), np.zeros((0, 8)),
                  np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), start, end,
                  cfg.segment_drift)
    span = (end - start).total_seconds()
    for _ in range(cfg.customers):
        if rng.random() < cfg.new_customers_share:
            created = end - timedelta(seconds=float(rng.uniform(0, 7 * 86400)))
        else:
            created = start + timedelta(seconds=float(rng.uniform(0, 0.7 * span)))
        world.add_customer(rng, created)
    return world


class PurchaseTruth(NamedTuple):
    """The generator's purchase logit of one interaction, by part: what no model can beat."""

    personal: float  # the customer's own propensity to buy now, their segment's drift included
    fit: float  # how well the product fits their tastes and price level
    engagement: float  # how much this kind of interaction (view/click/cart) says, for this person

    @property
    def logit(self) -> float:
        return BASE_PURCHASE_LOGIT + self.personal + self.fit + self.engagement


class Shopper:
    """Draws what a customer looks at and whether they buy it."""

    def __init__(self, world: World, rng: np.random.Generator):
        self.world = world
        self.rng = rng
        self.cat_idx = np.array([CATEGORIES.index(p["category"]) for p in world.products])
        self.col_idx = np.array([COLORS.index(p["color"]) for p in world.products])

    def log_prices(self) -> np.ndarray:
        return np.log(np.array([p["price"] for p in self.world.products]))

    def pick_product(self, c: int, frac: float) -> int:
        w = self.world
        tc = w.taste_at(c, frac)
        weights = category_draw(tc[self.cat_idx]) * color_draw(w.taste_col[c][self.col_idx])
        return int(self.rng.choice(len(w.products), p=weights / weights.sum()))

    def interact(self, c: int, p: int, frac: float, log_price: float) -> tuple[str, bool]:
        kind, buys, _truth = self.interact_with_truth(c, p, frac, log_price)
        return kind, buys

    def interact_with_truth(self, c: int, p: int, frac: float,
                            log_price: float) -> tuple[str, bool, PurchaseTruth]:
        """What the customer does, whether they buy, and the purchase logit's parts it was drawn from."""
        w = self.world
        tc = w.taste_at(c, frac)
        fit = purchase_fit(tc[self.cat_idx[p]], w.taste_col[c][self.col_idx[p]], w.price_sens[c],
                           log_price, w.price_pref[c])
        logits = np.array(kind_logits(fit))
        kp = np.exp(logits - logits.max())
        k = int(self.rng.choice(3, p=kp / kp.sum()))
        truth = PurchaseTruth(w.bias_at(c, frac) + w.segment_shift_at(c, frac), fit,
                              float(w.kind_sens[c] * KIND_EFFECT[k]))
        return KINDS[k], bool(self.rng.random() < 1.0 / (1.0 + math.exp(-truth.logit))), truth


class History(NamedTuple):
    interactions: list[tuple]  # (created_at, customer_id, product_id, kind), by time
    orders: list[tuple]  # (created_at, customer_id, product_id, quantity, amount), by time
    anomalous_orders: set[tuple]  # the rows of ``orders`` that are not normal shopping (ground truth)
    purchase_truth: list[PurchaseTruth]  # of each row of ``interactions`` (ground truth)


def generate_history(world: World, cfg: DataConfig) -> History:
    """Interactions and orders of the history window, each sorted by time."""
    rng = np.random.default_rng(cfg.seed + 1)
    shop = Shopper(world, rng)
    log_price = shop.log_prices()
    span = (world.end - world.start).total_seconds()
    interactions: list[tuple] = []
    orders: list[tuple] = []
    for c, cust in enumerate(world.customers):
        active_from = max(world.start, cust["created_at"])
        active_s = (world.end - active_from).total_seconds()
        n_sessions = int(rng.poisson(cfg.sessions_per_customer * max(active_s / span, 0.05)))
        for _ in range(max(n_sessions, 1)):
            t = active_from + timedelta(seconds=float(rng.uniform(0, max(active_s - 600, 1))))
            if t.hour < 7 and rng.random() < 0.8 and t + timedelta(hours=9) < world.end:
                t += timedelta(hours=9)  # people shop mostly by day
            for _ in range(1 + int(rng.poisson(2.0))):
                frac = (t - world.start).total_seconds() / span
                p = shop.pick_product(c, frac)
                kind, buys, truth = shop.interact_with_truth(c, p, frac, float(log_price[p]))
                interactions.append((t, cust["id"], world.products[p]["id"], kind, truth))
                if buys:
                    delay = min(float(rng.exponential(MEAN_PURCHASE_DELAY_S)) + 2.0, 3600.0)
                    qty = 1 + int(rng.random() < 0.15)
                    orders.append((t + timedelta(seconds=delay), cust["id"], world.products[p]["id"],
                                   qty, round(world.products[p]["price"] * qty, 2)))
                t += timedelta(seconds=float(rng.uniform(5, 60)))
    anomalous = _anomalous_orders(world, cfg, len(orders))
    orders += anomalous
    interactions.sort(key=lambda r: r[0])
    orders.sort(key=lambda r: r[0])
    return History([r[:4] for r in interactions], orders, set(anomalous), [r[4] for r in interactions])


def _anomalous_orders(world: World, cfg: DataConfig, n_normal: int) -> list[tuple]:
    """Orders that are not normal shopping: bulk buys, underpaid amounts, buying blind at night.

    None follows an interaction with the product, most happen at night; drawn from their own
    generator so the normal history does not depend on how many there are.
    """
    rng = np.random.default_rng(cfg.seed + 2)
    out = []
    for _ in range(int(round(cfg.anomalous_orders_share * n_normal))):
        c = int(rng.integers(0, len(world.customers)))
        cust, prod = world.customers[c], world.products[int(rng.integers(0, len(world.products)))]
        active_from = max(world.start, cust["created_at"])
        t = active_from + timedelta(seconds=float(rng.uniform(0, max((world.end - active_from).total_seconds() - 600, 1))))
        if rng.random() < 0.5:
            t = t.replace(hour=int(rng.integers(0, 6)))
            t = min(max(t, world.start), world.end - timedelta(minutes=10))
        kind = int(rng.integers(0, 3))
        price = prod["price"]
        if kind == 0:  # bulk
            qty = int(rng.integers(4, 13))
            amount = price * qty
        elif kind == 1:  # paid far less than the price
            qty = 1 + int(rng.random() < 0.3)
            amount = price * qty * float(rng.uniform(0.3, 0.7))
        else:  # an expensive blind purchase
            qty = int(rng.integers(2, 6))
            amount = price * qty * float(rng.uniform(1.3, 2.5))
        out.append((t, cust["id"], prod["id"], qty, round(amount, 2)))
    return out


def _copy(conn: Any, table: str, columns: list[str], rows: list[tuple]) -> None:
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)


def anchor_now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def seed(dsn: str, cfg: DataConfig, end: datetime | None = None,
         say: Callable[[str], None] = print) -> dict[str, int]:
    """Write products, customers and the history window into an empty shop database."""
    import psycopg

    from livefit.sql import scalar

    end = end or anchor_now()
    world = build_world(cfg, end)
    interactions, orders, _, _ = generate_history(world, cfg)
    with psycopg.connect(dsn) as conn:
        existing = scalar(conn, "SELECT count(*) FROM customers")
        if existing:
            raise RuntimeError(f"the shop database already has {existing} customers; seed expects "
                               "an empty one (stop the stack and remove its run directory)")
        _copy(conn, "products", ["id", "name", "category", "color", "price", "created_at", "updated_at"],
              [(p["id"], p["name"], p["category"], p["color"], p["price"], p["created_at"],
                p["created_at"]) for p in world.products])
        _copy(conn, "customers", ["id", "name", "segment", "region", "created_at"],
              [(c["id"], c["name"], c["segment"], c["region"], c["created_at"])
               for c in world.customers])
        _copy(conn, "interactions", ["created_at", "customer_id", "product_id", "kind"], interactions)
        _copy(conn, "orders", ["created_at", "customer_id", "product_id", "quantity", "amount"], orders)
        conn.commit()
    summary = {"customers": len(world.customers), "products": len(world.products),
               "interactions": len(interactions), "orders": len(orders)}
    say(f"[seed] {summary} over {cfg.history_days} days ending {end.isoformat()} (seed {cfg.seed})")
    return summary


def traffic(
    dsn: str, cfg: DataConfig, rate: float, max_interactions: int | None = None,
    duration_s: float | None = None, should_stop: Callable[[], bool] = lambda: False,
    on_tick: Callable[[dict[str, int]], None] | None = None, seed_offset: int = 1000,
) -> dict[str, int]:
    """Write live interactions (and the orders that follow some of them) at ``rate`` per second.

    Uses the same world as the seeded history (same seed), so customers keep their tastes; adds
    new customers now and then and changes a product's price once in a while (CDC updates).
    """
    import psycopg

    from livefit.sql import scalar

    with psycopg.connect(dsn, autocommit=True) as conn:
        anchor = scalar(conn, "SELECT coalesce(max(created_at), now()) FROM interactions")
        world = build_world(cfg, anchor.astimezone(UTC).replace(second=0, microsecond=0))
        n_db = scalar(conn, "SELECT coalesce(max(id), 0) FROM customers")
        rng = np.random.default_rng(cfg.seed + seed_offset + int(n_db))
        while len(world.customers) < n_db:  # customers added by earlier traffic runs
            world.add_customer(rng, anchor)
        shop = Shopper(world, rng)
        log_price = shop.log_prices()
        span = (world.end - world.start).total_seconds()
        due_orders: list[tuple[float, int, int, int, float]] = []
        counts = {"interactions": 0, "orders": 0, "new_customers": 0, "price_changes": 0}
        t0 = time.monotonic()
        owed = 0.0
        tick = 0.05
        last = t0
        while not should_stop():
            now = time.monotonic()
            if duration_s is not None and now - t0 >= duration_s:
                break
            if max_interactions is not None and counts["interactions"] >= max_interactions and not due_orders:
                break
            owed += (now - last) * rate
            last = now
            batch_i: list[tuple[int, int, str]] = []
            batch_o: list[tuple[int, int, int, float]] = []
            while owed >= 1.0 and (max_interactions is None or counts["interactions"] + len(batch_i) < max_interactions):
                owed -= 1.0
                if rng.random() < 0.02:
                    c = world.add_customer(rng, datetime.now(UTC))
                    cust = world.customers[c]
                    conn.execute("INSERT INTO customers (id, name, segment, region) VALUES (%s, %s, %s, %s)",
                                 (cust["id"], cust["name"], cust["segment"], cust["region"]))
                    counts["new_customers"] += 1
                else:
                    c = int(rng.integers(0, len(world.customers)))
                frac = 1.0 + (time.time() - world.end.timestamp()) / span
                p = shop.pick_product(c, frac)
                kind, buys = shop.interact(c, p, frac, float(log_price[p]))
                batch_i.append((world.customers[c]["id"], world.products[p]["id"], kind))
                if buys:
                    qty = 1 + int(rng.random() < 0.15)
                    heapq.heappush(due_orders, (now + 1.0 + float(rng.exponential(LIVE_PURCHASE_DELAY_S)),
                                                world.customers[c]["id"], world.products[p]["id"], qty,
                                                round(world.products[p]["price"] * qty, 2)))
                if rng.random() < 0.005:
                    q = int(rng.integers(0, len(world.products)))
                    new_price = round(world.products[q]["price"] * float(rng.uniform(0.85, 1.15)), 2)
                    world.products[q]["price"] = new_price
                    log_price[q] = math.log(new_price)
                    conn.execute("UPDATE products SET price = %s, updated_at = now() WHERE id = %s",
                                 (new_price, world.products[q]["id"]))
                    counts["price_changes"] += 1
            while due_orders and due_orders[0][0] <= now:
                _, cid, pid, qty, amount = heapq.heappop(due_orders)
                batch_o.append((cid, pid, qty, amount))
            if batch_i or batch_o:
                with conn.transaction():
                    with conn.cursor() as cur:
                        if batch_i:
                            cur.executemany("INSERT INTO interactions (customer_id, product_id, kind) "
                                            "VALUES (%s, %s, %s)", batch_i)
                        if batch_o:
                            cur.executemany("INSERT INTO orders (customer_id, product_id, quantity, amount) "
                                            "VALUES (%s, %s, %s, %s)", batch_o)
                counts["interactions"] += len(batch_i)
                counts["orders"] += len(batch_o)
                if on_tick:
                    on_tick(counts)
            time.sleep(tick)
    return counts


