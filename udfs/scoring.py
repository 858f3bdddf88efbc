"""The offline model as the job uses it: one verified artifact, scored one row at a time.

For a fitted ``Pipeline(StandardScaler, LogisticRegression)`` the logit is computed directly
from the fitted parameters (``((x - mean) / scale) . coef + intercept``), which is exactly the
model's ``decision_function`` at ~2 us instead of ~100 us per sklearn call; any other estimator
falls back to ``predict_proba``. Tests check the two paths agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from models.registry import ModelError, load_model, versions
from udfs.anomaly import ORDER_FEATURE_NAMES, FastIsolationForest
from udfs.features import FEATURE_NAMES
from udfs.online import logit


def cold_start_name(name: str) -> str:
    """The cold-start variant of propensity model ``name`` (trained and versioned alongside it)."""
    return f"{name}_cold"


class ServedModel:
    """A verified artifact from the model registry, as the job serves it: loading, naming."""

    FEATURES: tuple[str, ...] = ()

    def __init__(self, estimator: Any, manifest: dict[str, Any]):
        self.estimator = estimator
        self.manifest = manifest
        self.name = str(manifest["name"])
        self.version = int(manifest["version"])

    @classmethod
    def load(cls, model_dir: str | Path, name: str, version: int | None = None) -> Self:
        estimator, manifest = load_model(model_dir, name, version, expected_features=cls.FEATURES)
        return cls(estimator, manifest)

    @classmethod
    def load_for_serving(cls, model_dir: str | Path, name: str, pinned: int = 0,
                         warn: Any = None) -> Self:
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

    @classmethod
    def load_optional(cls, model_dir: str | Path, name: str, warn: Any = None) -> Self | None:
        """The newest verified version of a model the job can run without (None if there is none)."""
        if not versions(model_dir, name):
            return None
        try:
            return cls.load_for_serving(model_dir, name, warn=warn)
        except ModelError as exc:
            if warn is not None:
                warn(f"running without {name}: {exc}")
            return None

    @property
    def ref(self) -> dict[str, Any]:
        """How a score record names this model."""
        return {"name": self.name, "version": self.version}


class OfflineModel(ServedModel):
    """A propensity model over FEATURE_NAMES."""

    FEATURES = FEATURE_NAMES

    def __init__(self, estimator: Any, manifest: dict[str, Any]):
        super().__init__(estimator, manifest)
        self._linear = _linear_parameters(estimator)
        self._inv_scale = None if self._linear is None else 1.0 / self._linear[1]

    @property
    def serves_cold_start(self) -> bool:
        """Training found this model better than the personalised one for cold-start customers."""
        return bool(self.manifest.get("selection", {}).get("serve_for_cold_start", False))

    def logit_one(self, x: Sequence[float]) -> float:
        return self.logit_and_scaled(x)[0]

    def logit_and_scaled(self, x: Sequence[float]) -> tuple[float, np.ndarray]:
        """The logit of ``x`` and ``x`` standardized (what the online residual learns on): the
        job scales each row once, for this model and for the residual on top of it."""
        xs = self.standardize(x)
        if self._linear is None:
            return logit(float(self.estimator.predict_proba(np.asarray([x], dtype=np.float64))[0, 1])), xs
        return float(np.dot(xs, self._linear[2])) + self._linear[3], xs

    def standardize(self, x: Sequence[float]) -> np.ndarray:
        """``x`` on the scale the offline model's scaler puts it (as is for other estimators): the
        online residual learns on this scale so one prior fits every feature."""
        xv = np.array(x, dtype=np.float64)
        if self._linear is None or self._inv_scale is None:
            return xv
        xv -= self._linear[0]
        xv *= self._inv_scale  # in place, no temporaries: this runs for every event
        return xv

    def logit_many(self, X: np.ndarray) -> np.ndarray:
        if self._linear is not None:
            mean, scale, coef, intercept = self._linear
            return ((X - mean) / scale) @ coef + intercept
        p = np.clip(self.estimator.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))


class OrderAnomalyModel(ServedModel):
    """An ``IsolationForest`` fitted on order history, scored with :class:`FastIsolationForest`."""

    FEATURES = ORDER_FEATURE_NAMES

    def __init__(self, estimator: Any, manifest: dict[str, Any]):
        from sklearn.ensemble import IsolationForest

        if not isinstance(estimator, IsolationForest):
            raise ModelError(f"{manifest.get('name')} v{manifest.get('version')} is a "
                             f"{type(estimator).__name__}, not an IsolationForest")
        super().__init__(estimator, manifest)
        self.forest = FastIsolationForest(estimator)

    def anomaly_score_one(self, x: Sequence[float]) -> float:
        return self.forest.anomaly_score_one(x)

    def is_anomaly(self, score: float) -> bool:
        return self.forest.is_anomaly(score)


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
