"""Bring your own data, end to end on the embedded store: register an image folder of real CIFAR-10
images, search it in-process, and ship the winner — checked in a fresh interpreter that never
imports knas, preprocessing the test images only as card.json says."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.support.image_folders import make_image_folder
from knas.jobspec import JobSpec
from models import Job, Training
from worker import datasets
from worker.artifacts import ArtifactStore
from worker.jobs import SpecError, create_job, delete_job
from worker.runner import run_job
from worker.runtime import Runtime

pytestmark = pytest.mark.slow  # whole jobs, end to end: out of the fast lane (README.md)

FRESH = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np, onnxruntime, torch
    from PIL import Image
    from torchvision.transforms.v2 import functional as F
    bundle, folder = Path(sys.argv[1]), Path(sys.argv[2])
    card = json.loads((bundle / "card.json").read_text())
    pre = card["input"]["preprocessing"]
    mode = "RGB" if card["input"]["channels"] == 3 else "L"
    model = torch.jit.load(str(bundle / "model.torchscript.pt"))
    model.eval()
    xs, ys = [], []
    for label, name in enumerate(card["classes"]):
        for path in sorted((folder / "test" / name).iterdir()):
            x = F.pil_to_tensor(Image.open(path).convert(mode))
            x = F.resize(x, pre["resize"], interpolation=F.InterpolationMode.BILINEAR, antialias=pre["antialias"])
            xs.append(F.normalize(x.float() / 255, pre["mean"], pre["std"]))
            ys.append(label)
    x, y = torch.stack(xs), torch.tensor(ys)
    with torch.no_grad():
        logits = model(x)
    accuracy = 100.0 * (logits.argmax(1) == y).sum().item() / len(y)
    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"))
    onnx_logits = session.run(["logits"], {"input": x.numpy()})[0]
    print(json.dumps({"accuracy": accuracy, "onnx_max_diff": float(np.abs(onnx_logits - logits.numpy()).max()),
                      "knas_imported": any(m.split(".")[0] in ("knas", "scorer", "worker") for m in sys.modules),
                      "n": len(y)}))
""")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "cifar-folder", per_class=8, test_per_class=4)


def _runtime(tmp_path: Path, loader_workers: int = 0) -> Runtime:
    return Runtime(device="cpu", worker_name="test", artifact_dir=tmp_path / "artifacts", loader_workers=loader_workers)


def _spec(**final) -> JobSpec:
    return JobSpec.model_validate({
        "space": "nats-tss", "dataset": "pets", "candidates": {"strategy": "random", "n": 4},
        "proxy": {"name": "params", "batch_size": 16}, "seed": 3, "top_k": 2,
        "final": {"mode": "train", "epochs": 2, "batch_size": 32, **final}})


