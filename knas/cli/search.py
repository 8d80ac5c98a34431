"""`knas search` and `knas score`: run work in this process on the embedded store."""
from __future__ import annotations

from typing import Any, get_args

import click
from pydantic import BaseModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from knas.jobspec import Constraints, EvolutionCandidates, JobSpec, ProxySpec, RandomCandidates, TrainStage
from knas.settings import get_settings

from .common import open_store, print_json, user_errors
from .render import console, job_details

# --final's choices: the `mode` of each final stage JobSpec accepts, in its order.
FINAL_MODES = [stage.model_fields["mode"].default for stage in get_args(JobSpec.model_fields["final"].annotation)]


def spec_default(model: type[BaseModel], name: str) -> Any:
    """The default of `model.name` (a default factory is called): what a spec gets when the option is left out."""
    return model.model_fields[name].get_default(call_default_factory=True)


def spec_help(model: type[BaseModel], name: str, prefix: str = "") -> str:
    """The field's description as an option's help (so the CLI and the API's schema say the same thing)."""
    description = model.model_fields[name].description
    if not description:
        raise ValueError(f"{model.__name__}.{name} has no description to use as help")
    return prefix + description


def spec_range(model: type[BaseModel], name: str) -> click.IntRange:
    """The field's ge/le bounds as a click range."""
    bounds = {key: getattr(m, key) for m in model.model_fields[name].metadata for key in ("ge", "le") if hasattr(m, key)}
    return click.IntRange(bounds.get("ge"), bounds.get("le"))


def spec_options(fn):
    """The job options shared by `knas search` and `knas submit`. Defaults, and help where the field
    says what the option does, come from JobSpec's fields, so the CLI asks for what the schema does."""
    options = [
        click.option("--space", default=spec_default(JobSpec, "space"), show_default=True,
                     help=spec_help(JobSpec, "space")),
        click.option("--dataset", default=spec_default(JobSpec, "dataset"), show_default=True,
                     help="dataset to probe and train on: a name (`knas datasets`), or, for `knas search`, "
                          "an image folder path (registered on the fly)"),
        click.option("--candidates", "n", type=int, default=spec_default(RandomCandidates, "n"), show_default=True,
                     help="random candidates"),
        click.option("--all", "all_archs", is_flag=True, help="score every arch of the space"),
        click.option("--generations", type=click.IntRange(0, spec_range(EvolutionCandidates, "generations").max),
                     default=0, show_default=True,
                     help="evolution: breed this many generations from the fittest (--candidates is generation 0)"),
        click.option("--children", type=spec_range(EvolutionCandidates, "children"),
                     default=spec_default(EvolutionCandidates, "children"),
                     help="evolution: new archs per generation (default: --candidates)"),
        click.option("--arch", "archs", multiple=True, help="score these archs (repeatable) instead of sampling"),
        click.option("--proxy", default=spec_default(ProxySpec, "name"), show_default=True,
                     help="zero-cost proxy (see `knas proxies`); mgm = the KNAS gradient kernel"),
        click.option("--probe", "probe", type=int, default=spec_default(ProxySpec, "batch_size"), show_default=True,
                     help=spec_help(ProxySpec, "batch_size")),
        click.option("--repeats", type=int, default=spec_default(ProxySpec, "repeats"), show_default=True,
                     help=spec_help(ProxySpec, "repeats")),
        click.option("--top-k", "top_k", type=int, default=spec_default(JobSpec, "top_k"), show_default=True,
                     help=spec_help(JobSpec, "top_k")),
        click.option("--final", type=click.Choice(FINAL_MODES), default=spec_default(JobSpec, "final").mode,
                     show_default=True, help="what picks the winner among the top-k"),
        click.option("--epochs", type=int, default=spec_default(TrainStage, "epochs"), show_default=True,
                     help="epochs when --final train"),
        click.option("--lr", type=float, default=spec_default(TrainStage, "lr"), show_default=True,
                     help="learning rate when --final train"),
        click.option("--batch-size", "batch_size", type=int, default=spec_default(TrainStage, "batch_size"),
                     help=spec_help(TrainStage, "batch_size", "training batch when --final train; ")),
        click.option("--keep-checkpoints", is_flag=True, default=spec_default(TrainStage, "keep_checkpoints"),
                     help=spec_help(TrainStage, "keep_checkpoints")),
        click.option("--seed", type=int, default=spec_default(JobSpec, "seed"), show_default=True),
        click.option("--priority", type=int, default=spec_default(JobSpec, "priority"), show_default=True,
                     help=spec_help(JobSpec, "priority")),
        click.option("--max-params", "max_params", type=int, default=spec_default(Constraints, "max_params"),
                     help=spec_help(Constraints, "max_params", "budget: ")),
        click.option("--max-flops", "max_flops", type=int, default=spec_default(Constraints, "max_flops"),
                     help=spec_help(Constraints, "max_flops", "budget: ")),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_spec(space, dataset, n, all_archs, archs, proxy, probe, top_k, final, epochs, seed, priority,
               repeats: int | None = None, lr: float | None = None, batch_size: int | None = None,
               keep_checkpoints: bool | None = None, max_params: int | None = None,
               max_flops: int | None = None,
               generations: int = 0, children: int | None = None) -> JobSpec:
    """The JobSpec the options ask for; an option left as None takes JobSpec's own default."""
    if archs:
        candidates: dict[str, Any] = {"strategy": "list", "archs": list(archs)}
    elif all_archs:
        candidates = {"strategy": "all"}
    elif generations:
        candidates = {"strategy": "evolution", "population": n, "generations": generations, "children": children}
    else:
        candidates = {"strategy": "random", "n": n}
    final_stage: dict[str, Any] = {"mode": final}
    if final == "train":
        final_stage.update(epochs=epochs, lr=lr, batch_size=batch_size, keep_checkpoints=keep_checkpoints)
    return JobSpec.model_validate(_given({
        "space": space, "dataset": dataset, "candidates": candidates,
        "proxy": {"name": proxy, "batch_size": probe, "repeats": repeats}, "seed": seed, "top_k": top_k,
        "final": final_stage, "priority": priority,
        "constraints": {"max_params": max_params, "max_flops": max_flops},
    }))


def _given(value: Any) -> Any:
    """`value` without the keys left None (nested dicts too): JobSpec fills in its defaults."""
    if isinstance(value, dict):
        return {key: _given(item) for key, item in value.items() if item is not None}
    return value


@click.command()
@spec_options
@click.option("--json", "as_json", is_flag=True, help="print the finished job as JSON")
@user_errors
def search(as_json: bool, **options) -> None:
    """Run a whole search in this process: score candidates, rank, train the top-k."""
    from models import Job
    from models.queries import job_summary
    from worker.jobs import create_job
    from worker.runner import run_job
    from worker.runtime import Runtime

    settings = get_settings()
    store = open_store()
    options["dataset"] = folder_dataset(store, options["dataset"], settings)
    spec = build_spec(**options)
    job_id = create_job(store, spec)
    runtime = Runtime.from_settings(settings, worker_name="local")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=as_json, transient=False) as bars:
        scoring = bars.add_task(f"scoring ({spec.proxy.name})", total=spec.candidate_count)
        training = bars.add_task(f"final stage ({spec.final.mode})", total=spec.top_k, visible=spec.top_k > 0)

        def on_progress(event: str, data: dict[str, Any]) -> None:
            if event == "scored":
                bars.advance(scoring)
            elif event == "trained":
                bars.advance(training)
            elif event == "epoch":
                epochs = getattr(spec.final, "epochs", "?")  # epochs come only from a training stage
                bars.update(training, description=f"training {data['epoch']}/{epochs} epochs, "
                                                  f"valid acc {data['valid_acc']:.1f}%")

        status = run_job(store, runtime, job_id, settings.chunk_size, on_progress)
    with store.session() as session:
        summary = job_summary(session.get(Job, job_id))
    if as_json:
        print_json(summary)
    else:
        job_details(summary)
    if status != "succeeded":
        raise SystemExit(1)


