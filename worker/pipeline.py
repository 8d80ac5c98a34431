"""The job steps as plain functions over the store.

queued -> scoring -> ranking -> training -> succeeded | failed | cancelled.
Every step re-reads state, skips work already done and moves a job on with
a conditional UPDATE, so steps may run in any process, be redelivered, or
race each other without losing or duplicating anything. The Celery tasks
and the in-process runner call these functions unchanged.
"""
from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import Session

import scorer
from knas.jobspec import BenchmarkStage, EvolutionCandidates, JobSpec, TrainStage
from knas.result import CandidateSummary, Cut, ExportInfo, JobResult, NearTie, Retraining
from models import RETRAIN, Candidate, Job, ScoreCacheEntry, Store, Training, Worker, repository, utcnow
from models.base import table
from models.clock import db_now
from models.queries import top_k_winner
from scorer.seeding import repeat_seed

from .jobs import fail_job, job_status
from . import report
from .energy import measure_energy
from .lease import training_lease
from .runtime import Runtime

if TYPE_CHECKING:
    from scorer.scoring import ScoreResult

__all__ = ["finalise", "finish_scoring", "next_chunk", "open_retraining", "rank", "redispatch", "retrain_winner",
           "score_chunk", "start_job", "train_candidate"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, dict[str, Any]], None]


def _noop(_event: str, _data: dict[str, Any]) -> None:
    return None


# ---------------------------------------------------------------- scoring

def start_job(store: Store, job_id: str, chunk_size: int = 25, window: int | None = None) -> list[list[int]]:
    """queued -> scoring; return the chunks to score now.

    `window=None` (the in-process runner): every pending candidate, also on redelivery or after a
    restart. `window=W` (Celery workers): hand out only W chunks; each finished chunk hands out the
    next (`next_chunk`), so a job never floods the queue and jobs queued after it interleave with it
    (fair share) instead of waiting behind all of its chunks.
    """
    with store.session() as session:
        if repository.transition(session, job_id, ["queued"], "scoring", started_at=utcnow()):
            repository.mark_stage(session, job_id, "scoring", "started")
        status = session.scalar(select(Job.status).where(Job.id == job_id))
        if status != "scoring":
            return []
        if window is None:
            ids = session.scalars(select(Candidate.id).where(
                Candidate.job_id == job_id, Candidate.status == "pending").order_by(Candidate.id)).all()
            return [list(ids[i : i + chunk_size]) for i in range(0, len(ids), chunk_size)]
    return hand_out(store, job_id, chunk_size, window)


def next_chunk(store: Store, job_id: str, chunk_size: int) -> list[int]:
    """The job's next chunk of undispatched pending candidates ([] if none); the race rule is
    `models.repository.claim_chunk`'s."""
    with store.session() as session:
        return repository.claim_chunk(session, job_id, chunk_size)


def redispatch(store: Store, job_id: str, chunk_size: int, window: int | None) -> list[list[int]]:
    """Forget which pending candidates were handed out and hand out `window` chunks again (the sweep)."""
    with store.session() as session:
        repository.release_chunks(session, job_id)
    return hand_out(store, job_id, chunk_size, window)


def hand_out(store: Store, job_id: str, chunk_size: int, window: int | None) -> list[list[int]]:
    """Up to `window` chunks from `next_chunk` (None: until nothing is left to hand out)."""
    chunks: list[list[int]] = []
    while window is None or len(chunks) < window:
        chunk = next_chunk(store, job_id, chunk_size)
        if not chunk:
            break
        chunks.append(chunk)
    return chunks


FLUSH_SECONDS = 0.5  # how long scores wait to be stored: one commit per ~5 candidates at ~100 ms each


@dataclass
class _Outcome:
    """A scored candidate waiting for its batch's transaction."""

    row: Any
    values: dict[str, Any]
    results: list
    cached: bool
    keys: list[str]


