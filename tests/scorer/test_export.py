"""The exported bundle: each file works for its consumer (plain torch, onnxruntime, safetensors, a reader)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from scorer.export import export_model, flops_of, load_weights, render_card
from scorer.proxies.flops import count_macs
from scorer.scoring import build_candidate

IN_SHAPE = (3, 16, 16)
NETS = {
    "nats-tss": "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|",
    "nats-sss": "24:8:40:16:32",
}
SIX = ["MODEL_CARD.md", "arch.json", "card.json", "model.onnx", "model.torchscript.pt", "weights.safetensors"]
PREPROCESSING = {
    "decode": "PIL.Image.open(path).convert('RGB')", "resize": [16, 16], "interpolation": "bilinear",
    "antialias": True, "scale": "uint8 / 255", "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26],
    "layout": "NCHW float32",
}
CLASSES = [f"class-{c}" for c in "abcdefghij"]
FULL_CARD = {
    "name": "knas-1234abcd", "job_id": "1234abcd-0000", "space": "nats-tss", "arch": NETS["nats-tss"],
    "params": 123456, "flops": 7890123,
    "input": {"channels": 3, "height": 16, "width": 16, "preprocessing": PREPROCESSING},
    "classes": CLASSES,
    "dataset": {"name": "flowers", "fingerprint": "sha256:feedbeef",
                "sizes": {"train": 800, "valid": 100, "test": 100}},
    "training": {"which": "winner retraining", "epochs": 2, "batch_size": 64, "lr": 0.1,
                 "schedule": "per-step cosine to 0", "augmentation": "random crop + flip", "seed": 77,
                 "curve": [{"epoch": 1, "train_loss": 2.1, "train_acc": 20.5, "valid_loss": 1.9, "valid_acc": 31.0},
                           {"epoch": 2, "train_loss": 1.7, "train_acc": 40.25, "valid_loss": 1.6, "valid_acc": 45.5}]},
    "metrics": {"valid_acc": 45.5, "test_acc": 44.125},
    "selection": {"proxy": "mgm", "rank": 2, "score": 0.0123, "scores": {"mgm": 0.0123}, "candidates": 200,
                  "top_k": 5},
    "validity": {"kendall_tau": 0.42, "note": "tau over the 5 trained candidates"},
    "compute": {"scoring_seconds": 12.5, "training_seconds": 300.0},
    "knas_version": "0.1.0", "seed": 3, "reproduce": "knas search --dataset flowers --seed 3",
    "created_at": "2025-01-01T00:00:00+00:00",
}
KNAS_BLOCKER = """
import sys
KNAS = {"scorer", "knas", "models", "worker", "api"}
class NoKnas:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in KNAS:
            raise ImportError(f"knas is not installed here ({name})")
sys.meta_path.insert(0, NoKnas())
try:
    import scorer
    raise SystemExit("scorer is importable: the test would prove nothing")
except ImportError:
    pass
"""
KNAS_ABSENT = "\nassert not {m.split('.')[0] for m in sys.modules} & KNAS, 'knas was imported'\n"


def run_without_knas(code: str, cwd: Path) -> str:
    """Run `code` in a fresh isolated interpreter (-I, cwd outside the repo) that cannot import knas."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([sys.executable, "-I", "-c", KNAS_BLOCKER + code + KNAS_ABSENT], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def make_net(space: str) -> nn.Module:
    net = build_candidate(space, NETS[space], 11, 10, IN_SHAPE)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        net.train()
        for _ in range(3):
            net(torch.randn(16, *IN_SHAPE))
    return net


@pytest.fixture(scope="module", params=sorted(NETS))
def exported(request, tmp_path_factory):
    space = request.param
    net = make_net(space)
    out = tmp_path_factory.mktemp(space) / "export"
    arch = {"space": space, "arch": NETS[space], "num_classes": 10, "in_shape": list(IN_SHAPE)}
    card = {**FULL_CARD, "space": space, "arch": NETS[space]}
    files = export_model(net, IN_SHAPE, out, arch, card)
    return net, out, files, card


def batch(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *IN_SHAPE, generator=torch.Generator().manual_seed(seed))


