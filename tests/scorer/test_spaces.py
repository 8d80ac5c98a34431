"""Search spaces: the benchmark's index order, validation, and networks of the right size."""
from __future__ import annotations

import csv
import random

import pytest
import torch

from tests.support.require import require_shared
from scorer.registry import UnknownNameError
from scorer.spaces import InvalidArchError, get_space, list_spaces

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
INDEX_0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"

# Parameter counts of xautodl's `infer.tiny` (C=16, N=5) and `infer.shape.tiny` networks,
# measured with xautodl 1.0.0 from PyPI (pip install --no-deps xautodl), 10 classes.
TSS_PARAMS = {0: 129306, 1: 802426, 6111: 1073466, 9930: 1288506, 857: 858426, 123: 344346, 15624: 185306}
SSS_PARAMS = {"8:8:8:8:8": 8162, "64:64:64:64:64": 491722, "64:32:48:8:16": 202474,
              "16:40:56:24:8": 122778, "32:8:64:16:48": 127946}


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_registry_lists_both_spaces_and_rejects_unknown():
    assert {"nats-tss", "nats-sss"} <= set(list_spaces())
    assert get_space("nas-bench-201") is get_space("nats-tss")
    with pytest.raises(UnknownNameError, match="nats-tss"):
        get_space("darts")


def test_tss_index_order_matches_the_benchmark_everywhere():
    space = get_space("nats-tss")
    assert space.size == 15625
    assert space.arch(0) == INDEX_0
    for i in range(space.size):
        assert space.index(space.arch(i)) == i


def test_tss_agrees_row_by_row_with_the_benchmark_table():
    table = require_shared("nb201/nats_bench.csv")
    space = get_space("nats-tss")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == space.size
    mismatches = [i for i, row in enumerate(rows) if space.arch(i) != row["ArchitectureString"]]
    assert mismatches == []


def test_sss_index_round_trips_for_every_config():
    space = get_space("nats-sss")
    assert space.size == 32768
    assert space.arch(0) == "8:8:8:8:8" and space.arch(space.size - 1) == "64:64:64:64:64"
    for i in range(space.size):
        assert space.index(space.arch(i)) == i


@pytest.mark.parametrize("arch, expected", [(ALL_CONV3, 1531546), (ALL_NONE, 73306)])
def test_published_tss_parameter_counts(arch, expected):
    assert n_params(get_space("nats-tss").build(arch, num_classes=10)) == expected


@pytest.mark.parametrize("index", sorted(TSS_PARAMS))
def test_tss_parameter_counts_match_xautodl(index):
    space = get_space("nats-tss")
    assert n_params(space.build(space.arch(index))) == TSS_PARAMS[index]


@pytest.mark.parametrize("arch", sorted(SSS_PARAMS))
def test_sss_parameter_counts_match_xautodl(arch):
    assert n_params(get_space("nats-sss").build(arch)) == SSS_PARAMS[arch]


@pytest.mark.parametrize("name", ["nats-tss", "nats-sss"])
@pytest.mark.parametrize("in_shape, classes", [((3, 32, 32), 10), ((1, 16, 16), 120)])
def test_every_space_builds_nets_that_train(name, in_shape, classes):
    space = get_space(name)
    torch.manual_seed(0)
    net = space.build(space.sample(3, 1)[0], num_classes=classes, in_shape=in_shape)
    logits = net(torch.randn(2, *in_shape))
    assert logits.shape == (2, classes)
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ["nats-tss", "nats-sss"])
def test_sampling_is_deterministic_distinct_and_bounded(name):
    space = get_space(name)
    first, again, other = space.sample(7, 50), space.sample(7, 50), space.sample(8, 50)
    assert first == again and first != other
    assert len(set(first)) == 50
    assert space.sample(random.Random(7), 50) == first
    with pytest.raises(ValueError, match=str(space.size)):
        space.sample(0, space.size + 1)


@pytest.mark.parametrize("arch, message", [
    ("", "must be a string"),
    ("|nor_conv_3x3~0|+|none~0|none~1|", "needs 3 nodes"),
    ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_5x5'"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 .* needs 2 inputs, got 1"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must be node 0"),
    ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "must look like 'op~input'"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must start and end with"),
])
def test_tss_validation_says_what_is_wrong(arch, message):
    with pytest.raises(InvalidArchError, match=message):
        get_space("nats-tss").validate(arch)


@pytest.mark.parametrize("arch, message", [
    ("64:32:48:8", "needs 5 channel counts"),
    ("64:32:48:8:12", "layer 4 .* has '12' channels"),
    ("64:32:x:8:16", "layer 2"),
])
def test_sss_validation_says_what_is_wrong(arch, message):
    with pytest.raises(InvalidArchError, match=message):
        get_space("nats-sss").validate(arch)


def test_index_out_of_range_is_a_clear_error():
    with pytest.raises(InvalidArchError, match=r"\[0, 15624\]"):
        get_space("nats-tss").arch(15625)


def test_validate_canonicalises_whitespace():
    assert get_space("nats-tss").validate(f"  {INDEX_0} ") == INDEX_0
    assert get_space("nats-sss").validate(" 8:16:24:32:40") == "8:16:24:32:40"
