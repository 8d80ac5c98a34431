"""The session's figures for tests/reliability: faults injected, jobs checked, rows lost, duplicates.

Every check and watcher adds to `LEDGER`; conftest.py prints it at the end of the run and writes it
as JSON to $KNAS_RELIABILITY_SUMMARY when that is set (docs/reliability.md quotes it).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Ledger:
    faults: Counter = field(default_factory=Counter)  # kind -> times injected
    jobs: Counter = field(default_factory=Counter)  # final status -> jobs checked
    candidates: int = 0  # candidates the jobs asked for
    score_rows: int = 0  # candidate rows with a stored score
    lost: int = 0  # candidates with no row, or (in a succeeded job) no score
    duplicates: int = 0  # extra candidate rows for an arch, extra training rows for a candidate, repeated epochs
    trainings: int = 0
    transitions: int = 0  # job state changes observed by the watchers
    backwards: int = 0  # state changes that went backwards (must stay 0)
    http: Counter = field(default_factory=Counter)  # status class -> answers clients got while faults were injected
    fuzz: Counter = field(default_factory=Counter)  # status class -> answers to generated (schemathesis) requests
    notes: list[str] = field(default_factory=list)

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"faults_injected": dict(self.faults), "faults_total": sum(self.faults.values()),
                "jobs": dict(self.jobs), "candidates": self.candidates, "score_rows": self.score_rows,
                "rows_lost": self.lost, "duplicates": self.duplicates, "trainings": self.trainings,
                "state_changes_observed": self.transitions, "state_changes_backwards": self.backwards,
                "http_during_faults": dict(self.http), "fuzz_requests": dict(self.fuzz), "notes": self.notes}

    def summary(self) -> str:
        d = self.as_dict()
        faults = ", ".join(f"{k} x{v}" for k, v in sorted(self.faults.items())) or "none"
        jobs = ", ".join(f"{k} {v}" for k, v in sorted(self.jobs.items())) or "none"
        http = ", ".join(f"{k}: {v}" for k, v in sorted(self.http.items())) or "none"
        fuzz = ", ".join(f"{k}: {v}" for k, v in sorted(self.fuzz.items())) or "none"
        return "\n".join([
            f"faults injected: {d['faults_total']} ({faults})",
            f"jobs checked: {sum(self.jobs.values())} ({jobs})",
            f"candidates: {self.candidates}, score rows: {self.score_rows}, trainings: {self.trainings}",
            f"rows lost: {self.lost}, duplicates: {self.duplicates}",
            f"job state changes observed: {self.transitions}, backwards: {self.backwards}",
            f"HTTP answers clients got while faults were injected: {http}",
            f"generated requests (schemathesis): {sum(self.fuzz.values())} ({fuzz})",
            *self.notes,
        ])


LEDGER = Ledger()


def write_summary(path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps(LEDGER.as_dict(), indent=2) + "\n")
