"""The `mbv2` macro space: arch strings round-trip, the index is a bijection, the nets have the
params and MACs the encoding promises, and every registered proxy scores them."""
from __future__ import annotations

import math
import random

import pytest
import torch

import scorer
from scorer.proxies import ensemble
from scorer.proxies.flops import count_macs
from scorer.spaces import InvalidArchError, get_space
from scorer.spaces.mbv2 import EXAMPLE, HEADS, SIZE, STAGES, cost, flops, params
from tests.support.require import require_shared

SPACE = get_space("mbv2")
SMALLEST = "d1-w8-e1-k3|d1-w16-e1-k3|d1-w32-e1-k3|d1-w64-e1-k3|d1-w96-e1-k3|h256"
LARGEST = "d4-w24-e6-k7|d4-w40-e6-k7|d4-w64-e6-k7|d4-w128-e6-k7|d4-w192-e6-k7|h1280"
SMALL = ("d1-w8-e3-k5|d2-w16-e1-k3|d1-w32-e3-k3|d1-w64-e1-k7|d1-w96-e1-k3|h256",
         "d2-w12-e1-k7|d1-w24-e3-k3|d2-w32-e1-k5|d1-w64-e3-k3|d1-w96-e1-k5|h256")


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_registered_with_its_size_and_not_enumerable():
    assert "mbv2" in scorer.list_spaces() and get_space("mobilenetv2") is SPACE
    assert SPACE.size == SIZE == 144**5 * 4 == 247_669_456_896
    assert not SPACE.enumerable
    with pytest.raises(ValueError, match="mbv2 has 247,669,456,896 archs; use candidates.strategy 'random'"):
        SPACE.all()


def test_index_is_a_mixed_radix_bijection():
    assert SPACE.arch(0) == SMALLEST and SPACE.arch(SPACE.size - 1) == LARGEST
    assert SPACE.index(SMALLEST) == 0 and SPACE.index(LARGEST) == SPACE.size - 1
    assert SPACE.arch(1) == SMALLEST.replace("h256", "h512")  # the head varies fastest
    rng = random.Random(0)
    for index in [rng.randrange(SPACE.size) for _ in range(500)]:
        assert SPACE.index(SPACE.arch(index)) == index
    assert SPACE.index(SPACE.arch(SPACE.size - 1)) < 2**63  # fits a BIGINT column
    for bad in (-1, SPACE.size, 1.5):
        with pytest.raises(InvalidArchError):
            SPACE.arch(bad)


def test_sample_is_uniform_distinct_and_seeded():
    archs = SPACE.sample(0, 300)
    assert len(set(archs)) == 300 and archs == SPACE.sample(0, 300) and archs != SPACE.sample(1, 300)
    assert all(SPACE.validate(a) == a for a in archs)
    heads = [a.rsplit("|h", 1)[1] for a in SPACE.sample(3, 2000)]
    for head in HEADS:  # each of the 4 heads about a quarter of the time
        assert 400 < heads.count(str(head)) < 600
    with pytest.raises(ValueError, match="cannot sample"):
        SPACE.sample(0, SPACE.size + 1)


def test_validate_canonicalises():
    assert SPACE.validate(EXAMPLE) == EXAMPLE
    messy = " K5-E6-W24-D2 | d1-w16-e1-k3|d3-w40-e6-k5|d3-w80-e6-k3|d2-w128-e6-k7 | h1024 "
    assert SPACE.validate(messy) == "d2-w24-e6-k5|d1-w16-e1-k3|d3-w40-e6-k5|d3-w80-e6-k3|d2-w128-e6-k7|h1024"


