"""Register a folder of a lab's own images (torchvision ImageFolder layout) without code.

Layout: ROOT/train/<class>/*.{png,jpg,jpeg,webp,bmp} (extensions case-insensitive),
optional ROOT/valid/<class>/ and ROOT/test/<class>/. Only files directly inside a
class folder count; hidden names (leading ".") and non-image files are ignored.
Without valid/, a seeded, stratified fraction of train is held out and the seed is
recorded, so every process recomputes the same split from the file listing.

This module is deliberately torch-free (stdlib, numpy, PIL only): the HTTP API
validates and fingerprints folders with it and must never import torch.
"""
from __future__ import annotations

import hashlib
import os
import random
import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FOLDER_SPLITS = ("train", "valid", "test")
MIN_SIZE, MAX_SIZE, DEFAULT_MAX_SIZE = 8, 512, 64
SAMPLE_FILES = 32  # files whose bytes go into the fingerprint
GREY_MODES = ("1", "L", "LA", "La", "I", "F")  # plus every "I;16..." mode


class ImageFolderError(ValueError):
    """Bad input: the message names the offending path (relative to the root) and the fix."""


@dataclass(frozen=True)
class FolderSummary:
    """What registering a folder recorded: enough to rebuild every split and its preprocessing."""

    root: str
    classes: list[str]
    counts: dict[str, dict[str, int]]
    image_size: int
    channels: int
    mean: list[float]
    std: list[float]
    fingerprint: str
    valid_source: str  # "folder" or "held-out"
    split_seed: int
    valid_fraction: float

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def sizes(self) -> dict[str, int]:
        return {split: sum(per_class.values()) for split, per_class in self.counts.items()}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FolderSummary":
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise ImageFolderError(f"stored folder summary lacks {', '.join(missing)}: "
                                   "register the folder again")
        return cls(
            root=str(d["root"]),
            classes=[str(c) for c in d["classes"]],
            counts={s: {c: int(n) for c, n in per.items()} for s, per in d["counts"].items()},
            image_size=int(d["image_size"]),
            channels=int(d["channels"]),
            mean=[float(m) for m in d["mean"]],
            std=[float(s) for s in d["std"]],
            fingerprint=str(d["fingerprint"]),
            valid_source=str(d["valid_source"]),
            split_seed=int(d["split_seed"]),
            valid_fraction=float(d["valid_fraction"]),
        )


# ------------------------------------------------------------------ listing


def _visible(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if not p.name.startswith("."))


def _class_dirs(split_dir: Path) -> list[Path]:
    return [p for p in _visible(split_dir) if p.is_dir()]


def _images(class_dir: Path) -> list[str]:
    """Sorted file names of the images directly inside `class_dir`."""
    return [p.name for p in _visible(class_dir)
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]


def _split_files(root: Path, split: str, classes: list[str]) -> dict[str, list[str]]:
    """class -> sorted relative paths of root/split/class's images (missing folder: [])."""
    out = {}
    for name in classes:
        folder = root / split / name
        out[name] = [f"{split}/{name}/{f}" for f in _images(folder)] if folder.is_dir() else []
    return out


def _holdout(files: list[str], split_seed: int, valid_fraction: float) -> set[str]:
    """The held-out files of one class: round(fraction * n), at least 1 when n >= 2, never all."""
    n = len(files)
    k = min(n - 1, max(1 if n >= 2 else 0, round(valid_fraction * n)))
    order = sorted(files)
    random.Random(split_seed).shuffle(order)
    return set(order[:max(k, 0)])


def _split_lists(
    root: Path, classes: list[str], has_valid: bool, split_seed: int, valid_fraction: float,
) -> dict[str, dict[str, list[str]]]:
    """split -> class -> sorted relative paths; held-out valid files stay under train/."""
    train = _split_files(root, "train", classes)
    lists = {"train": train}
    if has_valid:
        lists["valid"] = _split_files(root, "valid", classes)
    else:
        lists["train"], lists["valid"] = {}, {}
        for name, files in train.items():
            held = _holdout(files, split_seed, valid_fraction)
            lists["train"][name] = [f for f in files if f not in held]
            lists["valid"][name] = [f for f in files if f in held]
    if (root / "test").is_dir():
        lists["test"] = _split_files(root, "test", classes)
    return lists


# ------------------------------------------------------------------ decoding


def _channels_of(mode: str) -> int:
    return 1 if mode in GREY_MODES or mode.startswith("I;") else 3


def _reason(error: Exception, path: Path) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "cannot identify image file"
    text = str(error).replace(repr(str(path)), "").replace(str(path), "").strip(" :")
    return text or type(error).__name__


