"""Validity and compute reports: hand-checkable numbers."""
from __future__ import annotations

import pytest

from worker.energy import measure_energy
from worker.report import compute, validity


def test_validity_needs_five_accuracies():
    report = validity([1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], "mgm")
    assert report.available is False and "at least 5" in report.note


def test_validity_perfect_proxy_and_the_params_baseline():
    acc = [10, 20, 30, 40, 50]
    report = validity([1, 2, 3, 4, 5], [5, 4, 3, 2, 1], acc, "mgm")
    assert report.kendall == 1.0 and report.spearman == 1.0
    assert report.params_kendall == -1.0
    assert "worse than parameter count" not in report.note


def test_validity_says_plainly_when_params_beat_the_proxy():
    acc = [10, 20, 30, 40, 50]
    report = validity([5, 4, 3, 2, 1], [1, 2, 3, 4, 5], acc, "mgm")
    assert report.kendall == -1.0
    assert "mgm ranked worse than parameter count" in report.note


def test_constant_scores_give_no_correlation_not_nan():
    report = validity([1, 1, 1, 1, 1], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], "mgm")
    assert report.kendall is None


def test_compute_accounting():
    report = compute(scoring_seconds=10.0, n_scored=100, training_seconds=50.0, n_trained=5,
                     n_candidates=100, device="cpu")
    assert report.scoring_seconds_per_candidate == 0.1 and report.training_seconds_per_candidate == 10.0
    assert report.scoring_to_training_ratio == pytest.approx(0.01)
    assert report.train_every_candidate_seconds == 1000.0 and report.seconds_saved == 940.0
    assert report.energy_source == "unknown" and report.energy_joules is None


def test_energy_is_unknown_rather_than_made_up_without_a_counter(monkeypatch):
    import worker.energy as energy

    monkeypatch.setattr(energy, "RAPL_GLOB", "/nonexistent/*")
    with measure_energy("cpu") as reading:
        sum(range(1000))
    assert reading.joules is None and reading.source == "unknown"


def test_energy_from_a_readable_counter(monkeypatch, tmp_path):
    import worker.energy as energy

    counter = tmp_path / "intel-rapl:0"
    counter.mkdir()
    (counter / "energy_uj").write_text("1000000")
    monkeypatch.setattr(energy, "RAPL_GLOB", str(tmp_path / "intel-rapl:[0-9]*" / "energy_uj"))
    with measure_energy("cpu") as reading:
        (counter / "energy_uj").write_text("3500000")
    assert reading.source == "rapl" and reading.joules == pytest.approx(2.5)