@pytest.mark.parametrize("arch, message", [
    ("", "must be a string like"),
    ("d1-w16-e1-k3|h256", "needs 5 stages and a head"),
    (EXAMPLE.replace("w24", "w25"), r"stage 2 \('d2-w25-e6-k3'\): width '25' is not allowed; stage 2 allows w in "
                                    r"\{16, 24, 32, 40\}"),
    (EXAMPLE.replace("d3-w40-e6-k5", "d3-w40-e6-k4"), r"stage 3 .*kernel '4' is not allowed.*\{3, 5, 7\}"),
    (EXAMPLE.replace("d3-w40-e6-k5", "d5-w40-e6-k5"), r"stage 3 .*depth '5' is not allowed.*\{1, 2, 3, 4\}"),
    (EXAMPLE.replace("d3-w80-e6-k3", "d3-w80-e4-k3"), r"stage 4 .*expansion '4' is not allowed.*\{1, 3, 6\}"),
    (EXAMPLE.replace("d3-w80-e6-k3", "d3-w80-e6"), r"stage 4 .*missing kernel"),
    (EXAMPLE.replace("d3-w80-e6-k3", "d3-w80-e6-k3-k5"), r"stage 4 .*'k' given twice"),
    (EXAMPLE.replace("d3-w80-e6-k3", "d3-w80-e6-x3"), r"stage 4 .*'x3' is not a field"),
    (EXAMPLE.replace("h1024", "h1000"), r"head .*h<width> with width in \{256, 512, 1024, 1280\}"),
])
def test_invalid_archs_say_which_stage_and_field(arch, message):
    with pytest.raises(InvalidArchError, match=message):
        SPACE.validate(arch)


def test_strides_follow_the_input_size():
    def final_side(side: int) -> int:
        net = SPACE.build(SMALLEST, 10, (3, side, side)).eval()
        with torch.no_grad():
            feature = net.stem(torch.zeros(1, 3, side, side))
            for block in net.blocks:
                feature = block(feature)
        return feature.shape[-1]

    assert [final_side(s) for s in (16, 32, 64, 224)] == [2, 4, 4, 7]


@pytest.mark.parametrize("in_shape, archs", [
    ((3, 32, 32), SPACE.sample(7, 20) + [SMALLEST, LARGEST]),
    ((3, 64, 64), SPACE.sample(8, 3)),
    ((1, 32, 32), SPACE.sample(9, 3)),
    ((1, 16, 16), SPACE.sample(10, 2)),
])
def test_params_and_flops_formulas_match_the_built_nets(in_shape, archs):
    for arch in archs:
        net = SPACE.build(arch, num_classes=7, in_shape=in_shape)
        built = (n_params(net), count_macs(net, torch.zeros(1, *in_shape)))
        assert (params(arch, 7, in_shape), flops(arch, 7, in_shape)) == built, arch
        assert cost(arch, 7, in_shape) == SPACE.cost(arch, 7, in_shape) == built
        assert scorer.get_proxy("params")(net, torch.zeros(2, *in_shape), torch.zeros(2, dtype=torch.long)) \
            == built[0]


def test_cheapest_arch_is_the_minimum_of_both_costs():
    low = SPACE.cost(SPACE.cheapest_arch())
    for arch in SPACE.sample(11, 200):
        p, f = SPACE.cost(arch)
        assert p >= low[0] and f >= low[1]


def test_nets_train_on_one_and_three_channels():
    for in_shape in [(3, 32, 32), (1, 16, 16)]:
        torch.manual_seed(0)
        net = SPACE.build(SMALL[0], num_classes=5, in_shape=in_shape)
        x, y = torch.randn(4, *in_shape), torch.randint(0, 5, (4,))
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        assert math.isfinite(loss.item())
        assert len(net.feature_blocks()) == 1 + 6  # stem + 6 blocks of SMALL[0]


def test_every_registered_proxy_scores_small_archs_on_real_images():
    data_dir = require_shared("cifar10-sample").parent
    inputs, targets = scorer.probe_batch("cifar10-sample", 8, 0, data_dir=data_dir)
    parts: dict[str, list[float]] = {}
    for arch in SMALL:
        for name in scorer.list_proxies():
            result = scorer.score_arch(SPACE, arch, name, inputs, targets, scorer.candidate_seed(0, arch), 10)
            scores = result.scores if result.score is None else {name: result.score}
            for part, value in scores.items():
                assert isinstance(value, float) and math.isfinite(value), (arch, part, value)
            if name == "ensemble":
                for part, value in scores.items():
                    parts.setdefault(part, []).append(value)
    assert set(parts) == set(ensemble.COMPONENTS)
    assert all(math.isfinite(v) for v in ensemble.aggregate(parts))


def test_stage_table_is_what_the_docs_say():
    assert [s for s, _ in STAGES] == [1, 2, 2, 2, 1]
    assert all(len(widths) == 4 for _, widths in STAGES)
