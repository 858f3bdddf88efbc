"""The offline model as the job uses it: one verified artifact, scored one row at a time.

For a fitted ``Pipeline(StandardScaler, LogisticRegression)`` the logit is computed directly
from the fitted parameters (``((x - mean) / scale) . coef + intercept``), which is exactly the
model's ``decision_function`` at ~2 us instead of ~100 us per sklearn call; any other estimator
falls back to ``predict_proba``. Tests check the two paths agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.registry import ModelError, load_model, versions
from udfs.features import FEATURE_NAMES
from udfs.online import logit


class OfflineModel:
    def __init__(self, estimator: Any, manifest: dict[str, Any]):
        self.estimator = estimator
        self.manifest = manifest
        self.name = str(manifest["name"])
        self.version = int(manifest["version"])
        self._linear = _linear_parameters(estimator)

    @classmethod
    def load(cls, model_dir: str | Path, name: str, version: int | None = None) -> OfflineModel:
        estimator, manifest = load_model(model_dir, name, version, expected_features=FEATURE_NAMES)
        return cls(estimator, manifest)

    @classmethod
    def load_for_serving(cls, model_dir: str | Path, name: str, pinned: int = 0,
                         warn: Any = None) -> OfflineModel:
        """The pinned version (it must verify), else the newest version that verifies.

        A newer artifact that fails its checks (missing, tampered, other features) is skipped
        with a warning rather than stopping the job: the version that was serving still can.
        """
        if pinned:
            return cls.load(model_dir, name, pinned)
        errors = []
        for version in reversed(versions(model_dir, name)):
            try:
                model = cls.load(model_dir, name, version)
            except ModelError as exc:
                errors.append(str(exc))
                if warn is not None:
                    warn(f"skipping {name} v{version}: {exc}")
                continue
            return model
        raise ModelError("; ".join(errors) or f"no model '{name}' in {Path(model_dir).resolve()}: "
                         "run 'livefit train' first")

    def logit_one(self, x: Sequence[float]) -> float:
        if self._linear is not None:
            mean, scale, coef, intercept = self._linear
            return float(np.dot((np.asarray(x, dtype=np.float64) - mean) / scale, coef) + intercept)
        p = float(self.estimator.predict_proba(np.asarray([x], dtype=np.float64))[0, 1])
        return logit(p)

    def logit_many(self, X: np.ndarray) -> np.ndarray:
        if self._linear is not None:
            mean, scale, coef, intercept = self._linear
            return ((X - mean) / scale) @ coef + intercept
        p = np.clip(self.estimator.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))


def _linear_parameters(estimator: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(estimator, Pipeline) or len(estimator.steps) != 2:
        return None
    scaler, clf = estimator.steps[0][1], estimator.steps[1][1]
    if not isinstance(scaler, StandardScaler) or not isinstance(clf, LogisticRegression):
        return None
    if clf.coef_.shape[0] != 1:
        return None
    mean = scaler.mean_ if scaler.with_mean else np.zeros_like(clf.coef_[0])
    scale = scaler.scale_ if scaler.with_std else np.ones_like(clf.coef_[0])
    return (np.asarray(mean, dtype=np.float64), np.asarray(scale, dtype=np.float64),
            np.asarray(clf.coef_[0], dtype=np.float64), float(clf.intercept_[0]))