def score_chunk(
    store: Store, runtime: Runtime, job_id: str, candidate_ids: list[int], on_progress: ProgressFn = _noop
) -> dict[str, int]:
    """Score the chunk's pending candidates, storing their scores as they come (within FLUSH_SECONDS).

    The job and the chunk's rows are read once. Scores are stored in batches, one transaction per
    FLUSH_SECONDS of scoring (a slow candidate is stored alone, right away): the transaction checks
    the job is still scoring (cancellation), counts the batch on the job and touches its progress
    clock. A crash loses at most that batch, which the redelivered chunk scores again. Scores
    already in the lab-wide cache (worker/score_cache.py) are stored without a forward pass; new
    ones go into it.
    """
    from . import score_cache

    report = {"scored": 0, "skipped": 0, "failed": 0, "cancelled": 0, "finished": 0, "cached": 0}
    with store.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "scoring":
            report["cancelled"] = 1
            return report
        spec, data = JobSpec.model_validate(job.spec), job.data
        rows = session.execute(select(Candidate.id, Candidate.arch, Candidate.seed).where(
            Candidate.job_id == job_id, Candidate.id.in_(candidate_ids), Candidate.status == "pending")
            .order_by(Candidate.id)).all()
    report["skipped"] = len(set(candidate_ids)) - len(rows)
    if not rows:  # a redelivered or re-enqueued chunk that is already done: no probe batch needed
        report["bred"] = next_generation(store, job_id)
        report["finished"] = 0 if report["bred"] else int(finish_scoring(store, job_id))
        return report
    data_key = f"folder:{data['fingerprint']}" if data else f"builtin:{spec.dataset}"
    try:
        spec = runtime.dataset_for(spec, data)
        probes = [runtime.probe(spec, repeat) for repeat in range(spec.proxy.repeats)]
        num_classes = runtime.dataset_info(spec.dataset).num_classes
    except Exception as error:  # the whole job cannot be scored: say why and stop it
        fail_job(store, job_id, f"cannot load probe batch of {spec.dataset!r}: {error}")
        raise
    proxy = scorer.get_proxy(spec.proxy.name)
    parts = [scorer.get_proxy(name) for name in (proxy.components or (proxy.name,))]
    versions = {part.name: part.version for part in parts}

    def cache_key(arch: str, seed: int, repeat: int) -> str:
        return score_cache.key(space=spec.space, arch=arch, data=data_key, probe_size=spec.proxy.batch_size,
                               probe_seed=repeat_seed(spec.seed, repeat), init_seed=repeat_seed(seed, repeat),
                               repeat=repeat, proxy=proxy.name, versions=versions, scorer_version=scorer.__version__,
                               device=runtime.device)

    keys = {(row.id, r): cache_key(row.arch, row.seed, r) for row in rows for r in range(spec.proxy.repeats)}
    hits = score_cache.lookup(store, keys.values()) if spec.proxy.cache else {}
    batch: list[_Outcome] = []

    def flush() -> bool:
        """Store the batch in one transaction; False once the job is no longer scoring (cancelled)."""
        with store.session() as session:
            stored = repository.record_scores(session, job_id, [
                (o.row.id, {**o.values, "scorer_version": scorer.__version__, "worker": runtime.worker_name})
                for o in batch])
            if spec.proxy.cache:
                for o in batch:
                    if o.row.id in stored and o.results and not o.cached:
                        for k, result in zip(o.keys, o.results):
                            score_cache.insert(session, cache_key=k, space=spec.space, arch=o.row.arch,
                                               proxy=proxy.name, scores=result.scores, params=result.params,
                                               seconds=result.seconds)
        scoring = True
        for o in batch:
            if o.row.id not in stored:
                scoring = scoring and job_status(store, job_id) == "scoring"
                if scoring:
                    report["skipped"] += 1  # stored meanwhile by a redelivered twin of this chunk
                continue
            report["scored" if o.values["status"] == "scored" else "failed"] += 1
            report["cached"] += int(o.cached)
            on_progress("scored", {"job_id": job_id, "candidate_id": o.row.id, "arch": o.row.arch, **o.values})
        batch.clear()
        return scoring

    flushed = time.monotonic()
    for row in rows:
        repeat_keys = [keys[(row.id, r)] for r in range(spec.proxy.repeats)]
        from_cache = _from_cache(hits, repeat_keys, proxy)
        cached = from_cache is not None
        values: dict[str, Any]
        results: list[ScoreResult]
        try:
            if from_cache is not None:
                results = from_cache
                values = dict(status="scored", **combine_repeats(results), params=results[0].params,
                              proxy_seconds=0.0, energy_j=0.0, cached=True)
            else:
                with measure_energy(runtime.device) as energy:
                    results = [scorer.score_arch(spec.space, row.arch, proxy, inputs, targets,
                                                 repeat_seed(row.seed, repeat), num_classes, runtime.device)
                               for repeat, (inputs, targets) in enumerate(probes)]
                values = dict(status="scored", **combine_repeats(results), params=results[0].params,
                              proxy_seconds=sum(r.seconds for r in results), energy_j=energy.joules, cached=False)
        except (FloatingPointError, RuntimeError) as error:
            log.warning("candidate %s (%s) failed: %s", row.id, row.arch, error)
            results, values = [], dict(status="failed", error=str(error)[:2000])
        batch.append(_Outcome(row, values, results, cached, repeat_keys))
        if time.monotonic() - flushed >= FLUSH_SECONDS:
            flushed = time.monotonic()
            if not flush():  # a cancelled job stops before the next forward pass, not a chunk late
                report["cancelled"] = 1
                break
    if batch and not flush():
        report["cancelled"] = 1
    report["bred"] = next_generation(store, job_id)  # evolution: the chunk that completed a generation breeds
    report["finished"] = 0 if report["bred"] else int(finish_scoring(store, job_id))  # 1 only for the chunk that moved the job on
    return report


