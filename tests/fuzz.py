"""Seeded structural fuzzing of Debezium change events: valid envelopes, then broken in one or
more ways. Used against the running job (tests/e2e/test_faults.py) and against the JVM-side
routing rules (tests/jobs/test_routing.py)."""

from __future__ import annotations

import json
import random
from typing import Any


def _base_envelope(table: str, rng: random.Random) -> dict[str, Any]:
    cid = 10_000_000 + rng.randrange(100)  # customers no real row uses: labels stay checkable
    row: dict[str, Any] = {"id": 50_000_000 + rng.randrange(10**6), "customer_id": cid,
                           "product_id": 1 + rng.randrange(30), "created_at": "2026-11-22T04:00:00Z"}
    if table == "products":  # products no real row uses: real scores stay as they were
        row = {"id": 90_000_000 + rng.randrange(100), "category": rng.choice(["shoes", "bags"]),
               "color": rng.choice(["red", "blue"]), "price": round(rng.uniform(1, 500), 2),
               "created_at": "2026-11-22T04:00:00Z"}
    elif table == "interactions":
        row["kind"] = rng.choice(["view", "click", "add_to_cart"])
    else:
        row.update(quantity=1, amount=round(rng.uniform(1, 500), 2), status="new")
    return {"op": "c", "before": None, "after": row,
            "source": {"table": table, "lsn": rng.randrange(10**9), "ts_ms": 1795320000194}}


WEIRD = [None, "", "🚀 żółć", -1, 0, 2**63, 1e308, True, [], {}, "NaN", "9" * 400, -0.0]


def fuzz_payloads(n: int, seed: int = 11, tables: tuple[str, ...] = ("interactions", "orders")
                  ) -> list[tuple[str, bytes | None]]:
    """Seeded structural fuzzing: valid envelopes of ``tables``, then broken in one or more ways."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes | None]] = []
    for i in range(n):
        table = rng.choice(tables)
        env = _base_envelope(table, rng)
        how = rng.randrange(12)
        if how == 0:
            value: bytes | None = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        elif how == 1:
            value = json.dumps(env).encode()[: rng.randrange(1, 120)]  # truncated
        elif how == 2:
            env["op"] = rng.choice(["t", "m", "x", "", None, 7])
            value = json.dumps(env).encode()
        elif how == 3:
            env["after"][rng.choice(list(env["after"]))] = rng.choice(WEIRD)
            value = json.dumps(env).encode()
        elif how == 4:
            del env["after"][rng.choice(list(env["after"]))]
            value = json.dumps(env).encode()
        elif how == 5:
            value = json.dumps(env).encode().replace(b'"amount": ', b'"amount": NaN, "x": ', 1)
        elif how == 6:
            env["source"] = rng.choice(WEIRD)
            value = json.dumps(env).encode()
        elif how == 7:
            env["after"]["comment"] = "é" * rng.choice([10, 100_000])  # a column added while running
            value = json.dumps(env, ensure_ascii=False).encode()
        elif how == 8:
            value = None  # tombstone
        elif how == 9:
            env["after"] = rng.choice(WEIRD)
            value = json.dumps(env).encode()
        elif how == 10 and i % 500 == 0:
            value = b"{" + b" " * 900_000 + b"}"  # ~1 MB, valid JSON, not an envelope
        else:
            value = json.dumps(env).encode()  # valid: must be handled (scored or applied)
        out.append((table, value))
    return out