def _decode(path: Path, target_mode: str | None, with_stats: bool):
    """(mode, width, height, per-channel pixel sums, sums of squares, pixels) or the error.

    Statistics use `target_mode` ("L"/"RGB"), or the image's own kind when None;
    sums are exact integers (from the histogram) so the totals are exact too.
    """
    try:
        with Image.open(path) as im:
            im.load()
            mode, (width, height) = im.mode, im.size
            if not with_stats:
                return mode, width, height, None, None, 0
            kind = target_mode or ("L" if _channels_of(mode) == 1 else "RGB")
            hist = np.asarray((im if im.mode == kind else im.convert(kind)).histogram(),
                              dtype=np.int64).reshape(-1, 256)
    except Exception as error:  # noqa: BLE001 - any decoder failure means a bad file
        return error
    values = np.arange(256, dtype=np.int64)
    sums = [int(v) for v in hist @ values]
    squares = [int(v) for v in hist @ (values * values)]
    return mode, width, height, sums, squares, width * height


def _decode_all(root: Path, jobs: list[tuple[str, bool]], target_mode: str | None) -> list:
    """Decode every (relative path, wants stats) on a thread pool (PIL releases the GIL)."""
    workers = max(2, min(16, 2 * (os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda job: _decode(root / job[0], target_mode, job[1]), jobs))
    bad = [(rel, r) for (rel, _), r in zip(jobs, results) if isinstance(r, Exception)]
    if bad:
        rel, error = bad[0]
        more = f" ({len(bad) - 1} more files cannot be decoded either)" if len(bad) > 1 else ""
        raise ImageFolderError(
            f"{rel} cannot be decoded ({_reason(error, root / rel)}): remove or replace it{more}"
        )
    return results


# ------------------------------------------------------------------ scanning


def _resolve_root(root: str | os.PathLike) -> Path:
    path = Path(root).expanduser().resolve()
    if not path.exists():
        raise ImageFolderError(f"{path} does not exist: pass the folder that contains train/ "
                               "(and optionally valid/ and test/)")
    if not path.is_dir():
        raise ImageFolderError(f"{path} is not a directory: pass the folder that contains train/ "
                               "(and optionally valid/ and test/)")
    return path


def _check_arguments(image_size, channels, valid_fraction) -> None:
    if image_size is not None and not (MIN_SIZE <= int(image_size) <= MAX_SIZE):
        raise ImageFolderError(f"image size {image_size} is outside {MIN_SIZE}..{MAX_SIZE}: "
                               f"pass an image size between {MIN_SIZE} and {MAX_SIZE}")
    if channels is not None and channels not in (1, 3):
        raise ImageFolderError(f"channels must be 1 (greyscale) or 3 (RGB), not {channels}: "
                               "pass --channels 1 or 3")
    if not 0.0 < float(valid_fraction) < 1.0:
        raise ImageFolderError(f"valid fraction {valid_fraction} must be between 0 and 1 "
                               "(exclusive), e.g. 0.1")


def _check_layout(root: Path) -> tuple[list[str], bool]:
    """Train's class names and whether valid/ exists; raises for every layout problem."""
    train = root / "train"
    if not train.is_dir():
        raise ImageFolderError(f"{root} has no train/ folder: put the training images in "
                               f"{root}/train/<class>/ (one folder per class)")
    classes = [p.name for p in _class_dirs(train)]
    if not classes:
        raise ImageFolderError("train/ has no class folders: put the images in train/<class>/, "
                               "one folder per class")
    if len(classes) < 2:
        raise ImageFolderError(f"train/ has only one class folder ({classes[0]}): "
                               "classification needs at least 2 classes, one folder each")
    for split in FOLDER_SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        dirs = _class_dirs(split_dir)
        if not dirs:
            raise ImageFolderError(f"{split}/ has no class folders: put its images in "
                                   f"{split}/<class>/, or remove {split}/")
        for folder in dirs:
            if folder.name not in classes:
                raise ImageFolderError(
                    f"{split}/{folder.name} is a class that train/ does not have: rename it to "
                    f"one of train's classes ({', '.join(classes)}) or add train/{folder.name}/"
                )
            if not _images(folder):
                raise ImageFolderError(
                    f"{split}/{folder.name} has no image files ({', '.join(IMAGE_EXTENSIONS)}): "
                    "add images or remove the folder"
                )
    return classes, (root / "valid").is_dir()


def _mixed_channels_error(jobs: list[tuple[str, bool]], results: list) -> ImageFolderError:
    grey = min((rel, r[0]) for (rel, _), r in zip(jobs, results) if _channels_of(r[0]) == 1)
    colour = min((rel, r[0]) for (rel, _), r in zip(jobs, results) if _channels_of(r[0]) == 3)
    return ImageFolderError(
        f"the images mix greyscale and colour: {grey[0]} is greyscale (mode {grey[1]}) but "
        f"{colour[0]} is colour (mode {colour[1]}): pass --channels 1 or 3 to convert them all"
    )


def scan_folder(
    root: str | os.PathLike,
    image_size: int | None = None,
    channels: int | None = None,
    split_seed: int = 0,
    valid_fraction: float = 0.1,
) -> FolderSummary:
    """Validate a folder, decode every image once, and summarise it (classes, counts, stats)."""
    _check_arguments(image_size, channels, valid_fraction)
    path = _resolve_root(root)
    classes, has_valid = _check_layout(path)
    lists = _split_lists(path, classes, has_valid, int(split_seed), float(valid_fraction))
    jobs = [(rel, split == "train")
            for split, per_class in lists.items() for name in classes for rel in per_class[name]]
    target = {None: None, 1: "L", 3: "RGB"}[channels]
    results = _decode_all(path, jobs, target)

    kinds = {_channels_of(r[0]) for r in results}
    if channels is None and len(kinds) > 1:
        raise _mixed_channels_error(jobs, results)
    resolved_channels = channels if channels is not None else kinds.pop()

    train = [r for (_, is_train), r in zip(jobs, results) if is_train]
    if not train:  # unreachable in practice: every class keeps at least one train image
        raise ImageFolderError("train/ has no images left after holding out validation images")
    if image_size is None:
        median = statistics.median_low(max(r[1], r[2]) for r in train)
        image_size = max(MIN_SIZE, min(median, DEFAULT_MAX_SIZE))
    pixels = sum(r[5] for r in train)
    mean, std = [], []
    for c in range(resolved_channels):
        total = sum(r[3][c] for r in train)
        squares = sum(r[4][c] for r in train)
        var = (pixels * squares - total * total) / (pixels * pixels * 255.0 * 255.0)
        mean.append(total / (pixels * 255.0))
        # a constant channel would divide by zero when normalising: leave its scale alone
        std.append(float(np.sqrt(var)) if var > 1e-12 else 1.0)

    return FolderSummary(
        root=str(path),
        classes=classes,
        counts={split: {name: len(per_class[name]) for name in classes}
                for split, per_class in lists.items()},
        image_size=int(image_size),
        channels=int(resolved_channels),
        mean=mean,
        std=std,
        fingerprint=fingerprint(path),
        valid_source="folder" if has_valid else "held-out",
        split_seed=int(split_seed),
        valid_fraction=float(valid_fraction),
    )


def list_split(summary: FolderSummary, split: str) -> list[tuple[str, int]]:
    """(path relative to the root, label) of every image in `split`, by class then file name."""
    if split not in FOLDER_SPLITS:
        raise ImageFolderError(f"unknown split {split!r}: choose one of {', '.join(FOLDER_SPLITS)}")
    root = Path(summary.root)
    if split not in summary.counts:
        raise ImageFolderError(f"{root} has no {split}/ folder: add {split}/<class>/ images and "
                               f"register it again, or use another split")
    lists = _split_lists(root, summary.classes, summary.valid_source == "folder",
                         summary.split_seed, summary.valid_fraction)
    return [(rel, label) for label, name in enumerate(summary.classes) for rel in lists[split][name]]


# ------------------------------------------------------------------ fingerprint and paths


def _all_image_files(root: Path) -> list[str]:
    """Every image file a scan would consider, relative and sorted (lenient: no errors)."""
    out: list[str] = []
    for split in FOLDER_SPLITS:
        split_dir = root / split
        if split_dir.is_dir():
            for folder in _class_dirs(split_dir):
                out.extend(f"{split}/{folder.name}/{f}" for f in _images(folder))
    return sorted(out)


def fingerprint(root: str | os.PathLike) -> str:
    """sha256 over every image's (path, size, mtime_ns) plus the bytes of up to 32 of them.

    Stats catch added, removed, renamed and touched files; the sampled bytes catch a
    copy that kept the timestamps. Cheap: one stat per file and at most 32 reads.
    """
    path = Path(root).expanduser().resolve()
    files = _all_image_files(path) if path.is_dir() else []
    digest = hashlib.sha256()
    for rel in files:
        st = (path / rel).stat()
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    step = max(1, -(-len(files) // SAMPLE_FILES))
    for rel in files[::step][:SAMPLE_FILES]:
        digest.update(hashlib.sha256((path / rel).read_bytes()).digest())
    return digest.hexdigest()


def check_unchanged(summary: FolderSummary) -> None:
    """Raise ImageFolderError when the folder's images differ from when it was registered."""
    root = Path(summary.root)
    if not root.is_dir():
        raise ImageFolderError(f"{root} no longer exists: restore it, or register the folder "
                               "again from its new place (knas datasets add NAME PATH)")
    if fingerprint(root) != summary.fingerprint:
        raise ImageFolderError(
            f"{root} changed since it was registered (images were added, removed or modified): "
            "register it again (knas datasets add NAME PATH) so its splits and statistics match"
        )


def within_roots(path: str | os.PathLike, roots: list[Path]) -> Path:
    """`path` resolved (symlinks and '..' followed) if it lies inside one of `roots`."""
    if not roots:
        raise ImageFolderError("no dataset folders are allowed on this server: set KNAS_DATA_DIR "
                               "to the directories (colon-separated) that may be registered")
    resolved = Path(path).expanduser().resolve()
    allowed = [Path(r).expanduser().resolve() for r in roots]
    if any(resolved == r or resolved.is_relative_to(r) for r in allowed):
        return resolved
    raise ImageFolderError(
        f"{path} (resolved to {resolved}) is outside the allowed folders: the server only reads "
        f"datasets under: {', '.join(str(r) for r in allowed)}; set KNAS_DATA_DIR to include it"
    )
