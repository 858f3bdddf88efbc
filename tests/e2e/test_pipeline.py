"""End to end on the real stack: PostgreSQL -> Debezium -> Tansu -> Flink -> livefit.scores."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from livefit.kafka_io import producer
from tests.e2e.conftest import job_failovers

pytestmark = pytest.mark.e2e

GARBAGE = [
    b"{not json",
    b"\xff\xfe\x00\x01 binary",
    b"[1, 2, 3]",
    b'{"after": {"id": 1}}',
    json.dumps({"op": "t", "before": None, "after": None,
                "source": {"table": "interactions", "lsn": 1, "ts_ms": 1}}).encode(),
]


def insert_interactions(conn: psycopg.Connection, rows: list[tuple[int, int, str]]) -> list[int]:
    ids = []
    for cid, pid, kind in rows:
        ids.append(conn.execute("INSERT INTO interactions (customer_id, product_id, kind) "
                                "VALUES (%s, %s, %s) RETURNING id", (cid, pid, kind)).fetchone()[0])
    return ids


def test_the_snapshot_is_applied_in_event_time_order(pipeline):
    """Debezium's initial snapshot reads the tables one after the other (every interaction, then
    every order). The job applies it in event-time order, as offline training replays the same
    history: each snapshot interaction's features, and each snapshot order's anomaly score, equal
    training's."""
    from udfs.replay import order_examples, replay
    from udfs.scoring import OrderAnomalyModel

    p, col = pipeline, pipeline.collector
    events, products = p.history
    cfg = p.cfg.job
    horizon_ms = int(cfg.label_horizon_s * 1000)
    offline = {ex.event.row_id: ex.x for ex in replay(events, products, cfg.history_len, horizon_ms,
                                                       max(e.ts_ms for e in events))}
    col.wait_for("the snapshot's labels",
                 lambda: {r["interaction_id"] for r in col.labels} >= set(offline),
                 timeout_s=240, job=p.job, log=p.job_log)
    job_features = {r["interaction_id"]: r["features"] for r in col.labels if r["interaction_id"] in offline}
    differ = sorted(i for i in offline if job_features[i] != offline[i])
    assert not differ, f"{len(differ)} of {len(offline)} snapshot interactions scored with other features " \
                       f"than training's, e.g. {differ[:5]}"

    model = OrderAnomalyModel.load_optional(cfg.model_dir, cfg.anomaly_model_name)
    assert model is not None
    expected = {e.row_id: round(model.anomaly_score_one(x), 6)
                for e, x in order_examples(events, products, cfg.history_len)}
    col.wait_for("the snapshot's order scores",
                 lambda: {r["order_id"] for r in col.orders} >= set(expected), timeout_s=60)
    scored = {r["order_id"]: r["anomaly_score"] for r in col.orders}
    differ = sorted(o for o in expected if scored[o] != expected[o])
    assert not differ, f"{len(differ)} of {len(expected)} snapshot orders got another anomaly score than " \
                       f"training's features give, e.g. {[(o, scored[o], expected[o]) for o in differ[:3]]}"
    print(f"\n[e2e] snapshot in event-time order: {len(offline)} interactions' features and "
          f"{len(expected)} orders' anomaly scores equal training's")


