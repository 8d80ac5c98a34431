"""Workers SIGKILLed mid-job: another (or the restarted) worker finishes it, every candidate stored once.

A kill here takes the whole node at once (the `knas worker` supervisor, the Celery main process and
its pool child), as when a machine dies: no shutdown code runs, the message being worked on stays
unacknowledged in the broker and the work in flight is lost; only the store and the sweep remain.
"""
from __future__ import annotations

import time

from sqlalchemy import func, select

from models import Candidate, Training, Worker
from tests.reliability.checks import assert_complete, check_job
from tests.reliability.ledger import LEDGER
from tests.reliability.watchers import StateWatch
from tests.support.specs import tiny_spec
from tests.support.waiting import wait_for


def test_a_worker_killed_while_scoring_a_chunk_loses_nothing(stack):
    s = stack()
    a, b = s.start_worker("wa"), s.start_worker("wb")
    s.wait_ready(a, b)
    job = s.create_job(tiny_spec(32, seed=101))
    with StateWatch(s.db_url, [job]) as watch:
        # Aim: the node is inside a chunk (some of the job scored, its current_job set, more pending).
        def mid_chunk() -> bool:
            p = s.progress(job)
            with s.store.session() as session:
                busy = session.scalar(select(Worker.current_job).where(Worker.name.like("wa@%")))
            return p["scored"] >= 5 and p["pending"] >= 8 and busy == job

        wait_for(mid_chunk, 60, "wa to be inside a chunk", interval=0.02, context=s.logs)
        s.kill_worker(a, "worker SIGKILL while scoring")
        with s.store.session() as session:
            by_a = set(session.scalars(select(Candidate.arch).where(Candidate.job_id == job,
                                                                    Candidate.worker.like("wa@%"))))
        assert s.progress(job)["pending"] > 0 and s.status(job) == "scoring"
        assert s.wait_done(job, 120) == "succeeded"
    check = assert_complete(s.store, job, s.logs)
    with s.store.session() as session:
        by = dict(session.execute(select(Candidate.arch, Candidate.worker).where(Candidate.job_id == job)).all())
    # wa's stored scores stand (none redone); everything else, its lost chunk included, is wb's.
    assert {a for a, w in by.items() if w.startswith("wa@")} == by_a and by_a
    assert all(w.startswith("wb@") for a, w in by.items() if a not in by_a)
    assert watch.seen[job][-1] == "succeeded" and check.duplicates == 0


def test_a_worker_killed_while_training_is_taken_over_by_its_restarted_self(stack):
    s = stack()
    a = s.start_worker("wa")
    s.wait_ready(a)
    spec = tiny_spec(6, seed=102, proxy="mgm", probe=8, top_k=2, epochs=30)
    spec["final"]["keep_checkpoints"] = True  # the victim may not win: keep its checkpoint to compare weights
    job = s.create_job(spec)
    with StateWatch(s.db_url, [job]):
        def training_underway():
            with s.store.session() as session:
                rows = session.scalars(select(Training).where(Training.job_id == job, Training.status == "running")).all()
            return next((t for t in rows if 2 <= len(t.epochs) <= 25), None)

        victim = wait_for(training_underway, 90, "a training two epochs in", interval=0.02, context=s.logs)
        s.kill_worker(a, "worker SIGKILL while training")
        with s.store.session() as session:
            frozen = session.get(Training, victim.id)
            assert frozen.status == "running" and frozen.attempts == 1 and len(frozen.epochs) < 30

        restarted = s.start_worker("wa")  # the same node name, as a supervisor's restart would give it
        s.wait_ready(restarted)
        assert s.wait_done(job, 120) == "succeeded"
    assert_complete(s.store, job, s.logs)
    with s.store.session() as session:
        taken_over = session.get(Training, victim.id)
    # The killed attempt was fenced out by the claim that bumped `attempts`; the new holder resumed
    # from the last finished epoch's checkpoint instead of starting over ...
    assert taken_over.status == "done" and taken_over.attempts == 2 and taken_over.checkpoint_epoch == 30
    assert [e["epoch"] for e in taken_over.epochs] == list(range(1, 31))
    resumed = [line for line in restarted.output().splitlines() if f"training {victim.id} resumes after epoch" in line]
    assert resumed and int(resumed[0].rsplit(" ", 1)[1]) >= 2, restarted.output()[-3000:]
    # ... and ended with bitwise the weights of an uninterrupted run with the same seed.
    with s.store.session() as session:
        candidate = session.get(Candidate, victim.candidate_id)
    assert_same_weights_as_uninterrupted(s.tmp / "home" / "artifacts" / taken_over.artifact, candidate.arch,
                                         candidate.seed, epochs=30)


def assert_same_weights_as_uninterrupted(checkpoint_path, arch: str, seed: int, epochs: int) -> None:
    import torch

    from scorer.checkpoint import load_checkpoint
    from scorer.data import load_split
    from scorer.scoring import build_candidate
    from scorer.train import TrainConfig, train_network

    torch.set_num_threads(1)  # as the workers run (--threads 1): same kernels, same sums
    net = build_candidate("nats-tss", arch, seed, 4, (3, 8, 8))
    config = TrainConfig(epochs=epochs, batch_size=32, lr=0.1, seed=seed % (2**31), device="cpu")
    train_network(net, load_split("tiny", "train"), load_split("tiny", "valid"), load_split("tiny", "test"), config)
    resumed = load_checkpoint(checkpoint_path)["model"]
    reference = net.state_dict()
    assert resumed.keys() == reference.keys()
    different = [name for name in reference if not torch.equal(resumed[name], reference[name])]
    assert not different, f"resumed weights differ from an uninterrupted run in {different[:5]}"