def eager(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(x)


def test_exactly_the_six_files(exported):
    net, out, files, _ = exported
    assert sorted(p.name for p in out.iterdir()) == SIX
    assert sorted(p.name for p in files.values()) == SIX and all(p.parent == out for p in files.values())
    assert net.training  # the caller's net was not switched to eval


def test_torchscript_runs_without_knas(exported, tmp_path: Path):
    net, _, files, _ = exported
    x = batch(5)
    torch.save(x, tmp_path / "x.pt")
    run_without_knas(textwrap.dedent(f"""
        import torch
        model = torch.jit.load({str(files["torchscript"])!r})
        with torch.no_grad():
            torch.save(model(torch.load("x.pt")), "y.pt")
    """), cwd=tmp_path)
    y = torch.load(tmp_path / "y.pt")
    assert y.shape == (5, 10)
    torch.testing.assert_close(y, eager(net, x), rtol=0, atol=1e-5)


def test_onnx_matches_in_onnxruntime(exported):
    import onnx
    import onnxruntime as ort

    net, _, files, _ = exported
    model = onnx.load(str(files["onnx"]))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    session = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    for n in (8, 1, 3):  # the batch dimension is dynamic
        x = batch(n, seed=n)
        (logits,) = session.run(["logits"], {"input": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(logits), eager(net, x), rtol=0, atol=1e-4)


def test_safetensors_and_arch_rebuild_the_same_net(exported):
    net, out, files, _ = exported
    assert json.loads(files["arch"].read_text())["in_shape"] == list(IN_SHAPE)
    rng = torch.get_rng_state()
    rebuilt = load_weights(out)
    assert torch.equal(torch.get_rng_state(), rng)  # building did not consume the caller's RNG
    original = net.state_dict()
    assert rebuilt.state_dict().keys() == original.keys()
    assert all(torch.equal(v, original[k]) for k, v in rebuilt.state_dict().items())
    x = batch(4, seed=9)
    assert torch.equal(eager(rebuilt, x), eager(net, x))


def test_card_files(exported):
    _, _, files, card = exported
    text = files["card"].read_text()
    assert json.loads(text) == card
    assert text == json.dumps(card, indent=2, sort_keys=True) + "\n"
    assert files["model_card"].read_text() == render_card(card)


@pytest.mark.parametrize("exported", ["nats-tss"], indirect=True)  # the snippet does not depend on the space
def test_how_to_use_snippet_runs_as_written(exported, tmp_path: Path):
    """The card's snippet, run without knas on a real image, gives the eager net's logits."""
    from PIL import Image
    import torchvision.transforms.v2.functional as TF
    from torchvision.transforms import InterpolationMode

    net, out, _, _ = exported
    snippet = render_card(FULL_CARD).split("```python\n")[1].split("```")[0]
    for name in ("model.torchscript.pt", "card.json"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    pixels = torch.randint(0, 256, (23, 31, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    Image.fromarray(pixels.numpy()).save(tmp_path / "image.png")
    printed = run_without_knas(snippet + "\ntorch.save(logits, 'logits.pt')\n", cwd=tmp_path)

    x = TF.pil_to_tensor(Image.open(tmp_path / "image.png").convert("RGB"))
    x = TF.resize(x, [16, 16], interpolation=InterpolationMode.BILINEAR, antialias=True).float() / 255
    x = TF.normalize(x, PREPROCESSING["mean"], PREPROCESSING["std"])
    expected = eager(net, x[None])
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected, rtol=0, atol=1e-5)
    assert printed.strip() == CLASSES[expected.argmax(1).item()]


def test_render_full_card():
    text = render_card(FULL_CARD)
    for heading in ("# knas-1234abcd", "## Architecture", "## Input", "## Classes", "## Dataset", "## Training",
                    "## Metrics", "## Selection", "## Compute", "## How to use", "## Reproduce", "## Provenance"):
        assert f"\n{heading}\n" in f"\n{text}\n", heading
    assert "unknown" not in text
    assert f"`{NETS['nats-tss']}`" in text
    assert "| 9 | class-j |" in text  # classes in output order
    assert "| 2 | 1.7 | 40.25 | 1.6 | 45.5 |" in text  # the curve
    assert "| Test accuracy (%) | 44.125 |" in text and "| Kendall tau | 0.42 |" in text
    assert "| Sizes | train: 800, valid: 100, test: 100 |" in text
    assert "| Mean | 0.49, 0.48, 0.45 |" in text and "| Antialias | yes |" in text
    assert "| Params" not in text and "- Parameters: 123,456" in text
    assert "knas search --dataset flowers --seed 3" in text
    assert "| Scoring seconds | 12.5 |" in text
    compile(text.split("```python\n")[1].split("```")[0], "snippet", "exec")
    assert "TF.resize(x, [16, 16], interpolation=InterpolationMode.BILINEAR, antialias=True)" in text


def test_render_empty_card():
    text = render_card({})
    assert text.startswith("# knas model")
    assert "## Training" in text and "## How to use" in text
    assert "| Test accuracy (%) | unknown |" in text and "| Epochs | unknown |" in text
    assert "- Parameters: unknown" in text
    compile(text.split("```python\n")[1].split("```")[0], "snippet", "exec")
    partial = render_card({"training": None, "input": {"preprocessing": None}, "classes": None, "extra": {"a": 1}})
    assert "| Batch size | unknown |" in partial and "## More" in partial and '"a": 1' in partial


def test_flops_of_counts_one_sample():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 2))
    assert flops_of(net, (3, 8, 8)) == 8 * 8 * 8 * 3 * 9 + 2 * 8
    tss = build_candidate("nats-tss", NETS["nats-tss"], 0, 10, IN_SHAPE)
    assert flops_of(tss, IN_SHAPE) == count_macs(tss, torch.zeros(1, *IN_SHAPE))
    assert tss.training
