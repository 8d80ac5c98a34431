"""Benchmark look-up: the accuracies NATS-Bench recorded for an architecture.

When the user has the NATS-Bench files, "benchmark" mode replaces real
training of the top-k with a table look-up, through the maintained
`nats_bench` package (never xautodl). Only the fast-mode directory format is
supported (`NATS-tss-v1_0-3ffb9-simple/`, `NATS-sss-v1_0-50262-simple/`): it
loads one small file per queried arch instead of a multi-GB pickle.

Notes on nats_bench 1.8 (checked with numpy 2.x / torch 2.x here):
- it imports and works; its only numpy use is `str2matrix`, which we don't call;
- `nats_bench.create` needs a `str` path: a `pathlib.Path` is neither str nor
  dict there and fails with a confusing error, so we always pass `str(path)`;
- an arch missing from the benchmark gives index -1 (no exception), and a
  missing per-arch file is a bare `AssertionError`; both become
  `ArchNotInBenchmarkError` here, checked before calling into nats_bench;
- `TopologyStructure.gen_all` in its genotype_utils is broken (NameError on
  `get_combination`); we don't need it (scorer.spaces enumerates the space);
- values are converted to plain floats so records are JSON-friendly even if the
  files hold numpy scalars.
"""
from __future__ import annotations

import functools
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

logger = logging.getLogger(__name__)

ENV_VAR = "KNAS_BENCHMARK_DIR"
META_FILE = "meta.pickle.pbz2"

# our space name -> (nats_bench search-space tag, fast-mode directory name, allowed hp)
SPACES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "nats-tss": ("tss", "NATS-tss-v1_0-3ffb9-simple", ("12", "200")),
    "nats-sss": ("sss", "NATS-sss-v1_0-50262-simple", ("01", "12", "90")),
}
PathLike = Union[str, Path]


class BenchmarkNotFoundError(FileNotFoundError):
    """The benchmark files are not where the settings say; the message says what is expected."""


class ArchNotInBenchmarkError(ValueError):
    """The arch (or its entry for this dataset/hp) is not in the benchmark files."""


@dataclass
class BenchmarkRecord:
    """What the benchmark recorded for one arch on one dataset; accuracies in percent."""

    arch: str
    index: int
    dataset: str  # our name: cifar10, cifar100, imagenet16-120
    hp: str  # training schedule in epochs: "12"/"200" (tss), "01"/"12"/"90" (sss)
    valid_acc: float
    test_acc: float
    train_seconds: Optional[float] = None

    def to_dict(self) -> dict:
        return asdict(self)


def _space(space: str) -> tuple[str, str, tuple[str, ...]]:
    try:
        return SPACES[space]
    except KeyError:
        raise ValueError(f"unknown benchmark space {space!r}; expected one of {sorted(SPACES)}") from None


def _normalize_hp(space: str, hp: Union[str, int]) -> str:
    allowed = _space(space)[2]
    text = str(hp).strip()
    if text.isdigit() and len(text) < 2:
        text = text.zfill(2)  # 1 -> "01"
    if text not in allowed:
        raise ValueError(f"hp {hp!r} is not a schedule of {space}; expected one of {list(allowed)}")
    return text


def _not_found(space: str, searched: Optional[Path], reason: str) -> BenchmarkNotFoundError:
    dirname = _space(space)[1]
    where = f"in {searched}" if searched is not None else "(no benchmark directory configured)"
    return BenchmarkNotFoundError(
        f"NATS-Bench files for {space} not found {where}: {reason}. "
        f"Expected the fast-mode directory {dirname}/ (holding {META_FILE} and one "
        f"<index>.pickle.pbz2 per arch, as extracted from {dirname}.tar of the NATS-Bench "
        f"release), either that directory itself or a directory containing it. "
        f"Set {ENV_VAR} to that location."
    )


def find_benchmark(space: str, benchmark_dir: Optional[PathLike]) -> Path:
    """The fast-mode directory of `space`, given either that directory or its parent."""
    _, dirname, _ = _space(space)
    if benchmark_dir is None or str(benchmark_dir).strip() == "":
        raise _not_found(space, None, f"{ENV_VAR} is not set")
    root = Path(benchmark_dir).expanduser()
    if not root.is_dir():
        raise _not_found(space, root, "the directory does not exist")
    candidate = root / dirname
    if (candidate / META_FILE).is_file():
        return candidate.resolve()
    if (root / META_FILE).is_file():
        # the directory itself; refuse the other space's directory by name
        others = [d for s, (_, d, _) in SPACES.items() if s != space]
        if root.name in others:
            raise _not_found(space, root, f"this is the directory of another space ({root.name})")
        return root.resolve()
    if candidate.is_dir():
        raise _not_found(space, candidate, f"{META_FILE} is missing (incomplete extraction?)")
    raise _not_found(space, root, f"neither {dirname}/ nor {META_FILE} is there")


