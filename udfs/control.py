"""Control messages on ``livefit.control``: which model version the job should serve, and the
shared per-segment drift corrections the job itself publishes (:mod:`udfs.drift`).

A model choice names a model and a version; the artifact is looked up in the job's own model
directory and verified there. Nothing sent over Kafka is ever loaded as code or used as a path.

>>> parse_control(b'{"action": "use_model", "model": "propensity", "version": 3}')
ModelChoice(model='propensity', version=3)
>>> parse_control(b'{"action": "use_model", "model": "../../etc", "version": 1}')
'control: model name must match [a-z0-9_-]{1,64}'
>>> parse_control(b'{"action": "segment_drift", "segment": "budget", "offset": -0.4, '
...               b'"labels": 800, "event_ms": 1700000000000}')
DriftCorrection(segment='budget', offset=-0.4, labels=800, event_ms=1700000000000)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from udfs.drift import MAX_OFFSET, DriftCorrection, valid_offset

MODEL_NAME = re.compile(r"[a-z0-9_-]{1,64}")
SEGMENT_NAME = re.compile(r"[A-Za-z0-9_ .-]{1,64}")


@dataclass(frozen=True, slots=True)
class ModelChoice:
    model: str
    version: int


def parse_control(value: bytes | None) -> ModelChoice | DriftCorrection | str:
    """A ModelChoice or DriftCorrection, or the reason the message is refused (it then goes to
    the dead letters)."""
    if value is None:
        return "control: empty message"
    try:
        msg = orjson.loads(value)
    except orjson.JSONDecodeError:  # also what orjson raises for bytes that are not UTF-8
        return "control: not a JSON object"
    if isinstance(msg, dict) and msg.get("action") == "segment_drift":
        return _drift_correction(msg)
    if not isinstance(msg, dict) or msg.get("action") != "use_model":
        return ("control: expected {\"action\": \"use_model\", \"model\": ..., \"version\": ...} "
                "or {\"action\": \"segment_drift\", ...}")
    model, version = msg.get("model"), msg.get("version")
    if not isinstance(model, str) or not MODEL_NAME.fullmatch(model):
        return "control: model name must match [a-z0-9_-]{1,64}"
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return "control: version must be a positive integer"
    return ModelChoice(model, version)


def _drift_correction(msg: dict[str, object]) -> DriftCorrection | str:
    segment, offset = msg.get("segment"), msg.get("offset")
    labels, event_ms = msg.get("labels"), msg.get("event_ms")
    if not isinstance(segment, str) or not SEGMENT_NAME.fullmatch(segment):
        return "control: segment_drift needs a segment name matching [A-Za-z0-9_ .-]{1,64}"
    if not valid_offset(offset):
        return f"control: segment_drift offset must be a number within +-{MAX_OFFSET}"
    for name, v in (("labels", labels), ("event_ms", event_ms)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            return f"control: segment_drift {name} must be a non-negative integer"
    return DriftCorrection(segment, float(offset), labels, event_ms)  # type: ignore[arg-type]
