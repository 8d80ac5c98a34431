"""Bring your own data, timed: an image folder in, a shipped model out (README's second example).

    python bench/byod.py [--candidates 50] [--top-k 3] [--epochs 5] [--proxy ensemble] [--json]
    python bench/byod.py --make-folder DIR      # only write the image folder, then exit

Writes the real CIFAR-10 sample (../shared/data/cifar10-sample: 1,000 train + 1,000 test images)
as a torchvision ImageFolder of PNGs, then on a private embedded store (a fresh KNAS_HOME) runs the
real CLI and times each step as a whole process:
  1. `knas datasets add`  (every image decoded once, mean/std, fingerprint)
  2. `knas search --dataset NAME`  (score, rank, train the top-k with checkpoints, export the winner)
  3. `knas export JOB --output DIR`
then reports the export's size and the test accuracy the exported TorchScript model gets in a fresh
interpreter that never imports knas (preprocessing only as card.json says) next to the card's figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KNAS_SHARED_DATA", REPO.parent / "shared" / "data"))

# What a user of the exported model runs: torch, torchvision and Pillow only.
FRESH = """
import json, sys
from pathlib import Path
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F
bundle, folder = Path(sys.argv[1]), Path(sys.argv[2])
card = json.loads((bundle / "card.json").read_text())
pre = card["input"]["preprocessing"]
mode = "RGB" if card["input"]["channels"] == 3 else "L"
model = torch.jit.load(str(bundle / "model.torchscript.pt")).eval()
correct = total = 0
for label, name in enumerate(card["classes"]):
    xs = []
    for path in sorted((folder / "test" / name).iterdir()):
        x = F.resize(F.pil_to_tensor(Image.open(path).convert(mode)), pre["resize"],
                     interpolation=F.InterpolationMode.BILINEAR, antialias=pre["antialias"])
        xs.append(F.normalize(x.float() / 255, pre["mean"], pre["std"]))
    with torch.no_grad():
        correct += (model(torch.stack(xs)).argmax(1) == label).sum().item()
    total += len(xs)
print(json.dumps({"accuracy": 100.0 * correct / total, "images": total,
                  "knas_imported": any(m.split(".")[0] in ("knas", "scorer", "worker") for m in sys.modules)}))
"""


def make_folder(target: Path) -> Path:
    """The CIFAR-10 sample as target/{train,test}/<class>/NNNN.png (real images, lossless from the npz)."""
    import numpy as np
    from PIL import Image

    for split in ("train", "test"):
        with np.load(SHARED / "cifar10-sample" / f"cifar10_{split}_1000.npz", allow_pickle=False) as z:
            images, labels, classes = z["images"], z["labels"], [str(c) for c in z["classes"]]
        for c, name in enumerate(classes):
            folder = target / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(images[labels == c]):
                Image.fromarray(image).save(folder / f"{i:04d}.png")
    return target


def run(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make-folder", type=Path, help="only write the image folder here and exit")
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--proxy", default="ensemble")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.make_folder:
        make_folder(args.make_folder)
        print(f"wrote {args.make_folder}/train and /test (10 classes, 1,000 images each)")
        return

    knas = str(Path(sys.executable).with_name("knas"))
    with tempfile.TemporaryDirectory(prefix="knas-byod-") as tmp:
        work = Path(tmp)
        folder = make_folder(work / "cifar-folder")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
        env.update(KNAS_HOME=str(work / "home"), KNAS_DATA_DIR=str(work))
        register_s, out = run([knas, "datasets", "add", "cifar-sample", str(folder), "--json"], env)
        registered = json.loads(out)
        search_s, out = run([knas, "search", "--dataset", "cifar-sample", "--space", "nats-tss",
                             "--candidates", str(args.candidates), "--top-k", str(args.top_k),
                             "--epochs", str(args.epochs), "--proxy", args.proxy, "--seed", str(args.seed),
                             "--json"], env)
        job = json.loads(out)
        export_s, _ = run([knas, "export", job["id"], "--output", str(work / "model")], env)
        bundle = work / "model"
        card = json.loads((bundle / "card.json").read_text())
        fresh_s, out = run([sys.executable, "-I", "-c", FRESH, str(bundle), str(folder)], env)
        fresh = json.loads(out)
        zip_path = work / "home" / "artifacts" / "jobs" / job["id"] / "export.zip"
        figures = {
            "candidates": args.candidates, "top_k": args.top_k, "epochs": args.epochs, "proxy": args.proxy,
            "images": registered["sizes"], "register_seconds": round(register_s, 2),
            "search_seconds": round(search_s, 2), "export_seconds": round(export_s, 2),
            "export_bytes": {p.name: p.stat().st_size for p in sorted(bundle.iterdir())},
            "export_zip_bytes": zip_path.stat().st_size,
            "winner": card["arch"], "params": card["params"], "flops": card["flops"],
            "card_test_acc": card["metrics"]["test_acc"], "fresh_process_test_acc": fresh["accuracy"],
            "fresh_process_imported_knas": fresh["knas_imported"], "fresh_process_seconds": round(fresh_s, 2),
            "match": fresh["accuracy"] == card["metrics"]["test_acc"],
        }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"image folder: {figures['images']} images (real CIFAR-10 sample, PNG)")
    print(f"register  {figures['register_seconds']:>8.2f} s   knas datasets add")
    print(f"search    {figures['search_seconds']:>8.2f} s   {args.candidates} candidates, {args.proxy}, "
          f"top-{args.top_k} x {args.epochs} epochs, export included")
    print(f"export    {figures['export_seconds']:>8.2f} s   knas export (copy of the bundle)")
    for name, size in figures["export_bytes"].items():
        print(f"          {size:>10,d} B  {name}")
    print(f"          {figures['export_zip_bytes']:>10,d} B  export.zip (GET /v1/jobs/ID/export)")
    print(f"winner    {figures['winner']}  ({figures['params']:,} params, {figures['flops']:,} MACs)")
    print(f"test acc  card {figures['card_test_acc']:.2f} %  |  fresh process, TorchScript, no knas "
          f"{figures['fresh_process_test_acc']:.2f} %  ->  {'equal' if figures['match'] else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