def _from_cache(hits: dict[str, ScoreCacheEntry], keys: list[str], proxy: Any) -> list[ScoreResult] | None:
    """Every repeat's result from the score cache, or None to score the candidate: a repeat is missing,
    or its entry has no parameter count (knas writes one with every entry)."""
    from scorer.scoring import ScoreResult

    results = []
    for k in keys:
        entry = hits.get(k)
        if entry is None or entry.params is None:
            return None
        results.append(ScoreResult(score=None if proxy.components else entry.scores[proxy.name], seconds=0.0,
                                   params=entry.params, scores=entry.scores))
    return results


def combine_repeats(results: list) -> dict[str, Any]:
    """One candidate's repeated measurements -> stored columns: means, the score's spread, each repeat."""
    if len(results) == 1:
        return {"score": results[0].score, "scores": results[0].scores, "score_std": None, "repeat_scores": None}
    names = results[0].scores.keys()
    means = {name: statistics.fmean(r.scores[name] for r in results) for name in names}
    single = results[0].score is not None  # an aggregate's score (and spread) is formed in `rank`
    return {"score": statistics.fmean(r.score for r in results) if single else None, "scores": means,
            "score_std": statistics.stdev(r.score for r in results) if single else None,
            "repeat_scores": [r.scores for r in results]}


def finish_scoring(store: Store, job_id: str) -> bool:
    """scoring -> ranking exactly once: when no candidate is pending any more (evolution: in the last generation)."""
    pending = exists().where(Candidate.job_id == job_id, Candidate.status == "pending")
    with store.session() as session:
        job = session.get(Job, job_id)
        if job is not None and job.generation is not None:
            if job.generation < JobSpec.model_validate(job.spec).generations:
                return False  # generations are still to be bred (next_generation)
        moved = repository.transition(session, job_id, ["scoring"], "ranking", ~pending)
        if moved:
            repository.mark_stage(session, job_id, "scoring", "finished")
        return moved


def next_generation(store: Store, job_id: str) -> int:
    """Evolution: once a generation is scored, breed the next (exactly once); returns how many children.

    One conditional UPDATE bumps `jobs.generation` only while nothing is pending, so of the chunks
    that finish a generation at the same time one breeds; the children are inserted in that same
    transaction, so a crash leaves either the old generation complete or the new one whole. The
    children depend only on the scores and the seed, never on who scored what.
    """
    import random

    from scorer.evolution import breed
    from scorer.spaces import get_space

    with store.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.generation is None or job.status != "scoring":
            return 0
        spec = JobSpec.model_validate(job.spec)
        evolution, generation = spec.candidates, job.generation
        if not isinstance(evolution, EvolutionCandidates) or generation >= evolution.generations:
            return 0  # (only evolution has generations: `spec.generations` is 0 for the other strategies)
        if not repository.claim_generation(session, job_id, generation):
            return 0
        rows = session.execute(select(Candidate.id, Candidate.arch, Candidate.score, Candidate.scores)
                               .where(Candidate.job_id == job_id, Candidate.status == "scored")
                               .order_by(Candidate.id)).all()
        fitness = _fitness(rows, spec.proxy.name)
        ids = {row.arch: row.id for row in rows}
        if scorer.get_proxy(spec.proxy.name).components and fitness:  # the aggregate so far is the score shown
            session.execute(update(Candidate), [{"id": ids[arch], "score": value} for arch, value in fitness.items()])
        seen = set(session.scalars(select(Candidate.arch).where(Candidate.job_id == job_id)))
        space = get_space(spec.space)
        children = breed(space, fitness, seen, children=evolution.per_generation, population_size=evolution.population,
                         tournament_size=evolution.tournament, crossover_rate=evolution.crossover,
                         mutations=evolution.mutations, allowed=_budget(spec, job.data),
                         rng=random.Random(f"knas-evolution:{spec.seed}:{generation + 1}"))
        if not children:  # nothing new within reach: this was the last generation
            session.execute(update(Job).where(Job.id == job_id).values(generation=evolution.generations))
            log.warning("job %s: generation %d bred no new arch; scoring ends here", job_id, generation + 1)
            return 0
        session.execute(table(Candidate).insert(), [
            {"job_id": job_id, "arch": child.arch, "arch_index": space.index(child.arch),
             "seed": scorer.candidate_seed(spec.seed, child.arch), "status": "pending",
             "generation": generation + 1, "parents": [ids[p] for p in child.parents]}
            for child in children])
        session.execute(update(Job).where(Job.id == job_id).values(candidates_total=Job.candidates_total + len(children))
                        .execution_options(synchronize_session=False))
        return len(children)


