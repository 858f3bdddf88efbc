"""Rows as RawRecordDeserializer.java produces them (topic, partition, offset, timestamp, key,
value), for tests that call livefit's JVM adapters directly."""

from __future__ import annotations

from typing import Any


def raw_record(jvm: Any, topic: str, value: bytes | None) -> Any:
    from pyflink.util.java_utils import to_jarray

    return jvm.org.apache.flink.types.Row.of(to_jarray(jvm.Object, [topic, 0, 0, 0, None, value]))


def shards_of(jvm: Any, router: Any, value: bytes | None, topic: str = "shop.changes",
              shards: int = 16) -> list[int]:
    """The shards ShardRouter sends a raw change to, in order (none for a heartbeat): it emits
    each shard's key (ShardRouter.balancedKeys), which the scoring operator maps back."""
    from jobs.score_job import MAX_PARALLELISM

    keys = jvm.livefit.flink.ShardRouter.balancedKeys(shards, MAX_PARALLELISM)
    shard_of_key = {int(k): s for s, k in enumerate(keys)}
    out = jvm.java.util.ArrayList()
    router.flatMap(raw_record(jvm, topic, value), jvm.org.apache.flink.api.common.functions.util.ListCollector(out))
    return sorted(shard_of_key[int(out.get(i).getField(0))] for i in range(out.size()))
