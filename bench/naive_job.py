"""The naive baseline as a PyFlink job: the design most PyFlink examples show, doing livefit's work.

A Kafka source of the changes as strings, each parsed in Python; event time from a Python
timestamp assigner; products broadcast to a ``KeyedBroadcastProcessFunction`` keyed by customer,
whose state is the customer's whole ``CustomerState`` in a ``ValueState`` (pickled by PyFlink);
every model called through sklearn one event at a time (:func:`bench.inprocess.naive_logic`:
the offline model's ``predict_proba`` per interaction, the order forest's ``score_samples`` per
order, an ``SGDClassifier`` per customer asked ``predict_proba`` per interaction and taught by
``partial_fit`` per label); one event-time timer per pending label; each segment's drift
correction learned in the task that sees its labels; every score and label a JSON string to one
Kafka topic. PyFlink's defaults otherwise: process mode, its bundle and state cache sizes.

The source is bounded (it stops after the topic's first ``records`` records: Tansu's "latest"
offset under-counts, PLATFORM.md), so the job ends by itself once every label has resolved.
``livefit bench`` runs it on the naive loop's customer sample (``bench.run.run_naive_job``) and
measures it as it measures the job, scored interactions per second from first score to last, but
by each score's ``scored_at``: this job's sink stamps records with their event time, not the
broker's clock.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from pyflink.common import Configuration, Duration, Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import (
    KeyedBroadcastProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import get_java_class

from bench.inprocess import naive_logic
from jobs.score_job import python_and_loopback_settings
from livefit.config import Config, load_config
from livefit.jars import job_jars
from udfs.customer import CustomerLogic, CustomerState, Outcome, ScoringParams
from udfs.drift import InProcessDrift
from udfs.envelope import ChangeEvent, Heartbeat, parse_record
from udfs.features import Product

PRODUCTS = MapStateDescriptor("products", Types.LONG(), Types.PICKLED_BYTE_ARRAY())


def parse(topic: str, value: str) -> Iterator[ChangeEvent | Heartbeat]:
    """A change or a heartbeat; anything else stops the baseline (the bench's workload has none,
    so one would mean it measured something else than the job's work)."""
    rec = parse_record(topic, 0, 0, 0, None, value.encode("utf-8"))
    if not isinstance(rec, ChangeEvent | Heartbeat):
        raise ValueError(f"the naive baseline got a record it cannot score: {rec!r}")
    yield rec


class EventTime(TimestampAssigner):
    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return int(value.ts_ms if isinstance(value, Heartbeat) else value.event_ts_ms)


class NaiveScore(KeyedBroadcastProcessFunction):
    """livefit's per-customer logic with sklearn per event, its state pickled whole."""

    def __init__(self, model_dir: str, model_name: str, anomaly_name: str, params: ScoringParams,
                 drift_publish_every: int):
        self.model_dir, self.model_name, self.anomaly_name = model_dir, model_name, anomaly_name
        self.params = params
        self.drift_publish_every = drift_publish_every

    def open(self, runtime_context: RuntimeContext) -> None:
        self.logic = naive_logic(CustomerLogic.for_serving(
            self.model_dir, self.model_name, 0, self.anomaly_name, self.params))
        self.drift = InProcessDrift(self.drift_publish_every)
        self.customer = runtime_context.get_state(
            ValueStateDescriptor("customer", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, value: ChangeEvent, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext
                        ) -> Iterable[str]:
        state = self.customer.value() or CustomerState()
        pid = value.product_id
        product = ctx.get_broadcast_state(PRODUCTS).get(pid) if pid is not None else None
        out = self.logic.on_event(state, value, product,
                                  watermark_ms=ctx.timer_service().current_watermark())
        for t in out.timers:
            ctx.timer_service().register_event_time_timer(t)
        yield from self._emit(state, out)

    def on_timer(self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext) -> Iterable[str]:
        state = self.customer.value()
        if state is not None:
            yield from self._emit(state, self.logic.on_timer(state, timestamp))

    def process_broadcast_element(self, value: ChangeEvent, ctx: KeyedBroadcastProcessFunction.Context
                                  ) -> None:
        products = ctx.get_broadcast_state(PRODUCTS)
        if value.op == "d":
            products.remove(int(value.row["id"]))
        else:
            products.put(int(value.row["id"]), Product.from_row(value.row))

    def _emit(self, state: CustomerState, out: Outcome) -> Iterator[str]:
        if out.clear_state:
            self.customer.clear()
        else:
            self.customer.update(state)
        self.drift.learn(out.labels, self.logic.drift)
        for r in (*out.records, *out.labels):
            yield orjson.dumps(r).decode()


def _stop_at(topic: str, offset: int) -> KafkaOffsetsInitializer:
    """Partition 0 of ``topic`` up to ``offset``. (PyFlink's ``KafkaOffsetsInitializer.offsets``
    names a shaded Kafka class that the connector jar livefit uses does not have.)"""
    jvm = get_gateway().jvm
    offsets = jvm.org.apache.flink.python.util.HashMapWrapper(None, get_java_class(jvm.Long))
    offsets.put(jvm.org.apache.kafka.common.TopicPartition(topic, 0), offset)
    return KafkaOffsetsInitializer(
        jvm.org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer.offsets(
            offsets.asMap()))


def build(env: StreamExecutionEnvironment, cfg: Config, topic: str, records: int, out_topic: str) -> None:
    k, j = cfg.kafka, cfg.job
    source = (KafkaSource.builder()
              .set_bootstrap_servers(k.bootstrap_servers)
              .set_topics(topic)
              .set_group_id(f"{k.consumer_group}-naive")
              .set_starting_offsets(KafkaOffsetsInitializer.earliest())
              .set_bounded(_stop_at(topic, records))
              .set_value_only_deserializer(SimpleStringSchema()))
    for key, value in k.java_client_properties().items():
        source.set_property(key, value)
    sink = (KafkaSink.builder()
            .set_bootstrap_servers(k.bootstrap_servers)
            .set_record_serializer(KafkaRecordSerializationSchema.builder()
                                   .set_topic(out_topic)
                                   .set_value_serialization_schema(SimpleStringSchema())
                                   .build())
            .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE))
    for key, value in k.java_sink_properties().items():
        sink.set_property(key, value)
    events = (env.from_source(source.build(), WatermarkStrategy.no_watermarks(), "naive-source")
              .flat_map(lambda v: parse(topic, v), output_type=Types.PICKLED_BYTE_ARRAY())
              .name("naive-parse")
              .assign_timestamps_and_watermarks(
                  WatermarkStrategy.for_bounded_out_of_orderness(
                      Duration.of_millis(j.max_out_of_orderness_ms)).with_timestamp_assigner(EventTime()))
              .name("naive-event-time"))
    products = (events.filter(lambda e: isinstance(e, ChangeEvent) and e.table == "products")
                .name("naive-products").broadcast(PRODUCTS))
    scores = (events.filter(lambda e: isinstance(e, ChangeEvent) and e.table != "products")
              .name("naive-customer-changes")
              .key_by(lambda e: int(e.customer_id), key_type=Types.LONG())
              .connect(products)
              .process(NaiveScore(j.model_dir, j.model_name, j.anomaly_model_name, j.scoring_params(),
                                  j.drift_publish_every_labels), output_type=Types.STRING())
              .name("naive-score-and-learn"))
    scores.sink_to(sink.build()).name("naive-sink")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the naive baseline of livefit bench, as a PyFlink job")
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True, help="the changes to score (one partition)")
    parser.add_argument("--records", type=int, required=True, help="how many of them: the job ends after")
    parser.add_argument("--out-topic", required=True, help="where scores and labels go, as JSON")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--mode", default="process", choices=("process", "thread"),
                        help="PyFlink's Python execution mode (its default: process)")
    args = parser.parse_args(argv)
    cfg = load_config()
    cfg.kafka.bootstrap_servers, cfg.job.model_dir = args.bootstrap_servers, args.model_dir
    # As the job does (jobs/score_job.py): the Python workers as processes, not PyFlink's
    # loopback worker pool listening on every interface.
    os.environ.setdefault("_python_worker_execution_mode", "process")
    conf = Configuration()
    for key, value in python_and_loopback_settings(args.mode).items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.add_jars(*[p.as_uri() for p in job_jars()])
    env.set_parallelism(args.parallelism)
    env.enable_checkpointing(cfg.job.checkpoint_interval_ms)  # as the job: state checkpointed
    build(env, cfg, args.topic, args.records, args.out_topic)
    env.execute("livefit-naive-baseline")


if __name__ == "__main__":
    main()