def folder_dataset(store, dataset: str, settings) -> str:
    """`--dataset ./some/folder`: register the folder (named after it) and return the name; a name stays."""
    import os
    import re
    from pathlib import Path

    from scorer.data import DATASETS
    from worker.datasets import find, register

    path = Path(dataset).expanduser()
    looks_like_path = os.sep in dataset or dataset.startswith(".") or dataset.startswith("~")
    if dataset in DATASETS:
        return dataset
    if not looks_like_path and (find(store, dataset) is not None or not path.is_dir()):
        return dataset  # a registered name, or an unknown one that create_job reports with the choices
    if not path.is_dir():
        raise click.ClickException(f"--dataset {dataset}: no such folder")
    name = re.sub(r"[^a-z0-9._-]+", "-", path.resolve().name.lower()).strip("-.") or "images"
    row = find(store, name)
    if row is not None and Path(row.path) != path.resolve():
        raise click.ClickException(f"a dataset named {name!r} is registered for {row.path}; register this folder "
                                   f"under another name: knas datasets add OTHER-NAME {dataset}")
    from scorer.folders import fingerprint

    if row is None or row.fingerprint != fingerprint(path.resolve()):
        entry = register(store, name, path, settings.dataset_roots(), replace=row is not None)
        click.echo(f"registered image folder {entry['path']} as dataset {name!r} "
                   f"({entry['num_classes']} classes, {entry['image_size']} px)", err=True)
    return name


@click.command()
@click.option("--space", default=spec_default(JobSpec, "space"), show_default=True)
@click.option("--arch", required=True, help="arch string of the space")
@click.option("--dataset", default="synthetic", show_default=True)
@click.option("--proxy", "proxies", multiple=True, default=["mgm"], show_default=True, help="repeatable")
@click.option("--probe", type=int, default=spec_default(ProxySpec, "batch_size"), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@user_errors
def score(space: str, arch: str, dataset: str, proxies: tuple[str, ...], probe: int, seed: int, as_json: bool) -> None:
    """Score one arch with one or more proxies."""
    import scorer

    settings = get_settings()
    space_obj = scorer.get_space(space)
    arch = space_obj.validate(arch)
    inputs, targets = scorer.probe_batch(dataset, probe, seed, data_dir=settings.data_dir)
    info = scorer.dataset_info(dataset)
    device = settings.resolved_device()
    out = {"space": space_obj.name, "arch": arch, "index": space_obj.index(arch), "dataset": dataset, "scores": {}}
    for name in proxies:
        result = scorer.score_arch(space_obj, arch, name, inputs, targets, scorer.candidate_seed(seed, arch),
                                   info.num_classes, device)
        if result.score is None:  # a rank aggregate: only its components mean anything for one arch
            for part, value in result.scores.items():
                out["scores"].setdefault(part, {"score": value, "seconds": None, "params": result.params})
            out.setdefault("notes", []).append(f"{name} ranks a whole candidate set; its components are shown")
            continue
        out["scores"][name] = {"score": result.score, "seconds": round(result.seconds, 4), "params": result.params}
    if as_json:
        print_json(out)
        return
    console.print(f"{out['space']} #{out['index']} {arch}")
    for name, entry in out["scores"].items():
        timing = f"{entry['seconds']} s, " if entry["seconds"] is not None else ""
        console.print(f"  {name}: {entry['score']:.6g}  ({timing}{entry['params']} params)")
    for note in out.get("notes", []):
        console.print(note)
