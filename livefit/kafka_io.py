"""Kafka clients for everything outside the Flink job (feeder, CLI, tests), built from config."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from livefit.config import KafkaConfig


def client_conf(kafka: KafkaConfig, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {"bootstrap.servers": kafka.bootstrap_servers}
    conf.update(kafka.librdkafka_client_properties())
    conf.update(extra)
    return conf


def producer(kafka: KafkaConfig, **extra: Any) -> Producer:
    return Producer(client_conf(kafka, **{"linger.ms": 5, "acks": "all", **extra}))


def ensure_topics(kafka: KafkaConfig, topics: list[str], timeout_s: float = 30.0) -> None:
    """Create missing topics explicitly (Tansu auto-creates with 4 partitions otherwise). The
    changes topic always gets one partition: the order of changes across tables holds only within
    a partition (KafkaConfig.changes_topic)."""
    admin = AdminClient(client_conf(kafka))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            break
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {kafka.bootstrap_servers} is not reachable: {exc}") from exc
            time.sleep(0.5)
    missing = [t for t in topics if t not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=1 if t == kafka.changes_topic else kafka.partitions,
                  replication_factor=kafka.replication_factor)
         for t in missing]
    )
    for topic, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"could not create topic {topic}: {exc}") from exc


def read_topic(
    kafka: KafkaConfig, topic: str, idle_polls: int = 3, poll_timeout_s: float = 1.0,
    max_seconds: float = 120.0,
) -> list[tuple[bytes | None, bytes | None, int]]:
    """All records of ``topic`` as (key, value, timestamp_ms), read from offset 0.

    Tansu's "latest" offset under-counts (PLATFORM.md), so we read until several polls in a row
    return nothing instead of stopping at the reported end offsets.
    """
    return list(iter_topic(kafka, topic, idle_polls, poll_timeout_s, max_seconds))


def iter_topic(
    kafka: KafkaConfig, topic: str, idle_polls: int = 3, poll_timeout_s: float = 1.0,
    max_seconds: float = 120.0, follow: bool = False,
) -> Iterator[tuple[bytes | None, bytes | None, int]]:
    consumer = Consumer(client_conf(kafka, **{
        "group.id": f"livefit-reader-{time.time_ns()}", "enable.auto.commit": False,
        "session.timeout.ms": 6000,
    }))
    try:
        meta = consumer.list_topics(topic, timeout=10)
        if topic not in meta.topics or meta.topics[topic].error is not None:
            return
        partitions = sorted(meta.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        empty = 0
        deadline = time.monotonic() + max_seconds
        while follow or (empty < idle_polls and time.monotonic() < deadline):
            batch = consumer.consume(num_messages=10_000, timeout=poll_timeout_s)
            if not batch:
                empty += 1
                continue
            empty = 0
            for msg in batch:
                if msg.error():
                    continue
                yield msg.key(), msg.value(), msg.timestamp()[1]
    finally:
        consumer.close()
