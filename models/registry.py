"""Versioned model artifacts: ``<model_dir>/<name>/v<N>/model.joblib`` plus ``manifest.json``.

joblib files are pickles, i.e. code: artifacts are only ever loaded from the configured model
directory, and only after their sha256 matches the manifest.

>>> import tempfile, sklearn.dummy
>>> d = tempfile.mkdtemp()
>>> m = sklearn.dummy.DummyClassifier().fit([[0], [1]], [0, 1])
>>> man = save_model(d, "toy", m, features=["x"], training_window={}, metrics={})
>>> man["version"], load_model(d, "toy", expected_features=["x"])[1]["sha256"] == man["sha256"]
(1, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import sklearn


class ModelError(RuntimeError):
    """An artifact is missing, tampered with, or does not fit the features the job computes."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions(model_dir: str | Path, name: str) -> list[int]:
    root = Path(model_dir) / name
    if not root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in root.iterdir() if (m := re.fullmatch(r"v(\d+)", p.name)))


def save_model(
    model_dir: str | Path, name: str, estimator: Any, features: Sequence[str],
    training_window: dict[str, Any], metrics: dict[str, Any], extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the next version of ``name`` and return its manifest. Never overwrites a version."""
    version = (versions(model_dir, name) or [0])[-1] + 1
    vdir = Path(model_dir) / name / f"v{version}"
    vdir.mkdir(parents=True, exist_ok=False)
    artifact = vdir / "model.joblib"
    joblib.dump(estimator, artifact)
    manifest = {
        "name": name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "estimator": type(estimator).__name__,
        "sklearn_version": sklearn.__version__,
        "features": list(features),
        "training_window": training_window,
        "metrics": metrics,
        "artifact": artifact.name,
        "sha256": sha256_file(artifact),
        **(extra or {}),
    }
    tmp = vdir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, vdir / "manifest.json")
    return manifest


def load_model(
    model_dir: str | Path, name: str, version: int | None = None,
    expected_features: Sequence[str] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Load (estimator, manifest) of ``version`` (default: the newest), verified."""
    available = versions(model_dir, name)
    if not available:
        raise ModelError(
            f"no model '{name}' in {Path(model_dir).resolve()}: run 'livefit train' first"
        )
    version = available[-1] if version is None else version
    vdir = Path(model_dir) / name / f"v{version}"
    manifest_path = vdir / "manifest.json"
    if not manifest_path.exists():
        raise ModelError(f"model {name} v{version}: no manifest at {manifest_path}")
    manifest = json.loads(manifest_path.read_text())
    artifact = vdir / str(manifest.get("artifact", "model.joblib"))
    if artifact.parent != vdir or not artifact.exists():
        raise ModelError(f"model {name} v{version}: artifact {artifact} is missing")
    digest = sha256_file(artifact)
    if digest != manifest.get("sha256"):
        raise ModelError(
            f"model {name} v{version}: sha256 of {artifact} is {digest[:12]}..., the manifest says "
            f"{str(manifest.get('sha256'))[:12]}...; refusing to load a tampered artifact"
        )
    if expected_features is not None and list(manifest.get("features", [])) != list(expected_features):
        raise ModelError(
            f"model {name} v{version} was trained on features {manifest.get('features')} but the "
            f"job computes {list(expected_features)}; retrain with 'livefit train'"
        )
    return joblib.load(artifact), manifest
