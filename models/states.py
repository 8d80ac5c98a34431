"""Job, candidate and training states: one definition, torch-free.

The store keeps them as strings (so SQL and old rows need nothing special); these `str` enums
compare equal to those strings, give the OpenAPI schema its enum lists, and the dashboard reads
them from `GET /v1/states` instead of keeping a copy.
"""
from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    """A `str` enum that prints as its value (3.10 has no enum.StrEnum)."""

    def __str__(self) -> str:
        return self.value


class JobState(StrEnum):
    QUEUED = "queued"
    SCORING = "scoring"
    RANKING = "ranking"
    TRAINING = "training"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

class CandidateState(StrEnum):
    PENDING = "pending"
    SCORED = "scored"
    FAILED = "failed"

class TrainingState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

JOB_STATES = tuple(s.value for s in JobState)
ACTIVE_STATES = (JobState.QUEUED.value, JobState.SCORING.value, JobState.RANKING.value, JobState.TRAINING.value)
STARTED_STATES = ACTIVE_STATES[1:]  # a queued job is waiting, not stalled
FINAL_STATES = (JobState.SUCCEEDED.value, JobState.FAILED.value, JobState.CANCELLED.value)
CANDIDATE_STATES = tuple(s.value for s in CandidateState)
TRAINING_STATES = tuple(s.value for s in TrainingState)
OPEN_TRAINING_STATES = (TrainingState.PENDING.value, TrainingState.RUNNING.value)
