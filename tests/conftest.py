from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def score_validator() -> Any:
    import jsonschema

    schema = json.loads((ROOT / "schemas" / "score.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="session")
def golden_orders() -> list[dict[str, Any]]:
    """Kafka records exactly as Debezium 3.6.3 wrote them (create, update, delete, tombstone)."""
    lines = (FIXTURES / "debezium-postgres-orders.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]