def _fitness(rows, proxy_name: str) -> dict[str, float]:
    """arch -> fitness: the proxy's score, or for a rank aggregate (the ensemble) its aggregate over
    everything scored so far, recomputed each generation."""
    components = scorer.get_proxy(proxy_name).components
    if not components:
        return {row.arch: row.score for row in rows if row.score is not None}
    from scorer.proxies.ensemble import aggregate

    usable = [row for row in rows if row.scores]
    components = tuple(c for c in components if all(c in row.scores for row in usable))
    values = aggregate({name: [row.scores[name] for row in usable] for name in components}) if usable else []
    return {row.arch: value for row, value in zip(usable, values)}


def _budget(spec: JobSpec, data: dict | None):
    """Whether a bred arch is within the job's constraints (at the dataset's classes and input shape)."""
    if not spec.constraints.active:
        return lambda arch: True
    from scorer.spaces import get_space

    from .jobs import dataset_shape

    shape = dataset_shape(spec.dataset, data)
    space = get_space(spec.space)
    return lambda arch: spec.constraints.fits(*space.cost(arch, shape["num_classes"], shape["in_shape"]))


# ---------------------------------------------------------------- ranking

def rank(store: Store, job_id: str) -> list[int]:
    """Write ranks (best score first) and hand the top-k to the final stage.

    Returns the candidate ids still to train (also when redelivered mid-training).
    """
    with store.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            return []
        if job.status == "training":
            return _untrained(session, job_id)
        if job.status != "ranking":
            return []
        spec = JobSpec.model_validate(job.spec)
        _aggregate_scores(session, job_id, spec.proxy.name)
        repository.write_ranks(session, job_id)  # one UPDATE ... FROM row_number(), not one per row
        scored = session.scalars(select(Candidate.id).where(Candidate.job_id == job_id, Candidate.status == "scored")
                                 .order_by(Candidate.rank).limit(max(spec.top_k, 1))).all()
        top = list(scored[: spec.top_k])
        if not scored:
            repository.transition(session, job_id, ["ranking"], "failed", finished_at=utcnow(),
                                  error="every candidate failed to score; see the candidates' errors")
            return []
        if spec.final.mode == "none" or not top:
            if repository.transition(session, job_id, ["ranking"], "succeeded", finished_at=utcnow()):
                session.flush()
                job = _reread(session, job_id)
                job.result = _result(session, job, selected_by="score").stored()
            return []
        # Transition first: a job cancelled while this ran (or a concurrent duplicate `rank` that won)
        # gets no trainings and no train messages; the row lock of the UPDATE orders duplicates.
        if not repository.transition(session, job_id, ["ranking"], "training"):
            return []
        repository.mark_stage(session, job_id, "training", "started")
        existing = set(session.scalars(select(Training.candidate_id).where(Training.job_id == job_id)))
        new = [candidate_id for candidate_id in top if candidate_id not in existing]
        for candidate_id in new:
            session.add(Training(job_id=job_id, candidate_id=candidate_id, mode=spec.final.mode, status="pending"))
        session.execute(update(Job).where(Job.id == job_id).values(trainings_total=Job.trainings_total + len(new))
                        .execution_options(synchronize_session=False))
        return top


def _aggregate_scores(session, job_id: str, proxy_name: str) -> None:
    """For rank-aggregating proxies, form each candidate's score from the whole set's components.

    With repeats, each repeat is aggregated on its own; the score is their mean, the spread their std.
    Only components every candidate has are used: a job scored partly before an upgrade that
    changed the component list still ranks, on the components both versions computed.
    """
    components = scorer.get_proxy(proxy_name).components
    if not components:
        return
    from scorer.proxies.ensemble import aggregate

    rows = session.execute(select(Candidate.id, Candidate.scores, Candidate.repeat_scores)
                           .where(Candidate.job_id == job_id, Candidate.status == "scored")).all()
    if not rows:
        return
    stored = [scores for row in rows for scores in (row.repeat_scores or [row.scores or {}])]
    components = tuple(c for c in components if all(c in scores for scores in stored))
    if not components:
        raise ValueError(f"no {proxy_name} component was scored for every candidate of job {job_id}")
    if rows[0].repeat_scores:
        per_repeat = [aggregate({name: [row.repeat_scores[r][name] for row in rows] for name in components})
                      for r in range(len(rows[0].repeat_scores))]
        values = [(statistics.fmean(v), statistics.stdev(v)) for v in zip(*per_repeat)]
    else:
        values = [(v, None) for v in aggregate({name: [row.scores[name] for row in rows] for name in components})]
    session.execute(update(Candidate), [{"id": row.id, "score": score, "score_std": spread}  # one executemany
                                        for row, (score, spread) in zip(rows, values)])


