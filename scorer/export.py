"""The winner as a model you can ship: files that run without knas, and a card that says what they are.

Six files, each for a different consumer:

- `model.torchscript.pt`: `torch.jit.load` in any process with torch alone (no knas, no class code);
- `model.onnx`: onnxruntime, TensorRT, browsers ... (input `input` N×C×H×W, output `logits`, any N);
- `weights.safetensors` + `arch.json`: the plain weights and what to build them into (`load_weights`),
  for fine-tuning in PyTorch;
- `card.json` (machine-readable) and `MODEL_CARD.md` (`render_card`): data, preprocessing,
  training, metrics and how the net was selected, so a user can tell what it is good for.
"""
from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

FILES = {
    "torchscript": "model.torchscript.pt",
    "onnx": "model.onnx",
    "weights": "weights.safetensors",
    "arch": "arch.json",
    "card": "card.json",
    "model_card": "MODEL_CARD.md",
}
ONNX_OPSET = 18


def flops_of(net: nn.Module, in_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass of one sample (the `flops` proxy's count)."""
    from .proxies.flops import count_macs

    param = next(net.parameters(), None)
    sample = torch.zeros(1, *in_shape, device=param.device if param is not None else "cpu",
                         dtype=param.dtype if param is not None else torch.float32)
    return count_macs(net, sample)


def export_model(net: nn.Module, in_shape: tuple[int, int, int], out_dir: Path, arch: dict,
                 card: dict) -> dict[str, Path]:
    """Write the six FILES into `out_dir` (created) and return their paths by FILES key.

    `net` is left as it was (a CPU copy in eval mode is exported). `arch` must hold `space`,
    `arch`, `num_classes` and `in_shape` (what `load_weights` rebuilds from).
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: out_dir / name for key, name in FILES.items()}
    model = copy.deepcopy(net).to("cpu").eval()
    example = torch.randn(2, *in_shape, generator=torch.Generator().manual_seed(0))  # batch 2: nothing specialises on 1

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates jit; its files still load everywhere
        torch.jit.trace(model, example).save(str(paths["torchscript"]))
    _export_onnx(model, example, paths["onnx"])
    # own contiguous storage per tensor: safetensors refuses shared or strided ones
    save_file({k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format)
               for k, v in model.state_dict().items()}, str(paths["weights"]), metadata={"format": "pt"})
    paths["arch"].write_text(json.dumps(arch, indent=2, sort_keys=True) + "\n")
    paths["card"].write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n")
    paths["model_card"].write_text(render_card(card))
    return paths


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """The TorchScript-based exporter first: about 0.5 s a net against 15-20 s for the torch.export-based
    ("dynamo") one on one CPU thread, and every train-mode job exports its winner. It is deprecated
    for removal, so when it is gone (or fails on a net) the dynamo exporter (needs onnxscript) takes
    over. Both keep everything in one file and match onnxruntime to 1e-4 (tests/scorer/test_export.py)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its deprecation notice
            torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"],
                              output_names=["logits"], opset_version=ONNX_OPSET,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        return
    except Exception as error:  # noqa: BLE001 - any failure of the legacy path: use the maintained one
        log.info("TorchScript-based ONNX export failed (%s); using the dynamo exporter", error)
        path.unlink(missing_ok=True)
    torch.onnx.export(
        model, (example,), str(path), dynamo=True, external_data=False, verbose=False,
        input_names=["input"], output_names=["logits"], opset_version=ONNX_OPSET,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )


def load_weights(export_dir: Path | str) -> nn.Module:
    """The exported net rebuilt from `arch.json` + `weights.safetensors`, in eval mode."""
    from safetensors.torch import load_file

    from .seeding import seeded
    from .spaces import get_space

    export_dir = Path(export_dir)
    arch = json.loads((export_dir / FILES["arch"]).read_text())
    with seeded(0):  # the random init is overwritten; do not disturb the caller's RNG
        net = get_space(arch["space"]).build(arch["arch"], num_classes=arch["num_classes"],
                                             in_shape=tuple(arch["in_shape"]))
    net.load_state_dict(load_file(str(export_dir / FILES["weights"])), strict=True)
    return net.eval()


# ------------------------------------------------------------------ the model card

UNKNOWN = "unknown"
GROUPS = {  # card key -> (heading, keys rendered in this order; any other key follows)
    "input": ("Input", ("channels", "height", "width")),
    "dataset": ("Dataset", ("name", "fingerprint", "sizes")),
    "training": ("Training", ("which", "epochs", "batch_size", "lr", "schedule", "augmentation", "seed")),
    "metrics": ("Metrics", ("valid_acc", "test_acc")),
    "selection": ("Selection", ("proxy", "rank", "score", "candidates", "top_k", "scores")),
    "validity": ("Does the proxy rank well here?", ("kendall_tau", "note")),
    "compute": ("Compute", ()),
}
PREPROCESSING_KEYS = ("decode", "resize", "interpolation", "antialias", "scale", "mean", "std", "layout")
CURVE_KEYS = ("epoch", "train_loss", "train_acc", "valid_loss", "valid_acc")
PROVENANCE_KEYS = ("knas_version", "seed", "job_id", "created_at")
TOP_LEVEL = {"name", "space", "arch", "params", "flops", "classes", "reproduce", "input", *GROUPS, *PROVENANCE_KEYS}


def _fmt(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return UNKNOWN
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _cell(value: Any) -> str:
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    text = _fmt(value)
    return UNKNOWN if text == UNKNOWN else f"`{text}`"


LABELS = {"lr": "Learning rate", "top_k": "Top-k", "valid_acc": "Validation accuracy (%)",
          "test_acc": "Test accuracy (%)", "knas_version": "knas version", "job_id": "Job id"}


def _label(key: str) -> str:
    return LABELS.get(key) or key.replace("_", " ").capitalize()


def _rows(group: dict, keys: tuple[str, ...], skip: tuple[str, ...] = ()) -> list[str]:
    """A two-column table: the named keys (unknown when missing), then any others present."""
    shown = [*keys, *(k for k in group if k not in keys and k not in skip)]
    if not shown:
        return [UNKNOWN]
    return ["| | |", "|---|---|", *(f"| {_label(k)} | {_cell(group.get(k))} |" for k in shown)]


def _group(card: dict, key: str) -> dict:
    value = card.get(key)
    return value if isinstance(value, dict) else {}


def render_card(card: dict) -> str:
    """The card as Markdown; any missing field reads "unknown"."""
    out = [f"# {card.get('name') or 'knas model'}", "",
           f"An image classifier found by knas (training-free neural architecture search) in the "
           f"{_code(card.get('space'))} search space.", "",
           "## Architecture", "",
           f"- Search space: {_code(card.get('space'))}",
           f"- Architecture: {_code(card.get('arch'))}",
           f"- Parameters: {_fmt(card.get('params'))}",
           f"- Multiply-accumulates per image (FLOPs): {_fmt(card.get('flops'))}", ""]

    inp = _group(card, "input")
    pre = _group(inp, "preprocessing")
    out += ["## Input", "", *_rows(inp, GROUPS["input"][1], skip=("preprocessing",)), "",
            "Preprocessing, in this order:", "", *_rows(pre, PREPROCESSING_KEYS), ""]

    classes = card.get("classes")
    out += ["## Classes", ""]
    if isinstance(classes, (list, tuple)) and classes:
        out += ["`logits[:, i]` is the score of class i.", "", "| i | class |", "|---|---|",
                *(f"| {i} | {_cell(name)} |" for i, name in enumerate(classes)), ""]
    else:
        out += [UNKNOWN, ""]

    for key in ("dataset", "training", "metrics", "selection", "validity", "compute"):
        heading, keys = GROUPS[key]
        group = _group(card, key)
        out += [f"## {heading}", "", *_rows(group, keys, skip=("curve",)), ""]
        if key == "training":
            out += _curve(group.get("curve"))

    out += ["## How to use", "", "```python", *_snippet(inp, pre), "```", "",
            "ONNX: `model.onnx` takes `input` (N×C×H×W float32, preprocessed the same way) and returns `logits`. "
            "PyTorch: `scorer.export.load_weights(folder)` rebuilds the net from `arch.json` + "
            "`weights.safetensors`.", "",
            "## Reproduce", "", "```bash", _fmt(card.get("reproduce")), "```", "",
            "## Provenance", "", *_rows({k: card.get(k) for k in PROVENANCE_KEYS}, PROVENANCE_KEYS), ""]
    others = {k: v for k, v in card.items() if k not in TOP_LEVEL}
    if others:
        out += ["## More", "", "```json", json.dumps(others, indent=2, sort_keys=True, default=str), "```", ""]
    return "\n".join(out)


def _curve(curve: Any) -> list[str]:
    if not isinstance(curve, list) or not curve:
        return ["Training curve: unknown", ""]
    head = ["Training curve (accuracies in %):", "", "| " + " | ".join(_label(k) for k in CURVE_KEYS) + " |",
            "|" + "---|" * len(CURVE_KEYS)]
    rows = [f"| {' | '.join(_cell(m.get(k)) if isinstance(m, dict) else UNKNOWN for k in CURVE_KEYS)} |"
            for m in curve]
    return [*head, *rows, ""]


def _snippet(inp: dict, pre: dict) -> list[str]:
    """Python that runs the TorchScript file on one image, preprocessed as `pre` says."""
    channels, height, width = inp.get("channels"), inp.get("height"), inp.get("width")
    mode = "L" if channels == 1 or "'L'" in str(pre.get("decode", "")) else "RGB"
    size = pre.get("resize") or ([height, width] if height and width else None)
    if isinstance(size, int):
        size = [size, size]
    interpolation = str(pre.get("interpolation") or "bilinear").upper()
    scale = pre.get("scale")
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        to_float = f"x = x.float() * {scale!r}"
    else:
        divisor = str(scale).split("/")[-1].strip() if isinstance(scale, str) and "/" in scale else "255"
        to_float = f"x = x.float() / {divisor}"
    lines = [
        "import json",
        "import torch",
        "from PIL import Image",
        "from torchvision.transforms import InterpolationMode",
        "import torchvision.transforms.v2.functional as TF",
        "",
        'model = torch.jit.load("model.torchscript.pt").eval()',
        'classes = json.load(open("card.json"))["classes"]',
    ]
    decode = pre.get("decode")
    if decode and "PIL" not in str(decode):
        lines.append(f"# the training images were decoded as: {decode}; adapt the next line if yours differ")
    lines.append(f'x = TF.pil_to_tensor(Image.open("image.png").convert("{mode}"))  # uint8 C×H×W')
    if size:
        if not pre.get("resize"):
            lines.append(f"# no resize was recorded; the net was trained on {height}×{width} inputs")
        lines.append(f"x = TF.resize(x, {list(size)!r}, interpolation=InterpolationMode.{interpolation}, "
                     f"antialias={bool(pre.get('antialias', True))!r})")
    lines.append(to_float)
    if pre.get("mean") is not None and pre.get("std") is not None:
        lines.append(f"x = TF.normalize(x, {list(pre['mean'])!r}, {list(pre['std'])!r})")
    lines += ["with torch.no_grad():", "    logits = model(x.unsqueeze(0))  # a batch of one: N×C×H×W",
              "print(classes[logits.argmax(1).item()])"]
    return lines
