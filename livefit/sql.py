"""Small helpers for the few SQL queries livefit runs itself (seeding, training, the demo).

Kept apart from ``livefit.stack.postgres``, which needs the embedded PostgreSQL wheel: these also
run against a real PostgreSQL.
"""

from __future__ import annotations

from typing import Any


def scalar(conn: Any, query: str, params: tuple[Any, ...] = ()) -> Any:
    """The one value a single-row query returns (an aggregate, ``now()``).

    >>> class Conn:  # a psycopg connection's execute(...).fetchone(), as far as it is used here
    ...     def execute(self, query, params):
    ...         return self
    ...     def fetchone(self):
    ...         return (42,)
    >>> scalar(Conn(), "SELECT count(*) FROM customers")
    42
    """
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"{query!r} returned no row")
    return row[0]
