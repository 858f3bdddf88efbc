"""Per-customer online model: a residual logistic model on top of the offline model's logit.

``p = sigmoid(offline_logit + b + w . x)`` with ``x`` standardised by the offline model's scaler.
The residual is a Bayesian logistic regression with a diagonal Gaussian (Laplace) posterior, as
in online ad-click models: the prior is ``N(0, 1/prior_precision)`` per weight, so a new customer
has ``w = 0, b = 0`` and starts *exactly* at the offline model, and the weights only move as far
as the customer's own labels push them (the MAP of an L2-penalised fit, i.e. shrunk toward zero).
Each resolved label takes one Newton step per coordinate and adds its curvature ``p(1-p)x^2`` to
that coordinate's precision, so the step size ``1/precision`` falls as evidence accumulates:
a step-size schedule that needs no tuning of a learning rate and is invariant to feature scale.
Plain numpy floats: sklearn's ``partial_fit`` costs ~700 us per row, this costs a few us.

The priors are strong (``w``: precision 300, i.e. a residual weight of 0.1 needs the evidence of
~300 informative labels; ``b``: precision 16, a personal offset of about +-0.25 in logit): a
customer has only a few dozen labels, most of them negative, and the offline model already sees
their history through the profile features (order rate, affinities), which move with the same
orders the residual learns from. Weaker priors (4 / 100) gained less and lost on more seeds: the
values were chosen on validation seeds 101-105, not on the report's seeds (see docs/quality).

>>> m = OnlineResidual.zeros(2)
>>> m.predict_proba_one([1.0, 0.0], offline_logit=0.0)
0.5
>>> m.learn_one([1.0, 0.0], offline_logit=0.0, y=1)  # returns p just before the step
0.5
>>> # g = -0.5, curvature 0.25: b = 0.5 / (16 + 0.25); w[0] = 0.5 * 1 / (300 + 0.25)
>>> round(m.b, 6), round(float(m.w[0]), 6), m.n_updates
(0.030769, 0.001665, 1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PRIOR_PRECISION_W = 300.0
PRIOR_PRECISION_B = 16.0


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def logit(p: float, eps: float = 1e-6) -> float:
    p = min(max(p, eps), 1.0 - eps)
    return math.log(p / (1.0 - p))


@dataclass(slots=True)
class OnlineResidual:
    w: np.ndarray
    b: float = 0.0
    n_updates: int = 0
    precision_w: np.ndarray | None = None  # None until the first update: the prior
    precision_b: float = PRIOR_PRECISION_B  # set from the prior at the first update

    @classmethod
    def zeros(cls, n_features: int) -> OnlineResidual:
        return cls(np.zeros(n_features, dtype=np.float64))

    def decision_one(self, x: Sequence[float] | np.ndarray, offline_logit: float) -> float:
        if self.n_updates == 0:
            return offline_logit  # exactly the offline model (and no dot product to pay for)
        return offline_logit + self.b + float(np.dot(self.w, x))

    def predict_proba_one(self, x: Sequence[float] | np.ndarray, offline_logit: float) -> float:
        return sigmoid(self.decision_one(x, offline_logit))

    def learn_one(self, x: Sequence[float] | np.ndarray, offline_logit: float, y: int,
                  prior_precision_w: float = PRIOR_PRECISION_W,
                  prior_precision_b: float = PRIOR_PRECISION_B) -> float:
        """One Newton step on the log loss for label ``y`` (1 = bought within the horizon).

        Returns the probability the model gave just before the step.
        """
        xv = np.asarray(x, dtype=np.float64)
        p = self.predict_proba_one(xv, offline_logit)
        g = p - float(y)
        curvature = max(p * (1.0 - p), 1e-6)
        precision_w = self.precision_w
        if precision_w is None:  # the first label: the posterior starts at the prior
            precision_w = self.precision_w = np.full(len(xv), prior_precision_w)
            self.precision_b = prior_precision_b
        # One scratch array for both steps (runs per label; the same arithmetic, in the same
        # order, as precision_w += curvature * x * x and w -= g * x / precision_w).
        step = curvature * xv
        step *= xv
        precision_w += step
        self.precision_b += curvature
        np.multiply(xv, g, out=step)
        step /= precision_w
        self.w -= step
        self.b -= g / self.precision_b
        self.n_updates += 1
        return p
