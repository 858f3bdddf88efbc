"""The shared per-segment drift correction: it tracks a shift, forgets the old regime, stays bounded."""

from __future__ import annotations

import pickle
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from udfs.batch import encode_outputs
from udfs.drift import (
    MAX_OFFSET,
    SegmentDrift,
    decay_for,
    decode_example_batch,
    decode_examples,
    encode_examples,
    segment_key,
)
from udfs.online import sigmoid


def _labels(rng: random.Random, n: int, offline_logit: float, true_shift: float):
    for _ in range(n):
        yield offline_logit, int(rng.random() < sigmoid(offline_logit + true_shift))


def test_it_learns_a_shift_the_offline_model_missed_and_follows_it_when_it_moves():
    rng = random.Random(1)
    d = SegmentDrift.new(decay_for(2000))
    for z, y in _labels(rng, 6000, -2.0, 0.7):
        d.learn_one(z, y)
    assert d.offset == pytest.approx(0.7, abs=0.15)
    for z, y in _labels(rng, 10000, -2.0, -0.5):  # the regime changes: the old one fades out
        d.learn_one(z, y)  # (within a few memory lengths)
    assert d.offset == pytest.approx(-0.5, abs=0.15)


def test_without_drift_it_stays_near_zero_and_never_leaves_its_bounds():
    rng = random.Random(2)
    d = SegmentDrift.new(decay_for(2000))
    for z, y in _labels(rng, 5000, -1.5, 0.0):
        d.learn_one(z, y)
    assert abs(d.offset) < 0.15
    for _ in range(5000):  # a broken model: everything it says is wrong
        d.learn_one(-12.0, 1)
    assert d.offset == MAX_OFFSET


def test_publishes_every_n_labels_and_survives_pickling_before_and_after_learning():
    d = SegmentDrift.new()
    assert pickle.loads(pickle.dumps(d)) == d
    label = {"segment": "budget", "offline_logit": -2.0, "label": 0, "event_ts": 5}
    published = [d.learn_label(label, publish_every=3) for _ in range(7)]
    assert [c is not None for c in published] == [False, False, True, False, False, True, False]
    assert published[5].segment == "budget" and published[5].labels == 6 and published[5].offset < 0
    assert pickle.loads(pickle.dumps(d)) == d
    assert d.learn_label(label, publish_every=0) is None  # 0: never publish


def test_segment_key_and_memory_are_checked():
    assert segment_key(None) == segment_key("") == "unknown" and segment_key("premium") == "premium"
    with pytest.raises(ValueError, match="drift_memory_labels"):
        decay_for(0)



def test_learning_examples_at_once_is_learning_them_one_by_one():
    rng = random.Random(3)
    examples = [(z, y, 1000 + i) for i, (z, y) in enumerate(_labels(rng, 50, -1.0, 0.4))]
    one_by_one, at_once = SegmentDrift.new(), SegmentDrift.new()
    for z, y, _ in examples:
        one_by_one.learn_one(z, y)
    for i in range(0, 50, 7):  # in batches of 7, as scoring calls hand them over
        at_once.learn_examples("budget", examples[i:i + 7], publish_every=0)
    assert at_once == one_by_one


def test_a_batch_publishes_once_when_it_passes_a_multiple_of_publish_every():
    d = SegmentDrift.new()
    batch = [(-2.0, 0, 7)] * 4
    published = [d.learn_examples("budget", batch, publish_every=6) for _ in range(4)]
    # counts after each batch: 4, 8 (passed 6), 12 (reached 12), 16 (nothing passed)
    assert [c is not None for c in published] == [False, True, True, False]
    assert published[1].labels == 8 and published[1].event_ms == 7 and published[1].segment == "budget"
    assert d.learn_examples("budget", [], publish_every=1) is None  # nothing learned, nothing new


@given(st.lists(st.tuples(st.floats(-30, 30), st.integers(0, 1), st.integers(-2**62, 2**62))))
def test_examples_round_trip_exactly(examples):
    assert decode_examples(encode_examples(examples)) == examples


@pytest.mark.parametrize("blob", [b"", b"not json", b"{}", b"[1]", b"[[1, 1]]", b'[["x", 1, 2]]',
                                  b"[[0.5, 2, 3]]", b"[[NaN, 1, 2]]", b'[[1e999, 1, 2]]'])
def test_unreadable_examples_are_refused_with_a_reason(blob):
    with pytest.raises(ValueError):
        decode_examples(blob)


_calls = st.lists(st.lists(st.tuples(st.floats(-30, 30), st.integers(0, 1), st.integers(0, 2**62)),
                           max_size=5), max_size=8)


@given(_calls, st.sets(st.integers(0, 7)))
def test_a_batch_of_calls_teaches_what_the_calls_taught_and_keeps_what_it_cannot_read(calls, broken):
    """The JVM collects a segment's example records of several scoring calls into one element
    (RecordBatcher.java): learning from it is learning from each call in turn, and a record that
    does not decode is handed back whole (for the dead-letter topic), not dropped."""
    route = "livefit:segment-drift-examples"
    records = [(route, b"budget", b"{broken" if i in broken else encode_examples(call))
               for i, call in enumerate(calls)]
    examples, unreadable = decode_example_batch(route, b"budget", encode_outputs(records))
    assert [u.value for u in unreadable] == [b"{broken" for i in range(len(calls)) if i in broken]
    one_by_one, batched = SegmentDrift.new(), SegmentDrift.new()
    for i, call in enumerate(calls):
        if i not in broken:
            one_by_one.learn_examples("budget", call, publish_every=50)
    batched.learn_examples("budget", examples, publish_every=50)
    assert (batched.offset, batched.precision, batched.labels) == (
        one_by_one.offset, one_by_one.precision, one_by_one.labels)


def test_a_truncated_batch_is_handed_back_whole():
    blob = encode_outputs([("livefit:segment-drift-examples", b"budget", encode_examples([(0.0, 1, 1)]))])
    examples, unreadable = decode_example_batch("livefit:segment-drift-examples", b"budget", blob[:-1])
    assert examples == [] and [u.value for u in unreadable] == [blob[:-1]]
    assert "unreadable" in unreadable[0].reason
