"""Budgets: every space's cost() equals the built net's counts, and a job resolved under
constraints has only candidates within budget; an impossible budget names `constraints`."""
from __future__ import annotations

import time

import pytest
import torch
from pydantic import ValidationError

from knas.jobspec import JobSpec
from scorer.proxies.flops import count_macs
from scorer.spaces import get_space

ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def built_cost(space: str, arch: str, num_classes: int, in_shape) -> tuple[int, int]:
    net = get_space(space).build(arch, num_classes=num_classes, in_shape=in_shape)
    return sum(p.numel() for p in net.parameters()), count_macs(net, torch.zeros(1, *in_shape))


@pytest.mark.parametrize("space, archs", [
    ("nats-tss", get_space("nats-tss").sample(0, 12) + [ALL_NONE, ALL_CONV3]),
    ("nats-sss", get_space("nats-sss").sample(0, 12) + ["8:8:8:8:8", "64:64:64:64:64"]),
])
@pytest.mark.parametrize("num_classes, in_shape", [(10, (3, 32, 32)), (120, (1, 16, 16))])
def test_nats_cost_formulas_match_the_built_nets(space, archs, num_classes, in_shape):
    for arch in archs:
        assert get_space(space).cost(arch, num_classes, in_shape) == built_cost(space, arch, num_classes, in_shape)


def test_published_tss_counts():
    assert get_space("nats-tss").cost(ALL_CONV3)[0] == 1531546 and get_space("nats-tss").cost(ALL_NONE)[0] == 73306


@pytest.mark.parametrize("space", ["nats-tss", "nats-sss"])
def test_filtering_a_whole_nats_space_is_cheap(space):
    start = time.perf_counter()
    costs = [get_space(space).cost(a) for a in get_space(space).all()]
    assert len(costs) == get_space(space).size and time.perf_counter() - start < 10


def spec(**changes) -> JobSpec:
    return JobSpec.model_validate({"dataset": "cifar10", "final": {"mode": "none"}, "top_k": 0, **changes})


@pytest.mark.parametrize("space, n, budget", [
    ("mbv2", 12, {"max_params": 400_000}),
    ("mbv2", 12, {"max_params": 1_000_000, "max_flops": 20_000_000}),
    ("nats-tss", 20, {"max_flops": 60_000_000}),
    ("nats-sss", 20, {"max_params": 100_000, "max_flops": 20_000_000}),
])
def test_random_candidates_are_all_within_budget_of_the_built_nets(space, n, budget):
    job = spec(space=space, candidates={"strategy": "random", "n": n}, constraints=budget, seed=3)
    archs = job.resolve_archs()
    assert len(set(archs)) == n == job.candidate_count
    assert archs == spec(space=space, candidates={"strategy": "random", "n": n}, constraints=budget,
                         seed=3).resolve_archs()  # deterministic in the seed
    for arch in archs:
        params, flops = built_cost(space, arch, 10, (3, 32, 32))
        assert params <= budget.get("max_params", params) and flops <= budget.get("max_flops", flops)
    # the budget binds: unconstrained, some sampled archs would break it
    free = get_space(space).sample(3, 200)
    limit = (budget.get("max_params", 10**18), budget.get("max_flops", 10**18))
    assert any(not (p <= limit[0] and f <= limit[1]) for p, f in (get_space(space).cost(a) for a in free))


def test_all_is_filtered_and_counted():
    budget = {"max_params": 400_000}
    job = spec(space="nats-tss", candidates={"strategy": "all"}, constraints=budget)
    archs = job.resolve_archs()
    space = get_space("nats-tss")
    expected = [a for a in space.all() if space.cost(a, 10, (3, 32, 32))[0] <= 400_000]
    assert archs == expected and job.candidate_count == len(expected)
    assert 0 < len(expected) < space.size


