"""`knas datasets …`, `knas search --dataset ./folder` and `knas export` as a user runs them:
real processes on the embedded store, one-line errors that say what to do, never a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.image_folders import make_image_folder


@pytest.fixture
def knas(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    env.update(KNAS_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")

    def run(*args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "knas.cli.main", *args], env={**env, **extra},
                                capture_output=True, text=True, timeout=600, cwd=tmp_path)
        if check and result.returncode != 0:
            raise AssertionError(f"knas {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    return run


def test_add_list_show_remove(knas, tmp_path):
    folder = make_image_folder(tmp_path / "cells", per_class=3, classes=4, with_test=False)
    added = json.loads(knas("datasets", "add", "cells", str(folder), "--json").stdout)
    assert added["classes"] == sorted(p.name for p in (folder / "train").iterdir()) and added["image_size"] == 32
    assert "cells" in knas("datasets", "list").stdout and "digits" in knas("datasets").stdout
    shown = json.loads(knas("datasets", "show", "cells", "--json").stdout)
    assert shown["fingerprint"] == added["fingerprint"] and shown["counts"]["valid"]
    again = knas("datasets", "add", "cells", str(folder), check=False)
    assert again.returncode != 0 and "exists already" in again.stderr and "Traceback" not in again.stderr
    knas("datasets", "remove", "cells")
    assert "cells" not in knas("datasets", "list").stdout
    gone = knas("datasets", "show", "cells", check=False)
    assert gone.returncode != 0 and "no registered dataset 'cells'" in gone.stderr


@pytest.mark.parametrize("damage, expected", [
    (lambda root: __import__("shutil").rmtree(root / "train"), "train"),
    (lambda root: (root / "train" / "cat" / "0001.png").write_bytes(b"not an image"), "train/cat/0001.png"),
    (lambda root: [p.unlink() for p in (root / "train" / "bird").iterdir()], "train/bird"),
    (lambda root: (root / "test" / "unicorn").mkdir() or (root / "train" / "cat" / "0000.png").rename(
        root / "test" / "unicorn" / "0000.png"), "unicorn"),
])
def test_bad_folders_get_one_line_that_names_the_problem(knas, tmp_path, damage, expected):
    folder = make_image_folder(tmp_path / "bad", per_class=3, classes=4)
    damage(folder)
    result = knas("datasets", "add", "bad", str(folder), check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert expected in result.stderr, result.stderr


def test_a_path_outside_knas_data_dir_is_refused(knas, tmp_path):
    folder = make_image_folder(tmp_path / "cells", per_class=2, classes=2, with_test=False)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    result = knas("datasets", "add", "cells", str(folder), check=False, KNAS_DATA_DIR=f"{allowed}:{tmp_path / 'x'}")
    assert result.returncode != 0 and str(allowed) in result.stderr and "Traceback" not in result.stderr


def test_search_a_folder_then_export_its_winner(knas, tmp_path):
    folder = make_image_folder(tmp_path / "My Cells", per_class=4, classes=3, test_per_class=2)
    done = knas("search", "--dataset", str(folder), "--candidates", "3", "--top-k", "1", "--epochs", "1",
                "--proxy", "params", "--probe", "8", "--batch-size", "8", "--json")
    job = json.loads(done.stdout)
    assert "registered image folder" in done.stderr and "as dataset 'my-cells'" in done.stderr
    assert job["status"] == "succeeded" and job["dataset"] == "my-cells"
    out = tmp_path / "model"
    exported = knas("export", job["id"][:8], "--output", str(out))
    assert {p.name for p in out.iterdir()} == {"model.torchscript.pt", "model.onnx", "weights.safetensors",
                                                "arch.json", "card.json", "MODEL_CARD.md"}
    assert "exported the winner" in exported.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["classes"] == sorted(p.name for p in (folder / "train").iterdir())
    # the same folder again reuses its registration; a second folder of the same name is refused
    knas("search", "--dataset", str(folder), "--candidates", "2", "--top-k", "0", "--final", "none",
         "--proxy", "params", "--probe", "8")
    other = make_image_folder(tmp_path / "elsewhere" / "My Cells", per_class=2, classes=2, with_test=False)
    clash = knas("search", "--dataset", str(other), "--candidates", "2", "--final", "none", "--top-k", "0",
                 check=False)
    assert clash.returncode != 0 and "knas datasets add OTHER-NAME" in clash.stderr


def test_export_before_a_winner_exists_says_why(knas, tmp_path):
    job = json.loads(knas("search", "--dataset", "digits", "--candidates", "2", "--top-k", "0", "--final", "none",
                          "--proxy", "params", "--probe", "8", "--json").stdout)
    result = knas("export", job["id"], "--output", str(tmp_path / "m"), check=False)
    assert result.returncode != 0 and "final.mode" in result.stderr and "Traceback" not in result.stderr
