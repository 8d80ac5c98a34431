"""The job's winner as a model you can ship: rebuild it from its checkpoint, write the bundle, check it.

Runs where torch is (a worker's `finalise`, or `knas export`); the API only serves the zip. The
bundle (scorer.export) is written into a temporary folder and renamed into place, so a crash
mid-export leaves either the old bundle or none, and a repeated `finalise` rewrites the same one.
"""
from __future__ import annotations

import json
import logging
import shlex
import shutil
import tempfile
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import select

from knas.jobspec import JobSpec, TrainStage
from knas.result import ExportInfo, JobResult
from models import RETRAIN, Candidate, Job, Store, Training
from models.queries import top_k_winner

from .artifacts import ArtifactStore
from .runtime import Runtime

log = logging.getLogger(__name__)


class ExportNotReady(ValueError):
    """The job has no exportable winner (yet); the message says why."""


def winner_training(session, job: Job) -> tuple[Candidate, Training]:
    """The winner's candidate and training row, or ExportNotReady saying why there is none."""
    spec = JobSpec.model_validate(job.spec)
    if spec.final.mode != "train":
        raise ExportNotReady(f"job {job.id} picked its winner by final.mode={spec.final.mode!r}: "
                             f"nothing was trained, so there are no weights to export (use final.mode=train)")
    winner = top_k_winner(session, job.id)
    if winner is None:
        raise ExportNotReady(f"job {job.id} is {job.status}: no top-k training has finished yet, so there is "
                             f"no winner to export")
    candidate, training = winner
    retrained = session.scalar(select(Training).where(Training.candidate_id == candidate.id,
                                                      Training.mode == RETRAIN, Training.status == "done"))
    training = retrained or training  # the retraining's weights are the shipped model when it finished
    if not training.artifact:
        raise ExportNotReady(f"the winner of job {job.id} has no checkpoint (it was trained without an "
                             f"artifact store, or its checkpoint was deleted)")
    return candidate, training


def reproduce_command(spec: JobSpec, dataset: str) -> str:
    """A `knas search` line that runs the same job (the card's "how to get this again")."""
    words = ["knas", "search", "--space", spec.space, "--dataset", dataset]
    candidates = spec.candidates
    if candidates.strategy == "random":
        words += ["--candidates", str(candidates.n)]
    elif candidates.strategy == "all":
        words += ["--all"]
    elif candidates.strategy == "evolution":
        words += ["--candidates", str(candidates.population), "--generations", str(candidates.generations),
                  "--children", str(candidates.per_generation)]
    else:
        for arch in candidates.archs:
            words += ["--arch", arch]
    words += ["--proxy", spec.proxy.name, "--probe", str(spec.proxy.batch_size), "--repeats", str(spec.proxy.repeats),
              "--top-k", str(spec.top_k), "--final", spec.final.mode]
    if spec.final.mode == "train":
        words += ["--epochs", str(spec.final.epochs), "--lr", str(spec.final.lr)]
        if spec.final.batch_size:
            words += ["--batch-size", str(spec.final.batch_size)]
    if spec.constraints.max_params is not None:
        words += ["--max-params", str(spec.constraints.max_params)]
    if spec.constraints.max_flops is not None:
        words += ["--max-flops", str(spec.constraints.max_flops)]
    words += ["--seed", str(spec.seed)]
    return shlex.join(words)