def _untrained(session, job_id: str) -> list[int]:
    return list(session.scalars(
        select(Training.candidate_id).where(Training.job_id == job_id, Training.status.in_(("pending", "running")))
        .order_by(Training.candidate_id)
    ))


# ---------------------------------------------------------------- final stage

def train_candidate(
    store: Store, runtime: Runtime, job_id: str, candidate_id: int, on_progress: ProgressFn = _noop,
    lease_seconds: float = 600,
) -> str:
    """Train (or look up) one top-k candidate, recording metrics per epoch. Returns its final status.

    A training is claimed with a conditional UPDATE only when it is `pending`, or `running` with a
    heartbeat older than `lease_seconds` (its worker died): never twice at the same time. The claim
    bumps `attempts`, which fences the previous holder: its epoch and result writes match on
    `attempts` and stop once someone else has taken over.
    """
    with store.session() as session:
        job = session.get(Job, job_id)
        # The open row first: a winner that is being retrained also has its finished top-k row.
        training = session.scalar(select(Training).where(Training.candidate_id == candidate_id)
                                  .order_by(Training.status.not_in(("pending", "running")), Training.id))
        if job is None or training is None or job.status != "training":
            return training.status if training is not None else "missing"
        attempt = repository.claim_training(session, training.id, runtime.worker_name, lease_seconds)
        if attempt is None:  # "missing": the row went meanwhile (its job deleted), as below
            return session.scalar(select(Training.status).where(Training.id == training.id)) or "missing"
        repository.touch(session, job_id)
        spec, data = JobSpec.model_validate(job.spec), job.data
        cand = session.get(Candidate, candidate_id)
        if cand is None:  # its training row's foreign key keeps the candidate: a broken store
            raise LookupError(f"training {training.id} of job {job_id} has no candidate {candidate_id}")
        arch, seed, training_id, mode = cand.arch, cand.seed, training.id, training.mode
    start = time.perf_counter()
    try:
        spec = runtime.dataset_for(spec, data)
        # The lease is refreshed between epochs too: an epoch longer than the lease is not a dead worker.
        with measure_energy(runtime.device) as energy, training_lease(store, training_id, attempt, lease_seconds / 3):
            if isinstance(spec.final, TrainStage):
                outcome = _train(store, runtime, spec, job_id, training_id, attempt, arch, seed, on_progress, mode)
            else:
                outcome = _lookup(runtime, spec, arch)
        outcome["energy_j"] = energy.joules
    except Exception as error:
        log.exception("training candidate %s failed", candidate_id)
        outcome = {"status": "failed", "error": f"{type(error).__name__}: {error}"[:2000]}
    outcome.setdefault("status", "done")
    with store.session() as session:
        stored = repository.finish_training(session, job_id, training_id, attempt, mode,
                                            dict(outcome, seconds=time.perf_counter() - start))
    if not stored:  # another worker took the training over (our heartbeat went stale): its result counts
        log.warning("training of candidate %s was taken over; discarding this attempt's result", candidate_id)
        return _training_status(store, training_id) or "missing"
    on_progress("trained", {"job_id": job_id, "candidate_id": candidate_id, "arch": arch, **outcome})
    finalise(store, job_id, runtime)
    return outcome["status"]


def _training_status(store: Store, training_id: int) -> str | None:
    with store.session() as session:
        return session.scalar(select(Training.status).where(Training.id == training_id))