def test_every_interaction_is_scored_once_and_the_job_survives_bad_input(pipeline, score_validator):
    p, col = pipeline, pipeline.collector
    horizon_ms = int(p.cfg.job.label_horizon_s * 1000)

    # 1. History arrives as Debezium's snapshot (op r) and warms the state up.
    col.wait_for("the history snapshot to be scored",
                 lambda: {r["interaction_id"] for r in col.scores} >= p.seeded_interactions,
                 timeout_s=240, job=p.job, log=p.job_log)
    assert all(r["snapshot"] for r in col.scores)
    print(f"\n[e2e] snapshot: {len(p.seeded_interactions)} history interactions scored")

    with psycopg.connect(p.cfg.postgres.dsn, autocommit=True) as conn:
        buyers = [r[0] for r in conn.execute(
            "SELECT DISTINCT i.customer_id FROM interactions i JOIN orders o ON o.customer_id = i.customer_id "
            "AND o.product_id = i.product_id AND o.created_at >= i.created_at "
            "AND o.created_at <= i.created_at + make_interval(secs => %s) ORDER BY 1 LIMIT 5",
            (horizon_ms / 1000,))]
        assert buyers, "the seeded history should contain purchases"
        time.sleep(3)  # let the snapshot's orders (another topic) be processed too
        live = insert_interactions(conn, [(c, 1, "view") for c in buyers])

        # 2. Updates and deletes of every table, through the real CDC path.
        conn.execute("INSERT INTO customers (id, name, segment, region) VALUES (100001, 'new', 'regular', 'north')")
        conn.execute("INSERT INTO customers (id, name, segment, region) VALUES (100002, 'browser', 'budget', 'east')")
        conn.execute("INSERT INTO products (id, name, category, color, price) VALUES (1000, 'p', 'shoes', 'red', 99)")
        conn.execute("UPDATE products SET price = price * 2, updated_at = now() WHERE id = 2")
        conn.execute("DELETE FROM products WHERE id = 3")
        time.sleep(2)  # product changes travel on their own topic
        new_product, gone_product = insert_interactions(conn, [(buyers[0], 1000, "view"), (buyers[0], 3, "view")])
        first_new = insert_interactions(conn, [(100001, 1, "add_to_cart"), (100002, 7, "view")])
        conn.execute("INSERT INTO orders (customer_id, product_id, quantity, amount) VALUES (100001, 1, 1, 50)")
        updated, deleted = insert_interactions(conn, [(buyers[0], 4, "view"), (buyers[0], 5, "view")])
        conn.execute("UPDATE interactions SET kind = 'click' WHERE id = %s", (updated,))
        conn.execute("DELETE FROM interactions WHERE id = %s", (deleted,))
        conn.execute("UPDATE orders SET status = 'shipped' WHERE id = (SELECT min(id) FROM orders)")
        conn.execute("DELETE FROM customers WHERE id = %s", (buyers[-1],))
        # A row the database accepts but livefit must not learn from.
        conn.execute("INSERT INTO orders (customer_id, product_id, quantity, amount) VALUES (%s, 1, 1, -5)",
                     (buyers[0],))

        # 3. Garbage written straight to a CDC topic, then more live traffic behind it.
        prod = producer(p.cfg.kafka)
        for raw in GARBAGE:
            prod.produce(p.cfg.kafka.changes_topic, key=b"garbage", value=raw)
        assert prod.flush(10) == 0
        del prod
        after_garbage = insert_interactions(conn, [(c, 6, "click") for c in buyers] * 4)

        # 4. Customer 100001's order resolves their interaction as a positive at once; customer
        # 100002 never orders, so an event-time timer resolves a negative once the watermark
        # passes the horizon. Both show in the online_updates of their later scores.
        followups: dict[int, list[int]] = {100001: [], 100002: []}
        deadline = time.monotonic() + 120
        while True:
            col.poll()
            scored = col.by_interaction()
            learned = {c: any(scored.get(i, {}).get("online_updates", 0) >= 1 for i in ids)
                       for c, ids in followups.items()}
            if all(learned.values()):
                break
            assert time.monotonic() < deadline, f"online models never updated: {learned}"
            for c in followups:
                followups[c] += insert_interactions(conn, [(c, 2, "view")])
            time.sleep(2)

    expected = p.seeded_interactions | {*live, new_product, gone_product, *first_new, updated, deleted,
                                        *after_garbage, *followups[100001], *followups[100002]}
    col.wait_for("every live interaction to be scored",
                 lambda: {r["interaction_id"] for r in col.scores} >= expected,
                 timeout_s=120, job=p.job, log=p.job_log)
    col.wait_for("the dead letters", lambda: len(col.dead) >= len(GARBAGE) + 1, timeout_s=60)
    time.sleep(3)
    col.poll()

    # Exactly one score per interaction, after de-duplication by event_id.
    unique = {r["event_id"]: r for r in col.scores}
    by_interaction = {r["interaction_id"]: r for r in unique.values()}
    assert set(by_interaction) == expected
    assert len(unique) == len(expected), "an interaction was scored under two event ids"
    for r in unique.values():
        score_validator.validate(r)
    print(f"[e2e] {len(col.scores)} score records, {len(unique)} unique, "
          f"{len(col.scores) - len(unique)} duplicate deliveries, {len(expected)} interactions")

    # Every valid order gets one anomaly score record (kind "order") on the same topic.
    with psycopg.connect(p.cfg.postgres.dsn) as conn:
        valid_orders = {r[0] for r in conn.execute("SELECT id FROM orders WHERE amount >= 0")}
    col.wait_for("every order's anomaly score",
                 lambda: {r["order_id"] for r in col.orders} >= valid_orders, timeout_s=60)
    order_scores = {r["event_id"]: r for r in col.orders}
    assert {r["order_id"] for r in order_scores.values()} == valid_orders
    for r in order_scores.values():
        score_validator.validate(r)
        assert 0.0 < r["anomaly_score"] <= 1.0 and r["model"]["name"] == "order_anomaly"
    print(f"[e2e] {len(order_scores)} orders scored by the anomaly model, "
          f"{sum(r['anomalous'] for r in order_scores.values())} flagged")

    # Rolling quality, offline vs online, on the metrics topic.
    col.wait_for("a quality record on the metrics topic", lambda: bool(col.metrics), timeout_s=30)
    quality = col.metrics[-1]
    assert quality["kind"] == "quality" and set(quality["models"]) == {"offline", "online"}
    assert quality["models"]["online"]["labels"] >= p.cfg.job.metrics_every_labels
    print(f"[e2e] quality: {json.dumps(quality['models'])}")

    # Customers with purchases learn online.
    for iid in live[:-1] + [iid for iid in after_garbage if by_interaction[iid]["customer_id"] != buyers[-1]]:
        assert by_interaction[iid]["online_updates"] > 0, by_interaction[iid]
    negative_wait_s = (by_interaction[followups[100002][-1]]["event_ts"]
                       - by_interaction[first_new[1]]["event_ts"]) / 1000
    assert negative_wait_s >= p.cfg.job.label_horizon_s, "a negative must wait for the horizon"
    print(f"[e2e] negative label resolved by an event-time timer after {negative_wait_s:.0f}s "
          f"(horizon {p.cfg.job.label_horizon_s:.0f}s)")

    # The shared per-segment drift correction: learned from every resolved label, published to
    # the control topic, and applied to each customer by their segment ("unknown" while their
    # row has not arrived yet): every score used 0 or a correction published for its segment.
    col.wait_for("drift corrections on the control topic",
                 lambda: any(c.get("action") == "segment_drift" for c in col.control), timeout_s=60)
    published: dict[str, set[float]] = {}
    for c in col.control:
        if c.get("action") == "segment_drift":
            published.setdefault(c["segment"], set()).add(c["offset"])
    with psycopg.connect(p.cfg.postgres.dsn) as conn:
        segment_of = dict(conn.execute("SELECT id, segment FROM customers").fetchall())
    for r in unique.values():
        if r["customer_id"] in segment_of:  # (a deleted customer's segment is gone with them)
            allowed = {0.0} | published.get(segment_of[r["customer_id"]], set()) | published.get("unknown", set())
            assert r["drift_offset"] in allowed, r
    live_offsets = [by_interaction[i]["drift_offset"] for i in after_garbage]
    assert any(o != 0.0 for o in live_offsets), "live scores should carry a published correction"
    print(f"[e2e] drift corrections: {sum(len(v) for v in published.values())} published for "
          f"{sorted(published)}; live scores used {sorted(set(live_offsets))}")

    # Product changes arrive through CDC into the state every scoring task reads.
    assert by_interaction[new_product]["product_known"] is True
    assert by_interaction[gone_product]["product_known"] is False

    # Garbage and the invalid order are dead-lettered with reasons and their original bytes.
    reasons = [d["reason"] for d in col.dead]
    assert len(col.dead) == len(GARBAGE) + 1, reasons
    assert any("not valid JSON" in r for r in reasons) and any("not UTF-8" in r for r in reasons)
    assert any("truncate" in r for r in reasons) and any("amount" in r for r in reasons)
    binary = next(d for d in col.dead if "not UTF-8" in d["reason"])
    assert bytes.fromhex(binary["value"]["hex"]) == GARBAGE[1]
    print(f"[e2e] dead letters: {len(col.dead)} ({'; '.join(sorted(set(reasons)))})")

    # ... and the job kept running through all of it, without a single failover.
    assert p.job.poll() is None
    assert job_failovers(p.cfg.run_dir) == []


