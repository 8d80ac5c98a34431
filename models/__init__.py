"""The results store: SQLAlchemy 2 ORM classes and the session factory."""
from .base import Base, new_id, utcnow
from . import repository
from .db import SchemaError, Store, ensure_schema, make_engine, migrate
from .states import OPEN_TRAINING_STATES, STARTED_STATES, CandidateState, JobState, TrainingState
from .tables import (
    ACTIVE_STATES,
    CANDIDATE_STATES,
    FINAL_STATES,
    JOB_STATES,
    RETRAIN,
    ScoreCacheEntry,
    TRAINING_STATES,
    Candidate,
    DatasetRecord,
    Job,
    Training,
    User,
    Worker,
)

__all__ = [
    "ACTIVE_STATES", "CANDIDATE_STATES", "FINAL_STATES", "JOB_STATES", "RETRAIN", "TRAINING_STATES",
    "OPEN_TRAINING_STATES", "STARTED_STATES", "CandidateState", "JobState", "TrainingState",
    "Base", "Candidate", "DatasetRecord", "Job", "ScoreCacheEntry", "Store", "Training", "User", "Worker", "SchemaError",
    "ensure_schema", "make_engine", "migrate", "new_id", "repository", "utcnow",
]