def test_a_job_whose_only_worker_never_comes_back_fails_with_a_reason_after_the_stall_timeout(stack):
    stall = 10  # KNAS_STALL_TIMEOUT's minimum
    s = stack(KNAS_STALL_TIMEOUT=str(stall))
    s.start_api()  # the API's watchdog is what is left to notice: no worker will sweep
    a = s.start_worker("wa")
    s.wait_ready(a)
    job = s.create_job(tiny_spec(40, seed=103))
    with StateWatch(s.db_url, [job]) as watch:
        wait_for(lambda: s.progress(job)["scored"] >= 3, 60, "scoring to start", interval=0.02, context=s.logs)
        s.kill_worker(a, "worker SIGKILL, never restarted")
        killed_at = time.time()
        assert s.wait_done(job, stall + 30) == "failed"
        waited = time.time() - killed_at
    check = check_job(s.store, job)
    reason = check.job.error
    assert "stalled in scoring" in reason and f"KNAS_STALL_TIMEOUT={stall}" in reason and "wa@" in reason, reason
    # Not before the deadline (counted from the last stored score), and not long after it.
    assert stall - 1 <= waited <= stall + 10, waited
    assert check.lost == 0 and check.duplicates == 0  # a failed job keeps the scores it had, once each
    assert watch.seen[job] == ["scoring", "failed"] or watch.seen[job] == ["queued", "scoring", "failed"]
    LEDGER.notes.append(f"stalled job failed {waited:.1f} s after its only worker died (KNAS_STALL_TIMEOUT={stall})")


def test_a_training_epoch_longer_than_the_lease_is_not_taken_over(stack):
    """The lease is kept alive between epochs: a slow epoch is not a dead worker (no takeover livelock)."""
    s = stack()
    workers = [s.start_worker("wa"), s.start_worker("wb")]
    s.wait_ready(*workers)
    # digits with batch 4: one epoch takes ~8-10 s on one core, longer than KNAS_LEASE_SECONDS=5.
    spec = {"space": "nats-tss", "dataset": "digits", "candidates": {"strategy": "random", "n": 2},
            "proxy": {"name": "mgm", "batch_size": 8}, "seed": 104, "top_k": 1,
            "final": {"mode": "train", "epochs": 1, "batch_size": 4}}
    job = s.create_job(spec)
    with StateWatch(s.db_url, [job]):
        assert s.wait_done(job, 120) == "succeeded"
    check = assert_complete(s.store, job, s.logs)
    (training,) = check.trainings
    assert training.epochs[0]["seconds"] > 5, "the epoch was not longer than the lease; the test proves nothing"
    assert training.attempts == 1, f"taken over {training.attempts - 1} times\n{s.logs()}"
    assert not any("taken over" in w.output() for w in workers)


def test_a_worker_killed_mid_generation_loses_nothing_and_repeats_nothing(stack, tmp_path):
    """Evolution: the node dies while a bred generation is being scored; the restarted node finishes the
    job, and the job holds exactly the candidates (and generations) an uninterrupted in-process run breeds."""
    from models import Job, Store
    from worker import jobs, runner
    from worker.runtime import Runtime
    from knas.jobspec import JobSpec

    spec = tiny_spec(6, seed=105, proxy="synflow", probe=16)
    spec["candidates"] = {"strategy": "evolution", "population": 6, "generations": 3, "children": 4,
                          "tournament": 3, "crossover": 0.5}
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count: the same scores, so the same parents
    local = Store(f"sqlite:///{tmp_path / 'local.db'}")
    try:
        reference = jobs.create_job(local, JobSpec.model_validate(spec))
        assert runner.run_job(local, Runtime(device="cpu", worker_name="local"), reference, chunk_size=2) == "succeeded"
    finally:
        torch.set_num_threads(threads)
    with local.session() as session:
        expected = sorted(session.execute(select(Candidate.arch, Candidate.generation)
                                          .where(Candidate.job_id == reference)).all())

    s = stack()
    # Chunks of 2 (the reference's): a bred generation of 4 is then two chunks, and scores are stored a
    # chunk at a time at most, so "generation 1 half scored" is a state the store actually passes through.
    a = s.start_worker("wa", KNAS_CHUNK_SIZE="2")
    s.wait_ready(a)
    job = s.create_job(spec)
    with StateWatch(s.db_url, [job]) as watch:
        def inside_generation_one() -> bool:
            with s.store.session() as session:
                generation = session.scalar(select(Job.generation).where(Job.id == job))
                scored = session.scalar(select(func.count()).select_from(Candidate).where(
                    Candidate.job_id == job, Candidate.generation == 1, Candidate.status == "scored"))
            return generation == 1 and scored >= 1 and s.progress(job)["pending"] >= 1

        wait_for(inside_generation_one, 90, "generation 1 half scored", interval=0.02, context=s.logs)
        s.kill_worker(a, "worker SIGKILL mid-generation")
        restarted = s.start_worker("wa", KNAS_CHUNK_SIZE="2")
        s.wait_ready(restarted)
        assert s.wait_done(job, 180) == "succeeded"
    check = check_job(s.store, job)
    with s.store.session() as session:
        got = sorted(session.execute(select(Candidate.arch, Candidate.generation).where(Candidate.job_id == job)).all())
        parents = session.scalars(select(Candidate.parents).where(Candidate.job_id == job,
                                                                  Candidate.generation > 0)).all()
    assert got == expected  # nothing lost, nothing bred twice, the same children as without the crash
    assert len(got) == 18 and len(set(a for a, _ in got)) == 18 and all(parents)
    assert check.lost == 0 and check.duplicates == 0 and watch.seen[job][-1] == "succeeded"
    local.dispose()
