"""Where a job's files live: training checkpoints and the exported winner (torch-free).

One directory per job under the artifact root (KNAS_ARTIFACT_DIR, default HOME/artifacts; on a
cluster a mount that the API and every worker node share). The store keeps paths *relative* to the
root, so nodes that mount it at different places still agree:

    <root>/jobs/<job_id>/trainings/<candidate_id>/checkpoint.pt   last finished epoch (resume)
    <root>/jobs/<job_id>/trainings/<candidate_id>/retrain.pt      the winner's retraining, if asked for
    <root>/jobs/<job_id>/export/                                  the winner, ready to ship
    <root>/jobs/<job_id>/export.zip                               the same, as the API serves it
"""
from __future__ import annotations

import shutil
from pathlib import Path


class ArtifactStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def checkpoint(self, job_id: str, candidate_id: int, mode: str = "train") -> str:
        """The checkpoint's path relative to the root (what the trainings row stores); the winner's
        retraining has its own file beside its top-k training's."""
        name = "retrain.pt" if mode == "retrain" else "checkpoint.pt"
        return f"jobs/{job_id}/trainings/{candidate_id}/{name}"

    def path(self, relative: str) -> Path:
        return self.root / relative

    def export_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "export"

    def export_zip(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "export.zip"

    def prune_trainings(self, job_id: str, keep: set[int]) -> int:
        """Delete the checkpoints of every training but `keep` (candidate ids); returns how many went."""
        base = self.job_dir(job_id) / "trainings"
        removed = 0
        if base.is_dir():
            for folder in base.iterdir():
                if folder.is_dir() and folder.name.isdigit() and int(folder.name) not in keep:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
        return removed

    def delete_job(self, job_id: str) -> bool:
        folder = self.job_dir(job_id)
        if not folder.exists():
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True


def artifacts_from_settings(settings) -> ArtifactStore:
    return ArtifactStore(settings.effective_artifact_dir)