def _train(store: Store, runtime: Runtime, spec: JobSpec, job_id: str, training_id: int, attempt: int, arch: str,
           seed: int, on_progress: ProgressFn, mode: str = "train") -> dict[str, Any]:
    """Train with a checkpoint after every epoch; a taken-over training resumes from the last one.

    The checkpoint is written under the training's row lock, after the fencing check, and the row's
    epochs are set from it: a holder that lost its lease writes nothing, and the store and the
    checkpoint never disagree about how far the training got.
    """
    from scorer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from scorer.scoring import build_candidate
    from scorer.train import TrainConfig, check_resume, train_network

    final = spec.final
    if not isinstance(final, TrainStage):  # (train_candidate looks a benchmark's record up instead)
        raise ValueError(f"final.mode={final.mode!r} trains nothing")
    info = runtime.dataset_info(spec.dataset)
    net = build_candidate(spec.space, arch, seed, info.num_classes, info.in_shape)
    epochs = final.retrain_epochs if mode == RETRAIN else final.epochs
    config = TrainConfig(epochs=epochs, batch_size=final.batch_size or info.batch_size, lr=final.lr,
                         seed=seed % (2**31), device=runtime.device)
    train = runtime.split(spec.dataset, "train")
    streams = not isinstance(train, tuple)  # an image folder, decoded from disk batch by batch
    artifacts = runtime.artifacts
    relative = artifacts.checkpoint(job_id, _candidate_of(store, training_id), mode) if artifacts else None
    # The checkpoint's file on this node (None: checkpoints are not kept); the row stores `relative`.
    file = artifacts.path(relative) if artifacts is not None and relative is not None else None
    resume = None
    if file is not None and file.is_file():
        try:  # writes are atomic, so a crash mid-write leaves the previous epoch's file; anything else: start over
            resume = load_checkpoint(file)
            check_resume(resume, config, math.ceil(len(train if streams else train[1]) / config.batch_size))
            log.info("training %s resumes after epoch %s", training_id, resume["epoch"])
        except (CheckpointError, ValueError) as error:
            log.warning("training %s: checkpoint unusable (%s); starting from epoch 1", training_id, error)
            resume = None
    with store.session() as session:
        training = _locked_training(session, training_id)
        if training.attempts == attempt:
            training.epochs = list(resume["epochs"]) if resume else []
            training.checkpoint_epoch = resume["epoch"] if resume else None

    def checkpoint(state: dict) -> bool:
        with store.session() as session:
            training = _locked_training(session, training_id)
            if training.status != "running" or training.attempts != attempt:
                return False  # taken over by another worker: stop, the new holder's epochs count
            if file is not None:
                save_checkpoint(state, file)
                training.artifact, training.checkpoint_epoch = relative, state["epoch"]
            training.epochs = list(state["epochs"])
            training.heartbeat_at = db_now()  # the database's clock, as every lease (models/clock.py)
            repository.touch(session, job_id)
        return True

    def on_epoch(metrics) -> bool:
        on_progress("epoch", {"job_id": job_id, "arch": arch, **metrics.to_dict()})
        return job_status(store, job_id) == "training"  # a cancelled job stops after this epoch

    result = train_network(
        net, train, runtime.split(spec.dataset, "valid"),
        runtime.split(spec.dataset, "test"), config, on_epoch=on_epoch, augment=info.augment,
        checkpoint=checkpoint, resume=resume, num_workers=runtime.workers_for_loading() if streams else 0,
    )
    if result.stopped_early:
        return {"status": "failed", "error": "stopped: the job is no longer training"}
    return {"valid_acc": result.valid_acc, "test_acc": result.test_acc}


def _locked_training(session: Session, training_id: int) -> Training:
    """The training's row, locked and re-read; LookupError once it is gone (train_candidate records
    this attempt as failed, as for any training error)."""
    training = session.get(Training, training_id, with_for_update=True, populate_existing=True)
    if training is None:
        raise LookupError(f"training {training_id} is gone (its job was deleted)")
    return training


def _candidate_of(store: Store, training_id: int) -> int:
    with store.session() as session:
        candidate_id = session.scalar(select(Training.candidate_id).where(Training.id == training_id))
    if candidate_id is None:  # train_candidate records this attempt as failed, as for any training error
        raise LookupError(f"training {training_id} is gone (its job was deleted)")
    return candidate_id


def _lookup(runtime: Runtime, spec: JobSpec, arch: str) -> dict[str, Any]:
    from scorer.benchmark import lookup

    if not isinstance(spec.final, BenchmarkStage):  # rank makes trainings only for final.mode train or benchmark
        raise ValueError(f"final.mode={spec.final.mode!r} has no benchmark record to look up")
    record = lookup(spec.space, arch, spec.dataset, runtime.benchmark_dir, hp=spec.final.hp)
    return {"valid_acc": record.valid_acc, "test_acc": record.test_acc, "epochs": [record.to_dict()]}


