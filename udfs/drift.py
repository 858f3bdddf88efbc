"""A correction shared by all customers of a segment: it tracks drift the offline model missed.

Every customer's own residual (:mod:`udfs.online`) needs that customer's labels; a shift that hits
everyone at once (a season, a promotion, a segment's budget) would take each customer dozens of
labels to notice. :class:`SegmentDrift` learns one logit offset per segment from the labels of
*all* its customers, against the offline model's logit: ``p = sigmoid(offline_logit + offset)``.

It is a one-parameter Bayesian logistic regression with forgetting: before each label the
precision decays toward the prior (``precision = decay * precision + (1 - decay) * prior``), so
the offset follows the last ~``1 / (1 - decay)`` labels and an old regime fades out; each label
then takes a Newton step of size ``1 / precision``. The offset is clipped to ``MAX_OFFSET``.

In the job, one learner per segment lives in keyed state (keyed by segment) and publishes its
offset to the control topic every ``publish_every`` labels; every scoring task applies the newest
offset of the customer's segment (:class:`DriftCorrection`) under its own residual.

>>> d = SegmentDrift.new()
>>> for _ in range(2000):  # the offline model says 10 %, but a third of them buy
...     _ = d.learn_one(offline_logit=-2.197, y=1)
...     _ = d.learn_one(offline_logit=-2.197, y=0)
...     _ = d.learn_one(offline_logit=-2.197, y=0)
>>> round(sigmoid(-2.197 + d.offset), 2), d.labels
(0.33, 6000)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from udfs.batch import decode_outputs
from udfs.online import sigmoid

MAX_OFFSET = 3.0  # in logit: a factor of ~20 in odds; anything beyond is a broken model, not drift
DEFAULT_DECAY = 1.0 - 1.0 / 2000  # remembers about the last 2,000 labels of a segment
PRIOR_PRECISION = 16.0  # N(0, 0.25^2) in logit: a shift beyond +-0.5 needs strong evidence
UNKNOWN_SEGMENT = "unknown"  # customers whose row has not arrived (yet)

Example = tuple[float, int, int]  # what a label teaches the drift learner: offline logit, label, event ms


def decay_for(memory_labels: int) -> float:
    """The forgetting factor that remembers about the last ``memory_labels`` labels."""
    if memory_labels < 1:
        raise ValueError(f"job.drift_memory_labels must be at least 1, not {memory_labels}")
    return 1.0 - 1.0 / memory_labels


def segment_key(segment: str | None) -> str:
    """The segment a customer's labels count toward (``unknown`` until their row arrives)."""
    return segment if segment else UNKNOWN_SEGMENT


@dataclass(slots=True)
class SegmentDrift:
    offset: float = 0.0
    precision: float = PRIOR_PRECISION
    labels: int = 0
    decay: float = DEFAULT_DECAY

    @classmethod
    def new(cls, decay: float = DEFAULT_DECAY) -> SegmentDrift:
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], not {decay}")
        return cls(decay=decay)

    def learn_one(self, offline_logit: float, y: int) -> float:
        """One label of this segment; returns the probability before the step."""
        p = sigmoid(offline_logit + self.offset)
        self.precision = self.decay * self.precision + (1.0 - self.decay) * PRIOR_PRECISION
        self.precision += max(p * (1.0 - p), 1e-6)
        step = self.offset - (p - float(y)) / self.precision
        self.offset = min(max(step, -MAX_OFFSET), MAX_OFFSET)
        self.labels += 1
        return p

    def learn_examples(self, segment: str, examples: Iterable[Example],
                       publish_every: int) -> DriftCorrection | None:
        """Labels of this segment in order, each ``(offline_logit, label, event_ts)``. If they
        took the count past a multiple of ``publish_every``: the correction to publish, with the
        offset after all of them (the job hands over a scoring batch's labels at once).

        >>> d = SegmentDrift.new()
        >>> d.learn_examples("budget", [(-2.0, 0, 10), (-2.0, 1, 11)], publish_every=3) is None
        True
        >>> c = d.learn_examples("budget", [(-2.0, 0, 12), (-2.0, 0, 13)], publish_every=3)
        >>> (c.segment, c.labels, c.event_ms, c.offset == d.offset)
        ('budget', 4, 13, True)
        """
        before = self.labels
        last_ms = None
        for offline_logit, y, event_ms in examples:
            self.learn_one(offline_logit, y)
            last_ms = event_ms
        if last_ms is None or publish_every <= 0 or self.labels // publish_every == before // publish_every:
            return None
        return DriftCorrection(segment, self.offset, self.labels, last_ms)

    def learn_label(self, label: dict[str, Any], publish_every: int) -> DriftCorrection | None:
        """Learn a label record of the job (``udfs.customer``: ``segment``, ``offline_logit``,
        ``label``, ``event_ts``); every ``publish_every`` labels, the correction to publish."""
        return self.learn_examples(str(label["segment"]), [example_of(label)], publish_every)


