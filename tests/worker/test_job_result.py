"""`jobs.result` has one typed shape (knas/result.py), written by the pipeline and read by the API."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from knas.jobspec import JobSpec
from knas.result import JobResult
from models import Job
from worker import jobs, runner

TINY = {"space": "nats-tss", "dataset": "tiny", "candidates": {"strategy": "random", "n": 6},
        "proxy": {"name": "mgm", "batch_size": 8}, "seed": 3, "top_k": 2}


def stored_result(store, job_id: str) -> dict:
    with store.session() as s:
        return s.get(Job, job_id).result


@pytest.mark.parametrize("final", [{"mode": "none"}, {"mode": "train", "epochs": 1}])
def test_the_stored_result_is_a_job_result_and_round_trips(store, runtime, final):
    job_id = jobs.create_job(store, JobSpec.model_validate({**TINY, "final": final}))
    assert runner.run_job(store, runtime, job_id) == "succeeded"
    raw = stored_result(store, job_id)
    result = JobResult.model_validate(raw)
    assert result.stored() == raw  # the JSON the store kept reads back to the same model
    assert [c.rank for c in result.top_k] == [1, 2] and result.compute is not None
    if final["mode"] == "none":
        assert result.selected_by == "score" and result.winner == result.top_k[0]
        assert result.winner.valid_acc is None and result.validity.available is False
    else:
        assert result.selected_by == "valid_acc"
        assert result.winner.valid_acc == max(c.valid_acc for c in result.top_k)
        assert result.compute.training_seconds > 0


def test_a_result_stored_by_an_older_version_still_reads():
    old = {"winner": None, "selected_by": "score", "top_k": [], "compute_seconds": {"scoring": 1.0, "training": 0.0}}
    result = JobResult.model_validate(old)
    assert result.cut is None and result.export is None and result.retrain is None
    assert JobResult.model_validate({"winner": None}).top_k == []


def test_a_malformed_result_is_rejected_not_passed_on():
    with pytest.raises(ValidationError, match="top_k"):
        JobResult.model_validate({"winner": None, "selected_by": "score", "top_k": "rank 1"})
