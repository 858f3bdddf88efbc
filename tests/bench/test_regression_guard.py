"""Regression guard for speed: a small `livefit bench` run in `make test`. It compares the job
with the in-process limit measured in the same run (a ratio, not an absolute time: these
machines are noisy) and fails if the job falls well below where it is now.

Measured here (2 cores, Python thread mode, the default): job / limit = 0.27 on this small
workload (3,400 interactions, where start-up and the first checkpoint weigh more) and 0.43-0.53
on 17k-interaction runs; before the job keyed changes in the JVM (two Python stages) it was
0.15-0.19. Then orjson and unrounded label features cut the per-event Python work by a third:
the limit here went from 5,024/s to 7,134-7,579/s, while the job stayed where it was (1,658/s
before, 1,464-1,595/s after): its time is mostly Flink's per-call cost (state, timers, rows
into the JVM and the sink chained behind it). So the ratio here is now 0.19-0.22 (three runs).
The guard sits at 0.12: below run-to-run noise, at what a return to two Python stages, to
process mode or to pickling whole objects into state would give against the faster limit.

Session 25: on a slow day of this machine kind that small workload (200 customers, 3,695
interactions, ~1.5 s of scoring, mostly the JIT's warm-up) measured 0.09-0.17, both with the
session's change and without it (0.115 and 0.131 for the tree before): the guard failed on noise.
It now runs 1,000 customers (17,112 interactions, ~4-5 s of scoring, ~40 s in all): 0.19-0.30
over five runs the same day, so 0.12 is again below the noise and above a real regression.
Session 35 (a normal day, today's tree): 0.415 and 0.438; process mode 0.225, the states never
written back at flush markers 0.399. So 0.12 catches a job several times slower (e.g. sklearn
called per event), not a mode or a state layout that costs it half; at 3,000 customers (+11 s)
five runs spread over 0.35-0.52, too wide for a tighter guard.

It also holds the job's labels to the in-process loop's: the same count, and positives within
2 % (equal when measured: 2,001 of 17,112 here, 4,030 of 34,213 on the 2k-customer workload); and
the job's features to offline training's, exactly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.run import measure_job
from livefit.config import DataConfig, load_config

pytestmark = pytest.mark.e2e

GUARD_JOB_OVER_LIMIT = 0.12


def test_job_keeps_its_ratio_to_the_in_process_limit():
    run_dir = Path(__file__).resolve().parents[2] / ".livefit" / f"bench-guard-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        cfg = load_config(None, env={"LIVEFIT_STACK__RUN_DIR": str(run_dir)})
        r = measure_job(cfg, run_dir, DataConfig(customers=1000, products=150, history_days=60), print,
                        naive_extras=False)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"\n[bench-guard] job {r['job_eps']:.0f}/s, limit {r['limit_eps']:.0f}/s (after the job "
          f"{r['limit_after_eps']:.0f}/s), naive "
          f"{r['naive_eps']:.0f}/s, job/limit {r['ratio_job_limit']:.3f} (guard {GUARD_JOB_OVER_LIMIT})")
    assert r["interactions"] > 3000
    assert r["ratio_job_limit"] >= GUARD_JOB_OVER_LIMIT
    # The job learns what the in-process loop learns: a watermark that passed orders not yet
    # read (a split taken for idle too early) would turn their positives into negatives.
    job, limit = r["job_by_mode"][r["job_mode"]], r["limit"]
    print(f"[bench-guard] labels: job {job['labels']} ({job['positives']} positive), "
          f"in-process {limit['labels']} ({limit['positives']} positive)")
    assert job["labels"] == limit["labels"] == r["interactions"]
    assert abs(job["positives"] - limit["positives"]) <= 0.02 * limit["positives"]
    # ...and learns it while it catches up, as the loop does: negatives fall due as event time
    # passes their horizon, not only once the backlog is read. When the control topic shared the
    # changes' source, its empty split held the watermark back under backpressure: 418 of 3,695
    # labels (the positives, which need no timer) came before the last score on the 200-customer
    # workload then; 3,408 after; on today's 1,000 customers 16,768-16,819 of 17,112.
    print(f"[bench-guard] labels before the last score: {job['labels_before_last_score']}")
    assert job["labels_before_last_score"] >= job["labels"] / 2
    # What used the cores while it scored: the job (its JVM and Python) above all.
    print(f"[bench-guard] cores used from the first to the last score: {r['job_cpu_cores']}")
    assert r["job_cpu_cores"]["job"] > r["job_cpu_cores"]["broker"]
    # One feature definition, offline and online (issue 3): every labelled interaction's
    # features as the running job scored them (its label records carry them) equal those offline
    # training computes by replaying the same history in commit order (udfs.replay), and the
    # in-process loop's too. The job gets there because every change comes from one topic in
    # commit order and each shard sees the product rows in that order (ShardRouter.java); when
    # it read one topic per table, 10-12 of 3,695 were equal on the 200-customer workload (session 13).
    parity, loop_parity = job["feature_parity"], limit["feature_parity"]
    print(f"[bench-guard] features as offline training computes them: job {parity['identical']} of "
          f"{parity['compared']}, in-process {loop_parity['identical']} of {loop_parity['compared']}; "
          f"scored without product: job {parity['scored_without_product']}, "
          f"in-process {limit['scored_without_product']}")
    assert loop_parity["identical"] == loop_parity["compared"] == r["interactions"]
    assert parity["identical"] == parity["compared"] == r["interactions"]
    assert parity["scored_without_product"] == limit["scored_without_product"] == 0
