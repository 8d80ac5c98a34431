"""Benchmark look-up through the real nats_bench package on a tiny on-disk benchmark."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.nats_fixture import TSS_ARCH_0, TSS_DIRNAME, tss_archs, write_sss_benchmark, write_tss_benchmark
from scorer import benchmark
from scorer.benchmark import (
    ArchNotInBenchmarkError,
    BenchmarkNotFoundError,
    BenchmarkRecord,
    find_benchmark,
    lookup,
)

ARCH_9 = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
ARCH_123 = "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
ABSENT = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"

RECORDS = {
    TSS_ARCH_0: {
        "cifar10": {"valid": 81.25, "test": 85.5, "train_seconds": 120.0},
        "cifar100": {"valid": 55.75, "test": 56.125},
        "imagenet16-120": {"valid": 28.5, "test": 27.75},
    },
    ARCH_9: {
        "cifar10": {"valid": 60.0, "test": 62.5},
        "cifar100": {"valid": 30.25, "test": 31.0},
        "imagenet16-120": {"valid": 15.5, "test": 14.25},
    },
    ARCH_123: {
        "12": {
            "cifar10": {"valid": 77.0, "test": 80.0},
            "cifar100": {"valid": 50.0, "test": 51.0},
            "imagenet16-120": {"valid": 22.0, "test": 23.0},
        },
        "200": {
            "cifar10": {"valid": [88.0, 89.0, 90.0], "test": 92.0, "train_seconds": 3000.0},
            "cifar100": {"valid": 66.0, "test": 67.0},
            "imagenet16-120": {"valid": 40.0, "test": 41.0},
        },
    },
    RESNET: {
        "cifar10": {"valid": 84.0, "test": 87.0},
        "cifar100": {"valid": 58.0, "test": 59.0},
        "imagenet16-120": {"valid": 31.0, "test": 30.0},
    },
}


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    write_tss_benchmark(root, RECORDS)
    return root


@pytest.fixture(autouse=True)
def _fresh_cache():
    benchmark.clear_cache()
    yield
    benchmark.clear_cache()


def test_fixture_uses_real_benchmark_indices():
    archs = tss_archs()
    assert len(archs) == 15625
    assert archs[0] == TSS_ARCH_0 and archs[9] == ARCH_9 and archs[123] == ARCH_123


@pytest.mark.parametrize("arch", [TSS_ARCH_0, ARCH_9, RESNET])
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "imagenet16-120"])
def test_lookup_returns_the_recorded_accuracies(bench_root: Path, arch: str, dataset: str):
    rec = lookup("nats-tss", arch, dataset, bench_root)
    expected = RECORDS[arch][dataset]
    assert isinstance(rec, BenchmarkRecord)
    assert (rec.valid_acc, rec.test_acc) == (expected["valid"], expected["test"])
    assert rec.arch == arch and rec.dataset == dataset and rec.hp == "12"
    assert rec.index == tss_archs().index(arch)


def test_cifar10_test_accuracy_comes_from_the_cifar10_entry(bench_root: Path):
    # the fixture's cifar10-valid/ori-test is test - 1; we must read cifar10/ori-test
    rec = lookup("nats-tss", TSS_ARCH_0, "cifar10", bench_root)
    assert rec.test_acc == 85.5
    assert rec.train_seconds == pytest.approx(120.0)


def test_train_seconds_none_when_benchmark_has_no_times(bench_root: Path):
    assert lookup("nats-tss", ARCH_9, "cifar100", bench_root).train_seconds is None


def test_hp_selects_the_schedule_and_averages_seeds(bench_root: Path):
    short = lookup("nats-tss", ARCH_123, "cifar10", bench_root, hp="12")
    long = lookup("nats-tss", ARCH_123, "cifar10", bench_root, hp=200)
    assert (short.valid_acc, short.test_acc) == (77.0, 80.0)
    assert long.hp == "200"
    assert long.valid_acc == pytest.approx(89.0)
    assert long.test_acc == pytest.approx(92.0)
    assert long.train_seconds == pytest.approx(3000.0)
    assert lookup("nats-tss", ARCH_123, "imagenet16-120", bench_root, hp="200").test_acc == 41.0


def test_missing_hp_for_an_arch_is_a_clear_error(bench_root: Path):
    with pytest.raises(ArchNotInBenchmarkError, match="hp=200"):
        lookup("nats-tss", TSS_ARCH_0, "cifar10", bench_root, hp="200")


def test_invalid_hp_for_the_space(bench_root: Path):
    with pytest.raises(ValueError, match="hp"):
        lookup("nats-tss", TSS_ARCH_0, "cifar10", bench_root, hp="90")


def test_accepts_the_directory_itself(bench_root: Path):
    direct = bench_root / TSS_DIRNAME
    assert find_benchmark("nats-tss", bench_root) == direct.resolve()
    assert find_benchmark("nats-tss", direct) == direct.resolve()
    assert lookup("nats-tss", RESNET, "cifar100", str(direct)).valid_acc == 58.0


def test_record_to_dict_is_json_friendly(bench_root: Path):
    data = lookup("nats-tss", TSS_ARCH_0, "cifar100", bench_root).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {"arch", "index", "dataset", "hp", "valid_acc", "test_acc", "train_seconds"}


def test_missing_directory_names_the_path(tmp_path: Path):
    missing = tmp_path / "nowhere"
    with pytest.raises(BenchmarkNotFoundError) as info:
        lookup("nats-tss", TSS_ARCH_0, "cifar10", missing)
    message = str(info.value)
    assert str(missing) in message and TSS_DIRNAME in message and "KNAS_BENCHMARK_DIR" in message
    assert isinstance(info.value, FileNotFoundError)


def test_directory_without_benchmark_files(tmp_path: Path):
    with pytest.raises(BenchmarkNotFoundError, match="NATS-sss-v1_0-50262-simple"):
        find_benchmark("nats-sss", tmp_path)
    with pytest.raises(BenchmarkNotFoundError, match="KNAS_BENCHMARK_DIR"):
        find_benchmark("nats-tss", None)


def test_other_space_directory_is_refused(bench_root: Path):
    with pytest.raises(BenchmarkNotFoundError):
        find_benchmark("nats-sss", bench_root)


def test_valid_arch_missing_from_the_benchmark(bench_root: Path):
    index = tss_archs().index(ABSENT)
    with pytest.raises(ArchNotInBenchmarkError, match=f"results file {index:06d}.pickle.pbz2 is missing"):
        lookup("nats-tss", ABSENT, "cifar10", bench_root)


def test_arch_string_unknown_to_the_benchmark(bench_root: Path):
    with pytest.raises(ArchNotInBenchmarkError, match="is not in the nats-tss benchmark"):
        lookup("nats-tss", "|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", "cifar10", bench_root)


@pytest.mark.parametrize("dataset", ["digits", "synthetic", "ImageNet16-120", "cifar-10"])  # an alias too: canonical names only
def test_datasets_outside_the_benchmark(bench_root: Path, dataset: str):
    with pytest.raises(ValueError, match="cifar10, cifar100, imagenet16-120"):
        lookup("nats-tss", TSS_ARCH_0, dataset, bench_root)


def test_unknown_space(bench_root: Path):
    with pytest.raises(ValueError, match="space"):
        lookup("nas-bench-101", TSS_ARCH_0, "cifar10", bench_root)


def test_api_is_created_once_per_directory(bench_root: Path, monkeypatch: pytest.MonkeyPatch):
    import nats_bench

    calls = []
    real_create = nats_bench.create

    def counting_create(*args, **kwargs):
        calls.append(args)
        return real_create(*args, **kwargs)

    monkeypatch.setattr(nats_bench, "create", counting_create)
    for dataset in ("cifar10", "cifar100", "imagenet16-120"):
        lookup("nats-tss", TSS_ARCH_0, dataset, bench_root)
        lookup("nats-tss", ARCH_9, dataset, bench_root / TSS_DIRNAME)
    assert len(calls) == 1


def test_size_space_lookup(tmp_path: Path):
    arch = "64:32:16:8:64"
    write_sss_benchmark(
        tmp_path,
        {arch: {"90": {"cifar100": {"valid": 60.5, "test": 61.5, "train_seconds": 900.0}}}},
    )
    rec = lookup("nats-sss", arch, "cifar100", tmp_path, hp="90")
    assert (rec.valid_acc, rec.test_acc) == (60.5, 61.5)
    assert rec.train_seconds == pytest.approx(900.0)