def test_a_quiet_database_still_lets_negatives_fall_due(pipeline):
    """Debezium's heartbeat (cdc.heartbeat_interval_ms) moves event time on while nothing
    changes: an interaction followed by no change at all gets its negative label once the
    horizon has passed on the database's clock, not only when some later change arrives."""
    p, col = pipeline, pipeline.collector
    with psycopg.connect(p.cfg.postgres.dsn, autocommit=True) as conn:
        [quiet] = insert_interactions(conn, [(100002, 8, "view")])
    t0 = time.monotonic()
    col.wait_for("the negative label of an interaction followed by no change",
                 lambda: any(r["interaction_id"] == quiet for r in col.labels),
                 timeout_s=p.cfg.job.label_horizon_s + 60, job=p.job, log=p.job_log)
    waited_s = time.monotonic() - t0
    label = next(r for r in col.labels if r["interaction_id"] == quiet)
    assert label["label"] == 0
    assert waited_s >= p.cfg.job.label_horizon_s - 1, "a negative must wait for the horizon"
    print(f"\n[e2e] quiet database: negative label after {waited_s:.0f}s "
          f"(horizon {p.cfg.job.label_horizon_s:.0f}s, heartbeat every {p.cfg.cdc.heartbeat_interval_ms} ms)")


def test_a_row_created_in_the_future_is_dead_lettered_and_event_time_stays(pipeline, tmp_path):
    """An application whose clock runs a year ahead writes created_at itself; the database
    commits the row now. The job dead-letters it with the reason and keeps its time out of the
    watermark, so the interaction before it still becomes a positive when its order follows.
    (Before, the watermark jumped a year ahead and resolved that interaction as a negative.)"""
    p, col = pipeline, pipeline.collector
    with psycopg.connect(p.cfg.postgres.dsn, autocommit=True) as conn:
        [bought] = insert_interactions(conn, [(100003, 9, "add_to_cart")])
        [future] = conn.execute("INSERT INTO interactions (customer_id, product_id, kind, created_at) "
                                "VALUES (100004, 9, 'view', now() + interval '1 year') RETURNING id").fetchone()
        time.sleep(3)  # the future row reaches the source and its watermark before the order
        conn.execute("INSERT INTO orders (customer_id, product_id, quantity, amount) VALUES (100003, 9, 1, 20)")

    def dead_letter_of_future() -> dict | None:
        for d in col.dead:  # among them the garbage of the first test: not all of it is JSON
            if f'"id":{future},"customer_id":100004,' in (d.get("value") or {}).get("utf8", "").replace(" ", ""):
                return d
        return None

    col.wait_for("the label of the interaction the order follows",
                 lambda: any(r["interaction_id"] == bought for r in col.labels),
                 timeout_s=60, job=p.job, log=p.job_log)
    label = next(r for r in col.labels if r["interaction_id"] == bought)
    assert label["label"] == 1, f"resolved as a negative: event time jumped ahead ({label})"
    col.wait_for("the future row's dead letter", lambda: dead_letter_of_future() is not None, timeout_s=30)
    reason = dead_letter_of_future()["reason"]
    assert "after the change was committed" in reason, reason
    assert all(r["interaction_id"] != future for r in col.scores)
    print(f"\n[e2e] a row created a year ahead: dead-lettered ({reason[:90]}...); "
          "the interaction before it still learned its positive")

    # Offline training leaves out what the job dead-letters, and says so: the future row, and
    # an order of -5 (on which training once crashed: the log of a negative amount).
    from models.train import train

    with psycopg.connect(p.cfg.postgres.dsn, autocommit=True) as conn:
        [bad_order] = conn.execute("INSERT INTO orders (customer_id, product_id, quantity, amount) "
                                   "VALUES (100004, 9, 1, -5) RETURNING id").fetchone()
    said: list[str] = []
    train(p.cfg.postgres.dsn, str(tmp_path), p.cfg.job.model_name, int(p.cfg.job.label_horizon_s * 1000),
          p.cfg.job.history_len, say=said.append)
    assert any("left out 1 row created after the database's clock" in s and f"interactions {future} (" in s
               for s in said), said
    assert any("orders row" in s and f"id {bad_order} (amount: -5.0" in s for s in said), said


def test_the_local_job_listens_on_loopback_only(pipeline):
    """Local execution starts Flink's servers (REST, RPC, data) inside the job's JVM: none of
    them may be reachable from outside the machine."""
    import psutil

    job = psutil.Process(pipeline.job.pid)
    listening = [c.laddr for p in [job, *job.children(recursive=True)]
                 for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    print(f"\n[e2e] the job listens on {sorted(f'{a.ip}:{a.port}' for a in listening)}")
    assert listening, "the local job's REST endpoint should be listening"
    assert all(a.ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for a in listening), listening


def test_the_embedded_database_hands_each_commit_to_debezium_at_once(stack):
    """Logical decoding sends only WAL that is flushed. With synchronous_commit off a commit
    waits for the WAL writer's next round (200 ms or more) before Debezium sees it, which was
    most of the full path's latency (commit -> Debezium p50 188 ms, vs 7 ms with it on)."""
    import psycopg

    with psycopg.connect(stack.cfg.postgres.dsn) as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
