"""Rows as RawRecordDeserializer.java produces them (topic, partition, offset, timestamp, key,
value), for tests that call livefit's JVM adapters directly."""

from __future__ import annotations

from typing import Any


def raw_record(jvm: Any, topic: str, value: bytes | None) -> Any:
    from pyflink.util.java_utils import to_jarray

    return jvm.org.apache.flink.types.Row.of(to_jarray(jvm.Object, [topic, 0, 0, 0, None, value]))


def shards_of(jvm: Any, router: Any, value: bytes | None, topic: str = "shop.changes") -> list[int]:
    """The shards ShardRouter sends a raw change to, in order (none for a heartbeat)."""
    out = jvm.java.util.ArrayList()
    router.flatMap(raw_record(jvm, topic, value), jvm.org.apache.flink.api.common.functions.util.ListCollector(out))
    return sorted(int(out.get(i).getField(0)) for i in range(out.size()))