def finalise(store: Store, job_id: str, runtime: Runtime | None = None) -> bool:
    """training -> succeeded (or failed) exactly once, when no training is left open.

    With a runtime that has an artifact store, the winner is exported first and the other
    checkpoints are pruned: a worker killed mid-export leaves the job in `training` with nothing
    open, which the sweep's `finalise` completes, so a succeeded job always has its export.
    """
    open_trainings = exists().where(Training.job_id == job_id, Training.status.in_(("pending", "running")))
    if retrain_winner(store, job_id):  # final.retrain_epochs: the job ends after the winner's retraining
        return False
    export = _deliver(store, runtime, job_id) if runtime is not None and runtime.artifacts is not None else None
    with store.session() as session:
        if not repository.transition(session, job_id, ["training"], "succeeded", ~open_trainings, finished_at=utcnow()):
            return False
        repository.mark_stage(session, job_id, "training", "finished")
        session.flush()
        job = _reread(session, job_id)
        done = session.scalar(select(func.count()).select_from(Training).where(
            and_(Training.job_id == job_id, Training.status == "done")))
        if not done:
            job.status, job.error = "failed", "every top-k candidate failed in the final stage; see their errors"
        result = _result(session, job, selected_by="valid_acc")
        result.export = export
        job.result = result.stored()
        return True


def retrain_winner(store: Store, job_id: str) -> bool:
    """With final.retrain_epochs, once the top-k are done: the winner's retraining row (made once; a
    concurrent twin's insert loses on the (candidate, mode) key). True while that retraining is open."""
    from sqlalchemy.exc import IntegrityError

    with store.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "training":
            return False
        spec = JobSpec.model_validate(job.spec)
        if not isinstance(spec.final, TrainStage) or not spec.final.retrain_epochs:
            return False
        if session.scalar(select(func.count()).select_from(Training).where(
                Training.job_id == job_id, Training.mode != RETRAIN, Training.status.in_(("pending", "running")))):
            return False  # the top-k are not all done: nothing to decide yet
        retrain = session.scalar(select(Training).where(Training.job_id == job_id, Training.mode == RETRAIN))
        if retrain is not None:
            return retrain.status in ("pending", "running")
        found = top_k_winner(session, job_id)
        if found is None:
            return False  # no winner: finalise fails the job as before
        winner_id = found[0].id
    try:
        with store.session() as session:
            session.add(Training(job_id=job_id, candidate_id=winner_id, mode=RETRAIN, status="pending"))
    except IntegrityError:
        pass  # a concurrent finalise made it
    return True


def open_retraining(store: Store, job_id: str) -> list[int]:
    """The candidate whose retraining waits to be sent ([] if none): what follows a top-k training."""
    with store.session() as session:
        return list(session.scalars(select(Training.candidate_id).where(
            Training.job_id == job_id, Training.mode == RETRAIN, Training.status == "pending")))


def _deliver(store: Store, runtime: Runtime, job_id: str) -> ExportInfo | None:
    """Before the job succeeds: export the winner, then drop the other checkpoints (unless kept)."""
    from .export import ExportNotReady, build_export

    artifacts = runtime.artifacts
    if artifacts is None:  # (finalise calls this only with an artifact store)
        return None
    with store.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "training" or session.scalar(select(func.count()).select_from(Training).where(
                Training.job_id == job_id, Training.status.in_(("pending", "running")))):
            return None
        spec = JobSpec.model_validate(job.spec)
    if not isinstance(spec.final, TrainStage):
        return None
    try:
        export = build_export(store, runtime, job_id)
    except ExportNotReady as reason:
        return ExportInfo(status="unavailable", reason=str(reason))
    except Exception as error:  # a model the exporters cannot handle must not fail a finished search
        log.exception("exporting the winner of job %s failed", job_id)
        return ExportInfo(status="failed", reason=f"{type(error).__name__}: {error}"[:2000])
    if not spec.final.keep_checkpoints and export.candidate_id is not None:  # (a ready export names its winner)
        artifacts.prune_trainings(job_id, keep={export.candidate_id})
    return export


def _reread(session: Session, job_id: str) -> Job:
    """The job's row as this transaction has just moved it on (so it exists)."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise LookupError(f"job {job_id} is gone from the transaction that moved it on")
    return job


def _result(session, job: Job, selected_by: str) -> JobResult:
    """The job's outcome: the winner, the top-k and the compute spent."""
    rows = session.execute(
        select(Candidate, Training)
        .outerjoin(Training, and_(Training.candidate_id == Candidate.id, Training.mode != RETRAIN))
        .where(Candidate.job_id == job.id, Candidate.rank.is_not(None), Candidate.rank <= max(job.top_k, 1))
        .order_by(Candidate.rank)
    ).all()
    top = [_candidate_summary(c, t) for c, t in rows]
    if selected_by == "valid_acc":
        trained = [entry for entry in top if entry.valid_acc is not None]
        winner = max(trained, key=lambda e: (e.valid_acc, -(e.rank or 0))) if trained else None
    else:
        winner = top[0] if top else None
    scoring_seconds, n_scored = session.execute(
        select(func.coalesce(func.sum(Candidate.proxy_seconds), 0.0), func.count(Candidate.proxy_seconds))
        .where(Candidate.job_id == job.id)).one()
    training_seconds, n_trained = session.execute(
        select(func.coalesce(func.sum(Training.seconds), 0.0), func.count(Training.seconds))
        .where(Training.job_id == job.id, Training.status == "done")).one()
    measured = [(e.score, e.params, e.valid_acc) for e in top  # scored candidates all have params
                if e.score is not None and e.params is not None and e.valid_acc is not None]
    energy = _energy(session, job.id)
    return JobResult(
        winner=winner,
        selected_by=selected_by,
        top_k=top,
        compute_seconds={"scoring": round(scoring_seconds, 3), "training": round(training_seconds, 3)},
        compute=report.compute(scoring_seconds, n_scored, training_seconds, n_trained, job.n_candidates,
                               device=", ".join(_devices(session, job.id)) or "unknown", energy=energy),
        validity=report.validity([score for score, _, _ in measured], [params for _, params, _ in measured],
                                 [acc for _, _, acc in measured], job.proxy),
        cut=_cut(session, job),
        retrain=_retraining(session, job.id),
        scorer_version=scorer.__version__,
    )


