"""Control messages on ``livefit.control``: which model version the job should serve.

A message names a model and a version; the artifact is looked up in the job's own model
directory and verified there. Nothing sent over Kafka is ever loaded as code or used as a path.

>>> parse_control(b'{"action": "use_model", "model": "propensity", "version": 3}')
ModelChoice(model='propensity', version=3)
>>> parse_control(b'{"action": "use_model", "model": "../../etc", "version": 1}')
'control: model name must match [a-z0-9_-]{1,64}'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MODEL_NAME = re.compile(r"[a-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class ModelChoice:
    model: str
    version: int


def parse_control(value: bytes | None) -> ModelChoice | str:
    """A ModelChoice, or the reason the message is refused (it then goes to the dead letters)."""
    if value is None:
        return "control: empty message"
    try:
        msg = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "control: not a JSON object"
    if not isinstance(msg, dict) or msg.get("action") != "use_model":
        return "control: expected {\"action\": \"use_model\", \"model\": ..., \"version\": ...}"
    model, version = msg.get("model"), msg.get("version")
    if not isinstance(model, str) or not MODEL_NAME.fullmatch(model):
        return "control: model name must match [a-z0-9_-]{1,64}"
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return "control: version must be a positive integer"
    return ModelChoice(model, version)