class InProcessDrift:
    """Every segment's learner in this process, each correction applied to the serving logic's
    ``drift`` as soon as it is published: the shared correction without the job's keyed learner
    and control topic (the in-process loops, the naive baseline's job).

    >>> served: dict[str, float] = {}
    >>> drift = InProcessDrift(publish_every=2)
    >>> drift.learn([{"segment": "budget", "offline_logit": 0.0, "label": 0, "event_ts": 1}], served)
    >>> served
    {}
    >>> drift.learn([{"segment": "budget", "offline_logit": 0.0, "label": 0, "event_ts": 2}], served)
    >>> round(served["budget"], 3)
    -0.061
    """

    def __init__(self, publish_every: int, decay: float = DEFAULT_DECAY):
        self.publish_every = publish_every
        self.decay = decay
        self.learners: dict[str, SegmentDrift] = {}

    def learn(self, labels: Iterable[dict[str, Any]], served: dict[str, float]) -> None:
        """Teach each label's segment (nothing with ``publish_every`` 0); publish into ``served``."""
        if self.publish_every <= 0:
            return
        for label in labels:
            learner = self.learners.get(label["segment"])
            if learner is None:
                learner = self.learners[label["segment"]] = SegmentDrift.new(self.decay)
            correction = learner.learn_label(label, self.publish_every)
            if correction is not None:
                served[correction.segment] = correction.offset


@dataclass(frozen=True, slots=True)
class DriftCorrection:
    """A segment's newest offset, as the scoring tasks apply it (a control message)."""

    segment: str
    offset: float
    labels: int  # labels the learner had seen when it published this
    event_ms: int  # event time of the label that triggered the publication

    def to_message(self) -> dict[str, object]:
        return {"action": "segment_drift", "segment": self.segment, "offset": round(self.offset, 6),
                "labels": self.labels, "event_ms": self.event_ms}


def valid_offset(value: object) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value) and abs(value) <= MAX_OFFSET)


def example_of(label: dict[str, Any]) -> Example:
    """What a label record of the job (``udfs.customer``) teaches its segment's learner."""
    return (float(label["offline_logit"]), int(label["label"]), int(label["event_ts"]))


def encode_examples(examples: list[Example]) -> bytes:
    """A segment's examples as the scoring operator hands them to the drift learner.

    >>> decode_examples(encode_examples([(-1.25, 1, 1700000000000), (0.5, 0, 1700000000001)]))
    [(-1.25, 1, 1700000000000), (0.5, 0, 1700000000001)]
    """
    return orjson.dumps(examples)


def decode_examples(blob: bytes) -> list[Example]:
    """The examples :func:`encode_examples` wrote; ValueError if ``blob`` is anything else."""
    try:
        rows = orjson.loads(blob)
        if not isinstance(rows, list):
            raise TypeError(f"a {type(rows).__name__}")
        examples = [(float(z), int(y), int(ts)) for z, y, ts in rows]
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"not a list of [offline_logit, label, event_ts]: {exc}") from None
    if any(y not in (0, 1) or not math.isfinite(z) for z, y, _ in examples):
        raise ValueError("a label is not 0/1 or an offline logit is not finite")
    return examples


class UnreadableExamples(NamedTuple):
    """A record of a drift example batch that did not decode, kept whole for the dead-letter topic."""

    reason: str
    topic: str
    key: bytes | None
    value: bytes | None


def decode_example_batch(topic: str, key: bytes | None, blob: bytes
                         ) -> tuple[list[Example], list[UnreadableExamples]]:
    """A segment's example records of the last few scoring calls (RecordBatcher.java: each an
    :func:`encode_examples` blob, in :func:`udfs.batch.decode_outputs`' framing; ``topic`` and
    ``key`` the batch's own), as their examples in order, and the records that did not decode
    (only a bug writes those: they are kept, not dropped; a batch whose framing is broken is one
    such record, whole).

    >>> from udfs.batch import encode_outputs
    >>> route = "livefit:segment-drift-examples"
    >>> blob = encode_outputs([(route, b"budget", encode_examples([(-1.0, 1, 5)])),
    ...                        (route, b"budget", b"{oops"),
    ...                        (route, b"budget", encode_examples([(0.5, 0, 6)]))])
    >>> examples, unreadable = decode_example_batch(route, b"budget", blob)
    >>> examples, [u.value for u in unreadable]
    ([(-1.0, 1, 5), (0.5, 0, 6)], [b'{oops'])
    >>> decode_example_batch(route, b"budget", blob[:-3])[1][0].reason
    'drift example batch unreadable (field runs past the end)'
    """
    try:
        records = decode_outputs(blob)
    except ValueError as exc:
        return [], [UnreadableExamples(f"drift example batch unreadable ({exc})", topic, key, blob)]
    examples: list[Example] = []
    unreadable: list[UnreadableExamples] = []
    for topic, key, value in records:
        try:
            examples += decode_examples(value or b"")
        except ValueError as exc:
            unreadable.append(UnreadableExamples(f"drift examples unreadable: {exc}", topic, key, value))
    return examples, unreadable
