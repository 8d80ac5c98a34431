"""The pipeline steps over a real (SQLite) store: once-only storage, exact transitions, redelivery."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from knas.jobspec import JobSpec
from models import Candidate, Job, Training
from models.queries import progress
from worker import jobs, pipeline, runner
from worker.jobs import SpecError

TINY = {"space": "nats-tss", "dataset": "tiny", "candidates": {"strategy": "random", "n": 6},
        "proxy": {"name": "mgm", "batch_size": 8}, "seed": 3, "top_k": 2,
        "final": {"mode": "train", "epochs": 1}}


def spec(**changes) -> JobSpec:
    return JobSpec.model_validate({**TINY, **changes})


def scores(store, job_id) -> dict[str, float]:
    with store.session() as s:
        return dict(s.execute(select(Candidate.arch, Candidate.score).where(Candidate.job_id == job_id)).all())


def test_whole_job_runs_to_succeeded_with_a_winner_from_the_top_k(store, runtime):
    events = []
    job_id = jobs.create_job(store, spec())
    status = runner.run_job(store, runtime, job_id, chunk_size=4, on_progress=lambda e, d: events.append(e))
    assert status == "succeeded"
    with store.session() as s:
        job = s.get(Job, job_id)
        counts = progress(s, job_id)
        ranks = s.scalars(select(Candidate.rank).where(Candidate.job_id == job_id).order_by(Candidate.rank)).all()
        trainings = s.scalars(select(Training).where(Training.job_id == job_id)).all()
        trained_ranks = {t.candidate.rank for t in trainings}
    assert counts["scored"] == 6 and counts["pending"] == 0 and counts["trained"] == 2
    assert ranks == [1, 2, 3, 4, 5, 6]
    assert trained_ranks == {1, 2}
    assert all(len(t.epochs) == 1 and t.valid_acc is not None and t.test_acc is not None for t in trainings)
    winner = job.result["winner"]
    assert winner["valid_acc"] == max(t.valid_acc for t in trainings)
    assert set(job.timings) == {"scoring", "training"} and job.timings["scoring"]["seconds"] >= 0
    assert job.result["compute_seconds"]["scoring"] > 0 and job.result["compute_seconds"]["training"] > 0
    assert events.count("scored") == 6 and events.count("trained") == 2 and "epoch" in events


def test_ranks_follow_scores(store, runtime):
    job_id = jobs.create_job(store, spec(final={"mode": "none"}))
    assert runner.run_job(store, runtime, job_id) == "succeeded"
    with store.session() as s:
        rows = s.execute(select(Candidate.rank, Candidate.score).where(Candidate.job_id == job_id)
                         .order_by(Candidate.rank)).all()
        result = s.get(Job, job_id).result
    ordered = [score for _, score in rows]
    assert ordered == sorted(ordered, reverse=True)
    assert result["selected_by"] == "score" and result["winner"]["rank"] == 1


def test_scores_do_not_depend_on_order_or_chunking(store, runtime):
    a = jobs.create_job(store, spec(final={"mode": "none"}))
    b = jobs.create_job(store, spec(final={"mode": "none"}))
    runner.run_job(store, runtime, a, chunk_size=6)
    chunks = pipeline.start_job(store, b, chunk_size=1)
    for chunk in reversed(chunks):
        pipeline.score_chunk(store, runtime, b, chunk)
    assert scores(store, a) == pytest.approx(scores(store, b), rel=1e-6)


def test_redelivered_chunk_stores_nothing_twice(store, runtime):
    job_id = jobs.create_job(store, spec(final={"mode": "none"}))
    (chunk,) = pipeline.start_job(store, job_id, chunk_size=10)
    first = pipeline.score_chunk(store, runtime, job_id, chunk[:3])
    before = scores(store, job_id)
    again = pipeline.score_chunk(store, runtime, job_id, chunk)  # redelivery of an overlapping chunk
    assert first["scored"] == 3 and again["scored"] == 3 and again["skipped"] == 3
    after = scores(store, job_id)
    assert all(after[arch] == value for arch, value in before.items() if value is not None)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Candidate).where(Candidate.job_id == job_id)) == 6
    # start_job on redelivery returns nothing left to score, and the job moved on exactly once
    assert pipeline.start_job(store, job_id) == []
    assert jobs.job_status(store, job_id) == "ranking"
    assert pipeline.finish_scoring(store, job_id) is False


def test_scoring_to_ranking_waits_for_the_last_candidate(store, runtime):
    job_id = jobs.create_job(store, spec())
    (chunk,) = pipeline.start_job(store, job_id, chunk_size=10)
    pipeline.score_chunk(store, runtime, job_id, chunk[:5])
    assert jobs.job_status(store, job_id) == "scoring"
    pipeline.score_chunk(store, runtime, job_id, chunk[5:])
    assert jobs.job_status(store, job_id) == "ranking"


def test_rank_is_idempotent_and_creates_trainings_once(store, runtime):
    job_id = jobs.create_job(store, spec())
    for chunk in pipeline.start_job(store, job_id):
        pipeline.score_chunk(store, runtime, job_id, chunk)
    first = pipeline.rank(store, job_id)
    second = pipeline.rank(store, job_id)  # redelivered: returns the same untrained candidates
    assert len(first) == 2 and sorted(first) == sorted(second)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Training).where(Training.job_id == job_id)) == 2


def test_cancel_stops_scoring_between_candidates(store, runtime):
    job_id = jobs.create_job(store, spec())
    (chunk,) = pipeline.start_job(store, job_id, chunk_size=10)
    pipeline.score_chunk(store, runtime, job_id, chunk[:2])
    assert jobs.cancel_job(store, job_id)
    report = pipeline.score_chunk(store, runtime, job_id, chunk[2:])
    assert report["scored"] == 0 and report["cancelled"] == 1
    assert jobs.job_status(store, job_id) == "cancelled"
    assert jobs.cancel_job(store, job_id) is False  # no state goes backwards or repeats
    assert pipeline.rank(store, job_id) == []


def test_a_cancel_mid_chunk_stops_at_the_next_batch(store, runtime, monkeypatch):
    monkeypatch.setattr(pipeline, "FLUSH_SECONDS", 0.0)  # store after every candidate
    job_id = jobs.create_job(store, spec())
    (chunk,) = pipeline.start_job(store, job_id, chunk_size=10)

    def cancel_after_first(event, data):
        jobs.cancel_job(store, job_id)

    report = pipeline.score_chunk(store, runtime, job_id, chunk, on_progress=cancel_after_first)
    assert (report["scored"], report["cancelled"]) == (1, 1)  # the second candidate's batch found it cancelled
    with store.session() as s:
        statuses = s.scalars(select(Candidate.status).where(Candidate.job_id == job_id)).all()
        assert s.get(Job, job_id).candidates_scored == 1
    assert sorted(statuses) == ["pending"] * 5 + ["scored"]


def test_scores_wait_for_their_batch_and_a_crash_loses_only_the_batch(store, runtime, monkeypatch):
    import scorer

    monkeypatch.setattr(pipeline, "FLUSH_SECONDS", 3600.0)  # one batch: the whole chunk
    job_id = jobs.create_job(store, spec())
    (chunk,) = pipeline.start_job(store, job_id, chunk_size=10)
    real, calls = scorer.score_arch, []

    def dies_on_the_fourth(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 4:
            raise SystemExit("worker killed")  # not a candidate's failure: the process goes
        return real(*args, **kwargs)

    monkeypatch.setattr(scorer, "score_arch", dies_on_the_fourth)
    with pytest.raises(SystemExit):
        pipeline.score_chunk(store, runtime, job_id, chunk)
    with store.session() as s:  # three were scored, none stored: their batch had not been written
        assert s.get(Job, job_id).candidates_scored == 0
    monkeypatch.setattr(scorer, "score_arch", real)
    report = pipeline.score_chunk(store, runtime, job_id, chunk)  # the redelivered chunk
    assert report["scored"] == 6 and report["finished"] == 1
    with store.session() as s:
        assert s.get(Job, job_id).candidates_scored == 6
        assert s.scalar(select(func.count()).select_from(Candidate).where(
            Candidate.job_id == job_id, Candidate.status == "scored")) == 6


def test_cancel_during_training_stops_after_the_current_epoch(store, runtime):
    job_id = jobs.create_job(store, spec(final={"mode": "train", "epochs": 5}))
    for chunk in pipeline.start_job(store, job_id):
        pipeline.score_chunk(store, runtime, job_id, chunk)
    top = pipeline.rank(store, job_id)

    def cancel_after_first_epoch(event, data):
        if event == "epoch":
            jobs.cancel_job(store, job_id)

    status = pipeline.train_candidate(store, runtime, job_id, top[0], on_progress=cancel_after_first_epoch)
    assert status == "failed"
    with store.session() as s:
        training = s.scalar(select(Training).where(Training.candidate_id == top[0]))
        assert len(training.epochs) == 1
        assert s.get(Job, job_id).status == "cancelled"


def test_missing_dataset_fails_the_job_with_the_reason(store, tmp_path):
    from worker.runtime import Runtime

    job_id = jobs.create_job(store, spec(dataset="cifar10"))
    runtime = Runtime(data_dir=tmp_path / "no-data", device="cpu")
    with pytest.raises(FileNotFoundError):
        runner.run_job(store, runtime, job_id)
    with store.session() as s:
        job = s.get(Job, job_id)
    assert job.status == "failed" and "cifar10" in job.error and str(tmp_path / "no-data") in job.error


def test_unknown_names_are_spec_errors(store):
    with pytest.raises(SpecError, match="unknown proxy 'nope'"):
        jobs.create_job(store, spec(proxy={"name": "nope"}))
    with pytest.raises(SpecError, match="unknown dataset 'mnist'"):
        jobs.create_job(store, spec(dataset="mnist"))
    with pytest.raises(SpecError, match="benchmark mode"):
        jobs.create_job(store, spec(final={"mode": "benchmark"}))


def test_benchmark_mode_looks_up_the_top_k(store, tmp_path):
    from tests.support.nats_fixture import write_tss_benchmark
    from scorer.spaces import get_space
    from worker.runtime import Runtime

    space = get_space("nats-tss")
    archs = [space.arch(i) for i in (0, 1, 2, 3)]
    records = {a: {"cifar10": {"valid": 80.0 + i, "test": 85.0 + i}} for i, a in enumerate(archs)}
    bench_dir = write_tss_benchmark(tmp_path / "bench", records)
    # Probing cifar10 needs its files; score on a tiny fake CIFAR set written in the real format.
    data_dir = tmp_path / "data"
    write_fake_cifar10(data_dir)
    runtime = Runtime(data_dir=data_dir, benchmark_dir=bench_dir, device="cpu")
    job_id = jobs.create_job(store, spec(dataset="cifar10", candidates={"strategy": "list", "archs": archs},
                                            top_k=3, final={"mode": "benchmark"}))
    assert runner.run_job(store, runtime, job_id) == "succeeded"
    with store.session() as s:
        job = s.get(Job, job_id)
    top = job.result["top_k"]
    assert len(top) == 3
    for entry in top:
        i = archs.index(entry["arch"])
        assert entry["valid_acc"] == 80.0 + i and entry["test_acc"] == 85.0 + i
    assert job.result["winner"]["valid_acc"] == max(e["valid_acc"] for e in top)


def write_fake_cifar10(root) -> None:
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, 20))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


def test_ensemble_job_stores_components_and_ranks_by_their_aggregate(store, runtime):
    from scorer.proxies.ensemble import COMPONENTS, aggregate

    job_id = jobs.create_job(store, spec(proxy={"name": "ensemble", "batch_size": 8}, final={"mode": "none"}))
    assert runner.run_job(store, runtime, job_id) == "succeeded"
    with store.session() as s:
        rows = s.execute(select(Candidate.rank, Candidate.score, Candidate.scores)
                         .where(Candidate.job_id == job_id).order_by(Candidate.id)).all()
    components = {name: [r.scores[name] for r in rows] for name in COMPONENTS}
    assert [r.score for r in rows] == pytest.approx(aggregate(components))
    ranked = sorted(rows, key=lambda r: r.rank)
    assert [r.score for r in ranked] == sorted((r.score for r in rows), reverse=True)


def test_finished_job_reports_validity_and_compute(store, runtime):
    job_id = jobs.create_job(store, spec(top_k=5))
    assert runner.run_job(store, runtime, job_id) == "succeeded"
    with store.session() as s:
        result = s.get(Job, job_id).result
    validity, compute = result["validity"], result["compute"]
    assert validity["available"] and validity["n"] == 5 and validity["proxy"] == "mgm"
    assert -1 <= validity["params_kendall"] <= 1 and "Kendall tau" in validity["note"]
    assert compute["device"] == "cpu" and compute["energy_source"] == "unknown" and compute["energy_joules"] is None
    assert compute["training_seconds_per_candidate"] > 0 and compute["scoring_seconds_per_candidate"] > 0
    assert compute["train_every_candidate_seconds"] == pytest.approx(
        compute["training_seconds_per_candidate"] * 6, rel=1e-2)


def test_validity_waits_for_five_accuracies(store, runtime):
    job_id = jobs.create_job(store, spec())  # top_k=2
    runner.run_job(store, runtime, job_id)
    with store.session() as s:
        assert s.get(Job, job_id).result["validity"]["available"] is False


def test_energy_is_summed_when_every_step_was_measured(store, runtime, tmp_path, monkeypatch):
    """A readable RAPL-style counter (a file here: no real counter on these machines)."""
    import worker.energy as energy

    counter = tmp_path / "intel-rapl:0"
    counter.mkdir()
    (counter / "energy_uj").write_text("5000000")
    monkeypatch.setattr(energy, "RAPL_GLOB", str(tmp_path / "intel-rapl:[0-9]*" / "energy_uj"))
    job_id = jobs.create_job(store, spec())
    assert runner.run_job(store, runtime, job_id) == "succeeded"
    with store.session() as s:
        compute = s.get(Job, job_id).result["compute"]
        per_candidate = s.scalars(select(Candidate.energy_j).where(Candidate.job_id == job_id)).all()
    assert per_candidate == [0.0] * 6  # the counter did not move: 0 J measured, not unknown
    assert compute["energy_joules"] == 0.0 and compute["energy_source"].startswith("measured")


def candidate_rows(store, job_id):
    with store.session() as s:
        return s.scalars(select(Candidate).where(Candidate.job_id == job_id).order_by(Candidate.rank)).all()


def test_repeats_rank_by_the_mean_and_report_the_spread_and_near_ties(store, runtime):
    import statistics

    once = jobs.create_job(store, spec(final={"mode": "none"}, top_k=3, candidates={"strategy": "random", "n": 8}))
    thrice = jobs.create_job(store, spec(final={"mode": "none"}, top_k=3, candidates={"strategy": "random", "n": 8},
                                             proxy={"name": "mgm", "batch_size": 8, "repeats": 3}))
    for job_id in (once, thrice):
        assert runner.run_job(store, runtime, job_id) == "succeeded"
    single = {c.arch: c.score for c in candidate_rows(store, once)}
    rows = candidate_rows(store, thrice)
    for c in rows:
        per_repeat = [r["mgm"] for r in c.repeat_scores]
        assert len(per_repeat) == 3 and per_repeat[0] == pytest.approx(single[c.arch], rel=1e-9)  # repeat 0 = a plain run
        assert len(set(per_repeat)) == 3  # each repeat has its own probe batch and initialisation
        assert c.score == pytest.approx(statistics.fmean(per_repeat)) and c.scores["mgm"] == pytest.approx(c.score)
        assert c.score_std == pytest.approx(statistics.stdev(per_repeat))
    assert [c.score for c in rows] == sorted((c.score for c in rows), reverse=True)

    with store.session() as s:
        cut = s.get(Job, thrice).result["cut"]
        plain = s.get(Job, once).result["cut"]
    kth = rows[2]
    expected = [c.rank for c in rows[3:] if c.score + c.score_std >= kth.score - kth.score_std]
    assert [t["rank"] for t in cut["near_ties"]] == expected and cut["near_ties_total"] == len(expected)
    assert cut["repeats"] == 3 and cut["kth_std"] == pytest.approx(kth.score_std)
    assert ("not decisive" in cut["note"]) == bool(expected)
    assert plain["near_ties"] is None and "proxy.repeats >= 2" in plain["note"]


def test_an_aggregate_with_repeats_averages_each_repeats_aggregate(store, runtime):
    import statistics

    from scorer.proxies.ensemble import COMPONENTS, aggregate

    job_id = jobs.create_job(store, spec(final={"mode": "none"}, top_k=2, candidates={"strategy": "random", "n": 4},
                                             proxy={"name": "ensemble", "batch_size": 8, "repeats": 2}))
    assert runner.run_job(store, runtime, job_id) == "succeeded"
    rows = candidate_rows(store, job_id)
    per_repeat = [aggregate({n: [c.repeat_scores[r][n] for c in rows] for n in COMPONENTS}) for r in range(2)]
    for c, values in zip(rows, zip(*per_repeat)):
        assert c.score == pytest.approx(statistics.fmean(values)) and c.score_std == pytest.approx(statistics.stdev(values))


def test_aggregate_uses_the_components_every_candidate_has(store, runtime):
    """A job scored partly by an older version (another component list) still ranks, on the common ones."""
    from sqlalchemy import update

    from scorer.proxies.ensemble import COMPONENTS, aggregate

    job_id = jobs.create_job(store, spec(proxy={"name": "ensemble", "batch_size": 8}, final={"mode": "none"}))
    assert runner.run_job(store, runtime, job_id) == "succeeded"
    dropped = COMPONENTS[2]
    with store.session() as s:
        first = s.execute(select(Candidate.id, Candidate.scores).where(Candidate.job_id == job_id)
                          .order_by(Candidate.id)).first()
        older = {k: v for k, v in first.scores.items() if k != dropped}
        s.execute(update(Candidate).where(Candidate.id == first.id).values(scores=older))
        pipeline._aggregate_scores(s, job_id, "ensemble")
    with store.session() as s:
        rows = s.execute(select(Candidate.score, Candidate.scores).where(Candidate.job_id == job_id)
                         .order_by(Candidate.id)).all()
    common = [c for c in COMPONENTS if c != dropped]
    assert [r.score for r in rows] == pytest.approx(aggregate({n: [r.scores[n] for r in rows] for n in common}))