def test_budget_uses_the_datasets_shape_or_the_one_given():
    budget = {"max_flops": 3_000_000}
    digits = spec(space="mbv2", dataset="digits", candidates={"strategy": "random", "n": 5}, constraints=budget)
    for arch in digits.resolve_archs():  # digits: 10 classes, 1x16x16
        assert get_space("mbv2").cost(arch, 10, (1, 16, 16))[1] <= 3_000_000
    budget = {"max_flops": 15_000_000}
    folder = spec(space="mbv2", dataset="my-folder", candidates={"strategy": "random", "n": 5}, constraints=budget)
    with pytest.raises(ValueError, match="pass its num_classes and in_shape"):
        folder.resolve_archs()
    archs = folder.resolve_archs(num_classes=3, in_shape=(3, 64, 64))
    assert all(get_space("mbv2").cost(a, 3, (3, 64, 64))[1] <= 15_000_000 for a in archs) and len(archs) == 5
    tight = spec(space="mbv2", dataset="my-folder", constraints={"max_flops": 5_000_000})
    with pytest.raises(ValueError, match="constraints.max_flops=5,000,000: no arch .* at 3 classes and 3x224x224"):
        tight.resolve_archs(num_classes=3, in_shape=(3, 224, 224))


def test_listed_arch_over_budget_names_its_position_and_cost():
    with pytest.raises(ValidationError, match=r"candidates.archs\[1\] .* has 1,531,546 params and .* MACs at 10 "
                                              r"classes and 3x32x32 input, over constraints.max_params=1,000,000"):
        spec(candidates={"strategy": "list", "archs": [ALL_NONE, ALL_CONV3]}, constraints={"max_params": 1_000_000})
    ok = spec(candidates={"strategy": "list", "archs": [ALL_NONE]}, constraints={"max_params": 1_000_000})
    assert ok.resolve_archs() == [ALL_NONE]


@pytest.mark.parametrize("changes, message", [
    ({"space": "mbv2", "constraints": {"max_params": 30_000}},
     "constraints.max_params=30,000: no arch of mbv2 fits; the smallest, 'd1-w8-e1-k3|.*', has 39,010 params"),
    ({"space": "mbv2", "constraints": {"max_params": 60_000}, "candidates": {"strategy": "random", "n": 100}},
     r"constraints.max_params=60,000: only \d+ of [\d,]+ random draws from mbv2 .* fit .* asks for 100"),
    ({"space": "nats-sss", "constraints": {"max_params": 9_000}, "candidates": {"strategy": "random", "n": 5}},
     "constraints.max_params=9,000: only 1 of nats-sss's 32,768 archs fit"),
    ({"space": "nats-tss", "constraints": {"max_flops": 1_000}, "candidates": {"strategy": "all"}},
     "constraints.max_flops=1,000: none of nats-tss's 15,625 archs fit"),
    ({"constraints": {"max_params": 0}}, "greater than or equal to 1"),
    ({"constraints": {"max_gpus": 1}}, "Extra inputs are not permitted"),
])
def test_impossible_budgets_are_errors_naming_constraints(changes, message):
    with pytest.raises(ValidationError, match=message) as caught:
        spec(**changes)
    assert caught.value.errors()[0]["loc"][0] == "constraints"


def test_impossible_budget_fails_fast():
    start = time.perf_counter()
    with pytest.raises(ValidationError, match="random draws"):
        spec(space="mbv2", candidates={"strategy": "random", "n": 50_000}, constraints={"max_params": 60_000})
    assert time.perf_counter() - start < 5


def test_all_on_mbv2_is_refused_naming_candidates():
    with pytest.raises(ValidationError, match="mbv2 has 247,669,456,896 archs; use candidates.strategy 'random'") \
            as caught:
        spec(space="mbv2", candidates={"strategy": "all"})
    assert caught.value.errors()[0]["loc"] == ("candidates",)
    huge = spec(space="mbv2", candidates={"strategy": "random", "n": 10})
    assert huge.candidate_count == 10 and len(set(huge.resolve_archs())) == 10


def test_no_constraints_leave_the_old_candidates_alone():
    assert spec(candidates={"strategy": "random", "n": 30}).resolve_archs() == get_space("nats-tss").sample(0, 30)
    assert JobSpec().constraints.model_dump() == {"max_params": None, "max_flops": None}
