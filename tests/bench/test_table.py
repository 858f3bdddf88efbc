"""The bench's printed table: a throughput-only result (no latency, no state at scale) prints,
and thread mode's memory is reported as the JVM's with Python inside it, not as 0 MB of
Python workers."""

from __future__ import annotations

from typing import Any

import pytest

from bench.run import print_table


def _job(eps: float, jvm_mb: float, workers_mb: float) -> dict[str, Any]:
    return {"eps": eps, "seconds": 60.0, "learned_eps": eps, "learned_seconds": 61.0, "labels": 10,
            "labels_before_last_score": 10, "positives": 1,
            "feature_parity": {"identical": 10, "compared": 10, "scored_without_product": 0},
            "memory_peak": {"jvm_mb": jvm_mb, "python_workers_mb": workers_mb, "job_client_mb": 200},
            "checkpoints": {"size_bytes_last": 1000, "duration_ms_median": 50}}


def _result(by_mode: dict[str, dict[str, Any]]) -> dict[str, Any]:
    headline = next(iter(by_mode))
    return {"job_mode": headline, "job_eps": by_mode[headline]["eps"], "job_learned_eps": 3000.0,
            "job_by_mode": by_mode, "limit": {"feature_parity": {"identical": 10, "compared": 10}},
            "limit_eps": 8000.0, "naive_eps": 400.0, "ratio_job_limit": 0.375, "ratio_job_naive": 7.5,
            "memory_peak": by_mode[headline]["memory_peak"], "checkpoints": by_mode[headline]["checkpoints"],
            "state_bytes_per_customer": {"mean": 1000, "max": 1600}}


def test_a_throughput_only_result_prints_without_latency_or_scale(capsys: pytest.CaptureFixture[str]):
    print_table(_result({"thread": _job(3000.0, 900, 0.0)}))
    out = capsys.readouterr().out
    assert "job / limit" in out and "0.375" in out
    assert "latency" not in out and "rocksdb" not in out
    assert "JVM with the embedded Python 900" in out
    assert "Python workers 0" not in out


def test_process_mode_reports_its_python_workers_apart(capsys: pytest.CaptureFixture[str]):
    print_table(_result({"thread": _job(3000.0, 900, 0.0), "process": _job(1800.0, 575, 297)}))
    out = capsys.readouterr().out
    assert "peak RSS, process mode (MB)" in out
    assert "JVM 575 / Python workers 297" in out


def test_the_limit_and_the_naive_measured_after_the_job_are_shown_beside_the_first(
        capsys: pytest.CaptureFixture[str]):
    r = _result({"thread": _job(3000.0, 900, 0.0)})
    r.update(limit_after_eps=6000.0, ratio_limit_after_before=0.75, ratio_job_limits_mean=0.4286,
             naive_after_eps=600.0, ratio_naive_after_before=1.5, ratio_job_naives_mean=6.0)
    print_table(r)
    out = capsys.readouterr().out
    assert "8,000 (after the job: 6,000, x0.75)" in out
    assert "0.375 (against the mean of the limit before and after: 0.429)" in out
    assert "400 (after the job: 600, x1.50)" in out
    assert "7.50 (against the mean of the naive before and after: 6.00)" in out