# nats_bench's fast-mode API fills a per-arch dict lazily; serialize access so
# worker threads don't load the same file twice or race on that dict.
_API_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _load_api(space: str, resolved_dir: str) -> Any:
    """One nats_bench API per (space, directory): creating it reads the meta file."""
    import nats_bench  # imported lazily: only benchmark mode needs it

    from .trusted import check_trusted

    tag = _space(space)[0]
    check_trusted(Path(resolved_dir) / META_FILE)  # a pickle: never one that others may have written
    logger.info("opening NATS-Bench %s at %s", space, resolved_dir)
    return nats_bench.create(resolved_dir, tag, fast_mode=True, verbose=False)


def clear_cache() -> None:
    """Forget the opened benchmark APIs (e.g. after the files changed)."""
    _load_api.cache_clear()


def _check_arch_file(directory: Path, index: int, arch: str) -> None:
    """nats_bench only asserts on a missing per-arch file; say what is wrong instead."""
    from .trusted import check_trusted

    names = (f"{index:06d}.pickle.pbz2", f"{index}.pickle.pbz2")
    found = [directory / name for name in names if (directory / name).is_file()]
    if not found:
        raise ArchNotInBenchmarkError(
            f"arch {arch!r} (index {index}) is listed in the benchmark at {directory} but its "
            f"results file {names[0]} is missing (incomplete extraction?)"
        )
    check_trusted(found[0])


def _info(api: Any, index: int, bench_dataset: str, hp: str, arch: str) -> dict:
    try:
        return api.get_more_info(index, bench_dataset, hp=hp, is_random=False)
    except (AssertionError, KeyError, ValueError, FileNotFoundError) as exc:
        hps = sorted(api.arch2infos_dict.get(index, {}))
        raise ArchNotInBenchmarkError(
            f"the benchmark has no {bench_dataset!r} results with hp={hp} for arch {arch!r} "
            f"(index {index}; schedules present: {hps}): {type(exc).__name__}: {exc}"
        ) from exc


def _acc(info: dict, key: str, arch: str, bench_dataset: str) -> float:
    value = info.get(key)
    if value is None:
        raise ArchNotInBenchmarkError(f"the benchmark has no {key} on {bench_dataset!r} for arch {arch!r}")
    return float(value)


def _benchmark_name(dataset: str) -> str:
    """NATS-Bench's name for our `dataset` (its registry entry's `benchmark_name`); ValueError otherwise."""
    from scorer.data import DATASETS, benchmark_datasets  # the torch-free registry

    info = DATASETS.info(dataset) if dataset in DATASETS else None
    if info is None or info.name != dataset or info.benchmark_name is None:
        raise ValueError(f"benchmark mode supports only {', '.join(benchmark_datasets())}; got dataset {dataset!r}")
    return info.benchmark_name


def lookup(
    space: str,
    arch: str,
    dataset: str,
    benchmark_dir: Optional[PathLike],
    hp: Union[str, int] = "12",
) -> BenchmarkRecord:
    """The benchmark's validation and test accuracy of `arch` on `dataset` (mean over seeds).

    For cifar10 the validation accuracy is the `cifar10-valid` entry's (trained on
    the train split, evaluated on the held-out half) and the test accuracy the
    `cifar10` entry's (trained on train+valid, evaluated on the test set), as
    NAS-Bench-201 and KNAS report them. For cifar100 and ImageNet16-120 both come
    from the same entry (x-valid and x-test halves of the original test set).
    """
    _space(space)
    bench_dataset = _benchmark_name(dataset)
    hp = _normalize_hp(space, hp)
    directory = find_benchmark(space, benchmark_dir)
    with _API_LOCK:
        api = _load_api(space, str(directory))
        index = api.query_index_by_arch(arch)
        if index < 0:
            raise ArchNotInBenchmarkError(f"arch {arch!r} is not in the {space} benchmark at {directory}")
        if index not in api.arch2infos_dict:
            _check_arch_file(directory, index, arch)
        if dataset == "cifar10":
            valid_info = _info(api, index, "cifar10-valid", hp, arch)
            test_info = _info(api, index, "cifar10", hp, arch)
            valid_acc = _acc(valid_info, "valid-accuracy", arch, "cifar10-valid")
            test_acc = _acc(test_info, "test-accuracy", arch, "cifar10")
        else:
            valid_info = test_info = _info(api, index, bench_dataset, hp, arch)
            valid_acc = _acc(valid_info, "valid-accuracy", arch, bench_dataset)
            test_acc = _acc(test_info, "test-accuracy", arch, bench_dataset)
    seconds = valid_info.get("train-all-time")
    return BenchmarkRecord(
        arch=arch,
        index=int(index),
        dataset=dataset,
        hp=hp,
        valid_acc=valid_acc,
        test_acc=test_acc,
        train_seconds=float(seconds) if seconds is not None else None,
    )
