"""The job spec: sane defaults, and every bad input rejected with a message naming the field."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from knas.jobspec import JobSpec

INDEX_0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def test_defaults_are_a_complete_small_search():
    spec = JobSpec()
    assert (spec.space, spec.dataset, spec.proxy.name, spec.top_k) == ("nats-tss", "digits", "ensemble", 5)
    assert spec.final.mode == "train" and spec.candidate_count == 100
    assert len(set(spec.resolve_archs())) == 100
    assert spec.resolve_archs() == JobSpec().resolve_archs()  # deterministic in the seed
    assert spec.resolve_archs() != JobSpec(seed=1).resolve_archs()


def test_all_and_list_strategies():
    assert JobSpec(space="nats-sss", candidates={"strategy": "all"}, top_k=3).candidate_count == 32768
    listed = JobSpec(candidates={"strategy": "list", "archs": [f" {INDEX_0}"]}, top_k=1)
    assert listed.resolve_archs() == [INDEX_0]


@pytest.mark.parametrize("changes, message", [
    ({"space": "darts"}, "unknown search space 'darts'"),
    ({"candidates": {"strategy": "random", "n": 20000}}, "larger than nats-tss, which has 15625"),
    ({"candidates": {"strategy": "random", "n": 0}}, "greater than or equal to 1"),
    ({"candidates": {"strategy": "list", "archs": ["|bad|"]}}, r"candidates.archs\[0\]"),
    ({"candidates": {"strategy": "list", "archs": [INDEX_0, INDEX_0]}, "top_k": 1}, "repeats"),
    ({"top_k": 500}, "top_k=500 is larger than the 100 candidates"),
    ({"top_k": -1}, "greater than or equal to 0"),
    ({"top_k": 0}, "top_k=0 leaves nothing for final.mode='train'"),
    ({"final": {"mode": "train", "epochs": 0}}, "epochs"),
    ({"final": {"mode": "magic"}}, "does not match any of the expected tags"),
    ({"proxy": {"name": "mgm", "batch_size": 0}}, "batch_size"),
    ({"colour": "red"}, "Extra inputs are not permitted"),
])
def test_bad_specs_say_what_is_wrong(changes, message):
    with pytest.raises(ValidationError, match=message):
        JobSpec.model_validate(changes)
