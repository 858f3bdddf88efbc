"""The generator's ground truth: what the quality report's bounds assume of it holds."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from livefit.config import DataConfig
from livefit.datagen import SEGMENTS, build_world, personal_prior


def test_personal_prior_describes_how_the_generator_draws_each_propensity():
    world = build_world(DataConfig(customers=4000, seed=3), datetime(2026, 11, 1, tzinfo=UTC))

    def personal(c, frac):
        return world.bias_at(c, frac) + world.segment_shift_at(c, frac)

    by_prior: dict[tuple, list[tuple[float, float]]] = {}
    for c in range(len(world.customers)):
        start, slope = personal(c, 0.0), personal(c, 1.0) - personal(c, 0.0)
        assert abs(personal(c, 0.3) - (start + 0.3 * slope)) < 1e-12  # a straight line
        by_prior.setdefault(tuple(personal_prior(SEGMENTS.index(world.customers[c]["segment"]),
                                                 world.segment_drift)), []).append((start, slope))
    assert len(by_prior) == 3  # one prior per segment
    for (start_mean, start_sd, slope_mean, slope_sd), drawn in by_prior.items():
        starts, slopes = np.asarray(drawn).T
        n = len(drawn)  # ~1,300: means within ~4 standard errors, spreads within 10 %
        assert abs(starts.mean() - start_mean) < 4 * start_sd / n**0.5
        assert abs(slopes.mean() - slope_mean) < 4 * slope_sd / n**0.5
        assert abs(starts.std() / start_sd - 1) < 0.1 and abs(slopes.std() / slope_sd - 1) < 0.1
