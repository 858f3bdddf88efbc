"""The scoring operator run in process (bench/operator.py): fed as the JVM feeds it, it must do
exactly the job's work, or the bench's split of the gap between the limit and the job means
nothing. Its labels and their features are held to the in-process limit's."""

from __future__ import annotations

import gc

import orjson

from bench.inprocess import run_loop
from bench.operator import Feed, run_operator
from livefit.config import DataConfig
from tests.conftest import Trained
from udfs.batch import decode_outputs


def test_the_operator_fed_like_the_job_learns_every_label_the_limit_does(trained: Trained):
    cfg, workload, logic = trained(DataConfig(customers=80, products=40, history_days=20))
    features: dict[int, list[float]] = {}
    limit = run_loop(workload, logic, cfg.job.max_out_of_orderness_ms, features=features)

    # A slow feed: batches of a few records, watermarks and checkpoints' flush markers in between.
    cfg.job.checkpoint_interval_ms = 1000
    feed = Feed.of(workload, cfg, records_per_s=500)
    calls = [call for chunk in feed.calls(cfg, chunk_records=1000) for call in chunk]
    kinds = [call[0] for call in calls]
    assert kinds.count("marker") >= 2 and kinds.count("watermark") > 10
    assert kinds.count("batch") > len(workload.records) // 20

    outputs: list[bytes] = []
    frozen = gc.get_freeze_count()
    r = run_operator(cfg, cfg.job.model_dir, feed, outputs)
    assert gc.get_freeze_count() == frozen  # the operator's open() froze the heap only for the run
    labels = [orjson.loads(value) for element in outputs for topic, _, value in decode_outputs(element)
              if topic == cfg.kafka.labels_topic and value is not None]
    assert r["labels"] == len(labels) == limit["labels"] == workload.interactions
    assert r["events_scored"] == limit["interactions_scored"] + limit["orders_scored"]
    assert r["dead_lettered"] == 0
    assert sum(label["label"] for label in labels) == limit["positives"]
    assert {label["interaction_id"]: label["features"] for label in labels} == features