def _retraining(session, job_id: str) -> Retraining | None:
    row = session.scalar(select(Training).where(Training.job_id == job_id, Training.mode == RETRAIN))
    if row is None:
        return None
    return Retraining(candidate_id=row.candidate_id, status=row.status, epochs=len(row.epochs or []),
                      valid_acc=row.valid_acc, test_acc=row.test_acc, seconds=row.seconds, error=row.error)


def _cut(session, job: Job, shown: int = 20) -> Cut | None:
    """How decisive the top-k cut is: the candidates outside it whose score, plus one standard
    deviation over the proxy's repeats, reaches rank k's score minus one."""
    k = job.top_k
    kth = session.execute(select(Candidate.score, Candidate.score_std)
                          .where(Candidate.job_id == job.id, Candidate.rank == k)).first() if k >= 1 else None
    if kth is None:
        return None
    repeats = JobSpec.model_validate(job.spec).proxy.repeats
    if kth.score_std is None:
        return Cut(repeats=repeats, near_ties=None,
                   note="score spread unknown: set proxy.repeats >= 2 to flag near-ties at the top-k cut")
    reach = Candidate.score + func.coalesce(Candidate.score_std, 0.0) >= kth.score - kth.score_std
    outside = (Candidate.job_id == job.id, Candidate.rank > k, reach)
    total = session.scalar(select(func.count()).select_from(Candidate).where(*outside))
    near = [NearTie(rank=c.rank, arch=c.arch, candidate_id=c.id, score=c.score, score_std=c.score_std)
            for c in session.scalars(select(Candidate).where(*outside).order_by(Candidate.rank).limit(shown))]
    if total:
        note = (f"{total} candidate(s) outside the top-{k} are within one standard deviation of rank {k}: "
                f"the cut is not decisive; a larger top_k or more repeats would settle it")
    else:
        note = f"the top-{k} cut is decisive: no candidate outside it comes within one standard deviation of rank {k}"
    return Cut(repeats=repeats, kth_score=kth.score, kth_std=kth.score_std, near_ties_total=total,
               near_ties=near, note=note)


def _energy(session, job_id: str) -> dict[str, Any]:
    """Joules over every scored and trained candidate, only if every one of them was measured."""
    joules = 0.0
    for model, done in ((Candidate, Candidate.status == "scored"), (Training, Training.status == "done")):
        total, measured, count = session.execute(
            select(func.sum(model.energy_j), func.count(model.energy_j), func.count())
            .where(model.job_id == job_id, done)).one()
        if measured != count:
            return {"joules": None, "source": "unknown"}
        joules += total or 0.0
    return {"joules": round(joules, 1), "source": "measured (NVML or RAPL counters)"}


def _devices(session, job_id: str) -> list[str]:
    """Device types of the workers that scored or trained the job ("local" runs: this process's)."""
    names = set(session.scalars(select(Candidate.worker).where(Candidate.job_id == job_id).distinct()))
    names |= set(session.scalars(select(Training.worker).where(Training.job_id == job_id).distinct()))
    names.discard(None)
    return sorted(set(session.scalars(select(Worker.device).where(Worker.name.in_(names)))))


def _candidate_summary(cand: Candidate, training: Training | None) -> CandidateSummary:
    entry = CandidateSummary(candidate_id=cand.id, rank=cand.rank, arch=cand.arch, arch_index=cand.arch_index,
                             score=cand.score, score_std=cand.score_std, params=cand.params)
    if training is not None:
        entry.valid_acc, entry.test_acc, entry.training_status = training.valid_acc, training.test_acc, training.status
    return entry
