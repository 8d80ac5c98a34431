"""The job options of `knas search` / `knas submit` come from JobSpec's fields, not re-typed defaults."""
from __future__ import annotations

import inspect

import click
import pytest

from knas.cli.client import submit
from knas.cli.search import FINAL_MODES, build_spec, score, search, spec_help
from knas.jobspec import JobSpec, ProxySpec


@pytest.mark.parametrize("command", [search, submit], ids=["search", "submit"])
def test_leaving_every_option_out_asks_for_jobspecs_defaults(command):
    """Fails as soon as a CLI default disagrees with the schema's (JobSpec or a nested model's)."""
    accepted = set(inspect.signature(build_spec).parameters)
    given = command.make_context(command.name, [], resilient_parsing=False).params  # what the command receives
    defaults = {name: value for name, value in given.items() if name in accepted}
    assert set(defaults) == accepted  # every build_spec input is an option
    assert build_spec(**defaults) == JobSpec()


def test_final_offers_exactly_the_stages_jobspec_accepts():
    option = next(p for p in search.params if p.name == "final")
    assert isinstance(option.type, click.Choice) and list(option.type.choices) == FINAL_MODES
    for mode in FINAL_MODES:
        assert JobSpec.model_validate({"final": {"mode": mode}, "top_k": 0 if mode == "none" else 5}).final.mode == mode


def test_help_is_the_fields_description_where_they_mean_the_same():
    helps = {p.name: p.help for p in search.params}
    assert helps["priority"] == JobSpec.model_fields["priority"].description
    assert helps["probe"] == ProxySpec.model_fields["batch_size"].description
    assert helps["max_params"].endswith(JobSpec.model_fields["constraints"].annotation.model_fields["max_params"]
                                        .description)
    with pytest.raises(ValueError, match="no description"):
        spec_help(JobSpec, "dataset")


def test_score_shares_the_space_and_probe_defaults():
    defaults = score.make_context("score", ["--arch", "x"]).params
    assert defaults["space"] == JobSpec().space and defaults["probe"] == JobSpec().proxy.batch_size