def build_card(job: Job, candidate: Candidate, training: Training, info, params: int, flops: int) -> dict[str, Any]:
    import scorer

    spec = JobSpec.model_validate(job.spec)
    final = spec.final
    if not isinstance(final, TrainStage):  # (winner_training has refused any other final stage)
        raise ExportNotReady(f"job {job.id} has final.mode={final.mode!r}: nothing was trained")
    data = job.data or {}
    summary = data.get("summary") or {}
    if summary:
        from scorer.folders import FolderSummary
        from scorer.data.image_folder import preprocessing_spec

        preprocessing = preprocessing_spec(FolderSummary.from_dict(summary))
        classes = list(summary["classes"])
        sizes = {split: sum(counts.values()) for split, counts in summary.get("counts", {}).items()}
    else:  # a built-in set: its plug-in hands the net normalised tensors
        preprocessing = {"decode": f"the knas dataset plug-in {job.dataset!r}", "scale": "uint8 / 255",
                         "mean": list(info.mean), "std": list(info.std), "layout": "NCHW float32"}
        classes = [str(i) for i in range(info.num_classes)]
        sizes = None
    result = JobResult.model_validate(job.result) if job.result else None
    channels, height, width = info.in_shape
    return {
        "name": f"knas-{job.id[:8]}",
        "job_id": job.id,
        "space": spec.space,
        "arch": candidate.arch,
        "params": params,
        "flops": flops,
        "input": {"channels": channels, "height": height, "width": width, "preprocessing": preprocessing},
        "classes": classes,
        "dataset": {"name": job.dataset, "fingerprint": data.get("fingerprint"), "path": data.get("path"),
                    "sizes": sizes},
        "training": {"which": ("winner retraining (final.retrain_epochs, from the candidate's initial weights)"
                               if training.mode == RETRAIN else "top-k training"),
                     "epochs": len(training.epochs or []),
                     "batch_size": final.batch_size or info.batch_size, "lr": final.lr,
                     "schedule": "SGD, Nesterov momentum 0.9, weight decay 5e-4, per-step cosine to 0",
                     "augmentation": "random crop (pad H/8) + horizontal flip" if info.augment else "none",
                     "seed": candidate.seed % (2**31), "curve": training.epochs},
        "metrics": {"valid_acc": training.valid_acc, "test_acc": training.test_acc},
        "selection": {"proxy": spec.proxy.name, "rank": candidate.rank, "score": candidate.score,
                      "scores": candidate.scores, "candidates": job.n_candidates, "top_k": job.top_k,
                      "selected_by": "valid_acc of the top-k trainings"},
        "validity": result.validity.model_dump(mode="json") if result and result.validity else None,
        "compute": result.compute.model_dump(mode="json") if result and result.compute else None,
        "knas_version": scorer.__version__,
        "seed": spec.seed,
        "spec": job.spec,
        "reproduce": reproduce_command(spec, job.dataset),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def build_export(store: Store, runtime: Runtime, job_id: str, artifacts: ArtifactStore | None = None) -> ExportInfo:
    """Write the winner's bundle into the artifact store (folder + zip); returns what the job result records."""
    import torch

    from scorer.checkpoint import load_checkpoint
    from scorer.export import export_model, flops_of
    from scorer.scoring import build_candidate

    artifacts = artifacts or runtime.artifacts
    if artifacts is None:
        raise ExportNotReady("no artifact store is configured (KNAS_ARTIFACT_DIR)")
    with store.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise ExportNotReady(f"no job {job_id}")
        candidate, training = winner_training(session, job)
        if training.artifact is None:  # (winner_training has refused a winner without a checkpoint)
            raise ExportNotReady(f"the winner of job {job_id} has no checkpoint")
        spec = runtime.dataset_for(JobSpec.model_validate(job.spec), job.data)
        info = runtime.dataset_info(spec.dataset)
        state = load_checkpoint(artifacts.path(training.artifact))
        net = build_candidate(spec.space, candidate.arch, candidate.seed, info.num_classes, info.in_shape)
        net.load_state_dict(state["model"])
        net.eval()
        params = sum(p.numel() for p in net.parameters())
        card = build_card(job, candidate, training, info, params, flops_of(net, info.in_shape))
    arch = {"space": spec.space, "arch": candidate.arch, "num_classes": info.num_classes,
            "in_shape": list(info.in_shape)}
    target = artifacts.export_dir(job_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        test = runtime.split(spec.dataset, "test")
        if test is not None:  # the card's promise, checked on the shipped file itself
            check_file = _trace_only(net, info.in_shape, staging)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates jit; its files load everywhere
                module = torch.jit.load(str(check_file))
            check_file.unlink()
            card["export_check"] = {"test_acc_torchscript": _accuracy(module, test),
                                    "matches_card": None}
            card["export_check"]["matches_card"] = card["export_check"]["test_acc_torchscript"] == training.test_acc
        files = export_model(net, tuple(info.in_shape), staging, arch, card)
        zip_tmp = staging.with_suffix(".zip.tmp")
        with zipfile.ZipFile(zip_tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for path in files.values():
                bundle.write(path, arcname=path.name)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        zip_tmp.replace(artifacts.export_zip(job_id))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        staging.with_suffix(".zip.tmp").unlink(missing_ok=True)
    return ExportInfo(status="ready", candidate_id=candidate.id, files=sorted(p.name for p in files.values()),
                      bytes=artifacts.export_zip(job_id).stat().st_size, test_acc=training.test_acc,
                      export_check=card.get("export_check"))


def _trace_only(net, in_shape, folder: Path) -> Path:
    import torch

    path = folder / ".check.torchscript.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(net, torch.zeros(1, *in_shape))
    traced.save(str(path))
    return path


def _accuracy(module, split, batch_size: int = 256) -> float:
    """Accuracy in percent over a split (tensors, or a streaming Dataset), as the trainer's evaluate counts it."""
    import torch

    batches: Iterator[Any]
    if isinstance(split, tuple):
        inputs, targets = split
        batches = ((inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, len(targets), batch_size))
        total = len(targets)
    else:
        batches = iter(torch.utils.data.DataLoader(split, batch_size=batch_size, shuffle=False))
        total = len(split)
    correct = 0
    with torch.no_grad():
        for x, y in batches:
            correct += (module(x).argmax(1) == y).sum().item()
    return 100.0 * correct / max(total, 1)


def copy_export(artifacts: ArtifactStore, job_id: str, output: Path) -> list[Path]:
    """Copy a job's bundle to `output` (created); the files written."""
    source = artifacts.export_dir(job_id)
    if not source.is_dir():
        raise ExportNotReady(f"job {job_id} has no exported model yet")
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            shutil.copy2(path, output / path.name)
            written.append(output / path.name)
    return written


def read_card(artifacts: ArtifactStore, job_id: str) -> dict[str, Any] | None:
    path = artifacts.export_dir(job_id) / "card.json"
    return json.loads(path.read_text()) if path.is_file() else None
