"""Rolling quality of each model on the labels the job resolves: log loss, ROC-AUC, calibration.

Every resolved label carries the probability each model gave *when the event was scored*
(progressive validation: test, then train). :class:`RollingQuality` keeps the last ``window``
of them per model and summarises them on demand; the job publishes a summary to the metrics topic
every ``every`` labels and exposes the numbers as Flink gauges.

>>> q = RollingQuality(window=4)
>>> for p, y in [(0.9, 1), (0.2, 0), (0.7, 1), (0.4, 0)]:
...     q.add("offline", p, y)
>>> s = q.summary()["offline"]
>>> s["labels"], s["roc_auc"], round(s["log_loss"], 3), s["positive_rate"]
(4, 1.0, 0.299, 0.5)
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

CALIBRATION_BINS = 10


def roc_auc(ps: list[float], ys: list[int]) -> float | None:
    """Mann-Whitney ROC-AUC with ties counted half; None when only one class is present."""
    n_pos = sum(ys)
    n_neg = len(ys) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(ps)), key=ps.__getitem__)
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and ps[order[j + 1]] == ps[order[i]]:
            j += 1
        avg_rank = (i + j) / 2.0 + 1.0
        rank_sum += avg_rank * sum(ys[order[k]] for k in range(i, j + 1))
        i = j + 1
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def log_loss(ps: list[float], ys: list[int], eps: float = 1e-6) -> float:
    total = 0.0
    for p, y in zip(ps, ys, strict=True):
        p = min(max(p, eps), 1.0 - eps)
        total -= math.log(p if y else 1.0 - p)
    return total / max(len(ps), 1)


def expected_calibration_error(ps: list[float], ys: list[int], bins: int = CALIBRATION_BINS) -> float:
    """Mean |predicted - observed| over equal-width probability bins, weighted by bin size."""
    sums = [[0.0, 0.0, 0] for _ in range(bins)]
    for p, y in zip(ps, ys, strict=True):
        b = sums[min(int(p * bins), bins - 1)]
        b[0] += p
        b[1] += y
        b[2] += 1
    n = max(len(ps), 1)
    return sum(abs(sp - sy) for sp, sy, c in sums if c) / n


def metrics_record(summary: dict[str, dict[str, Any]], subtask: int, model: dict[str, Any],
                   now_ms: int) -> dict[str, Any]:
    """The metrics topic's record: one subtask's rolling quality per model at ``now_ms``."""
    return {"kind": "quality", "subtask": subtask, "model": model, "at": now_ms,
            "models": summary}


class RollingQuality:
    def __init__(self, window: int = 2000):
        self.window = window
        self.seen: dict[str, int] = {}
        self._ps: dict[str, deque[float]] = {}
        self._ys: dict[str, deque[int]] = {}

    def add(self, model: str, p: float, y: int) -> None:
        if model not in self._ps:
            self._ps[model] = deque(maxlen=self.window)
            self._ys[model] = deque(maxlen=self.window)
            self.seen[model] = 0
        self._ps[model].append(p)
        self._ys[model].append(int(y))
        self.seen[model] += 1

    def summary(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for model, pq in self._ps.items():
            ps, ys = list(pq), list(self._ys[model])
            auc = roc_auc(ps, ys)
            out[model] = {
                "labels": len(ps),
                "labels_total": self.seen[model],
                "log_loss": round(log_loss(ps, ys), 5),
                "roc_auc": None if auc is None else round(auc, 5),
                "mean_p": round(sum(ps) / max(len(ps), 1), 5),
                "positive_rate": round(sum(ys) / max(len(ys), 1), 5),
                "calibration_error": round(expected_calibration_error(ps, ys), 5),
            }
        return out