def test_a_registered_folder_is_searched_and_its_winner_ships(store, tmp_path, folder):
    entry = datasets.register(store, "pets", folder, roots=[tmp_path])
    assert entry["num_classes"] == 10 and entry["in_shape"] == [3, 32, 32] and entry["valid_source"] == "held-out"
    runtime = _runtime(tmp_path, loader_workers=2)  # decoding in DataLoader worker processes
    job_id = create_job(store, _spec())
    assert run_job(store, runtime, job_id) == "succeeded"

    with store.session() as session:
        job = session.get(Job, job_id)
        trainings = session.scalars(select(Training).where(Training.job_id == job_id)).all()
        data, export, winner = job.data, job.result["export"], job.result["winner"]
    # The job records exactly which data it saw.
    assert data["fingerprint"] == entry["fingerprint"] and data["path"] == str(folder.resolve())
    assert export["status"] == "ready", export
    assert {t.checkpoint_epoch for t in trainings} == {2}
    # Only the winner's checkpoint survives the job (keep_checkpoints defaults to False).
    artifacts = ArtifactStore(tmp_path / "artifacts")
    kept = {t.candidate_id for t in trainings if artifacts.path(t.artifact).exists()}
    assert kept == {winner["candidate_id"]} == {export["candidate_id"]}

    bundle = artifacts.export_dir(job_id)
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        ["model.torchscript.pt", "model.onnx", "weights.safetensors", "arch.json", "card.json", "MODEL_CARD.md"])
    card = json.loads((bundle / "card.json").read_text())
    assert card["dataset"]["fingerprint"] == entry["fingerprint"] and card["classes"] == entry["classes"]
    assert card["metrics"]["test_acc"] == winner["test_acc"] and card["arch"] == winner["arch"]
    assert card["training"]["curve"] and len(card["training"]["curve"]) == 2
    assert card["reproduce"].startswith("knas search --space nats-tss --dataset pets")
    assert card["export_check"]["matches_card"] is True

    # The acceptance test: a fresh interpreter, no knas, preprocessing only as the card says.
    out = subprocess.run([sys.executable, "-I", "-c", FRESH, str(bundle), str(folder)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    fresh = json.loads(out.stdout)
    assert fresh["knas_imported"] is False and fresh["n"] == 40
    assert fresh["accuracy"] == card["metrics"]["test_acc"]
    assert fresh["onnx_max_diff"] < 1e-4

    # A job's artifacts go with the job.
    assert delete_job(store, artifacts, job_id)
    assert not artifacts.job_dir(job_id).exists()
    with store.session() as session:
        assert session.get(Job, job_id) is None


def test_keep_checkpoints_keeps_every_top_k_checkpoint(store, tmp_path, folder):
    datasets.register(store, "pets", folder, roots=None)
    job_id = create_job(store, _spec(keep_checkpoints=True, epochs=1))
    assert run_job(store, _runtime(tmp_path), job_id) == "succeeded"
    artifacts = ArtifactStore(tmp_path / "artifacts")
    with store.session() as session:
        paths = session.scalars(select(Training.artifact).where(Training.job_id == job_id)).all()
    assert len(paths) == 2 and all(artifacts.path(p).is_file() for p in paths)


def test_a_folder_changed_after_registration_is_refused_at_submission(store, tmp_path, folder):
    from worker.jobs import check_spec

    datasets.register(store, "pets", folder, roots=[tmp_path])
    (folder / "train" / "cat" / "0000.png").unlink()
    with pytest.raises(SpecError) as caught:
        check_spec(_spec(), check_files=True, store=store, roots=[tmp_path])
    assert caught.value.field == ("dataset",) and "changed" in str(caught.value)


def test_an_unknown_dataset_names_the_registered_ones(store, tmp_path, folder):
    datasets.register(store, "pets", folder, roots=None)
    with pytest.raises(SpecError) as caught:
        create_job(store, _spec().model_copy(update={"dataset": "petz"}))
    assert "pets" in str(caught.value) and "knas datasets add" in str(caught.value)


def test_registration_refuses_paths_outside_the_allowed_roots_and_builtin_names(store, tmp_path, folder):
    elsewhere = tmp_path / "allowed"
    elsewhere.mkdir()
    with pytest.raises(datasets.DatasetError) as caught:
        datasets.register(store, "pets", folder, roots=[elsewhere])
    assert str(elsewhere) in str(caught.value)
    with pytest.raises(datasets.DatasetError, match="built-in"):
        datasets.register(store, "cifar10", folder, roots=None)
    with pytest.raises(datasets.DatasetError, match="not allowed"):
        datasets.register(store, "Bad Name", folder, roots=None)
    datasets.register(store, "pets", folder, roots=None)
    with pytest.raises(datasets.DatasetExists):
        datasets.register(store, "pets", folder, roots=None)


def test_the_winner_is_retrained_and_the_retrained_weights_ship(store, tmp_path, folder):
    datasets.register(store, "pets", folder, roots=None)
    job_id = create_job(store, _spec(epochs=1, retrain_epochs=3))
    assert run_job(store, _runtime(tmp_path), job_id) == "succeeded"
    with store.session() as session:
        job = session.get(Job, job_id)
        rows = session.scalars(select(Training).where(Training.job_id == job_id)).all()
        result = job.result
    retrain = [t for t in rows if t.mode == "retrain"]
    assert len(rows) == 3 and len(retrain) == 1  # two top-k trainings and one retraining of the winner
    (again,) = retrain
    assert again.candidate_id == result["winner"]["candidate_id"] and again.status == "done"
    assert [e["epoch"] for e in again.epochs] == [1, 2, 3] and again.checkpoint_epoch == 3
    assert result["retrain"]["test_acc"] == again.test_acc
    assert job.status == "succeeded" and result["export"]["status"] == "ready"
    card = json.loads((ArtifactStore(tmp_path / "artifacts").export_dir(job_id) / "card.json").read_text())
    assert card["training"]["which"].startswith("winner retraining") and card["training"]["epochs"] == 3
    assert card["metrics"] == {"valid_acc": again.valid_acc, "test_acc": again.test_acc}
    assert card["export_check"]["matches_card"] is True
    # the job's progress still counts its top-k only
    from models.queries import progress
    with store.session() as session:
        assert progress(session, job_id)["trained"] == 2
