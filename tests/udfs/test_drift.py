"""The shared per-segment drift correction: it tracks a shift, forgets the old regime, stays bounded."""

from __future__ import annotations

import pickle
import random

import pytest

from udfs.drift import MAX_OFFSET, SegmentDrift, decay_for, segment_key
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

