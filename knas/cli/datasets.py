"""`knas datasets` and `knas export`: bring your own images in, take the winner home.

Both talk to the store directly (like `knas users`): run them on the server host, or anywhere on
the embedded default. Over HTTP the same things are `POST /v1/datasets` and `GET /v1/jobs/{id}/export`.
"""
from __future__ import annotations

from pathlib import Path

import click

from knas.settings import get_settings

from .common import open_store, print_json, user_errors
from .render import console

ADD_EXAMPLES = """
\b
Layout (torchvision ImageFolder): PATH/train/<class>/*.png|jpg|jpeg|webp|bmp, optional
PATH/valid/<class>/... (else a seeded, stratified 10 % of train is held out) and PATH/test/<class>/...

\b
Examples:
  knas datasets add cells /data/cells                  # size and channels from the images
  knas datasets add cells /data/cells --image-size 48 --channels 1
  knas search --dataset cells --candidates 300 --top-k 5 --epochs 12
"""


@click.group(invoke_without_command=True)
@click.pass_context
def datasets(ctx: click.Context) -> None:
    """Datasets: the built-in ones and image folders registered with `knas datasets add`."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_)


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def list_(as_json: bool = False) -> None:
    """List built-in datasets and registered image folders."""
    from scorer.data import DATASETS
    from worker.datasets import list_registered

    folders = list_registered(open_store())
    if as_json:
        print_json({"built_in": DATASETS.names(), "registered": folders})
        return
    for info in DATASETS.infos():
        where = "embedded" if info.embedded else "needs KNAS_DATA_DIR"
        click.echo(f"{info.name:16s} {info.num_classes:>4d} classes {str(info.in_shape):14s} {where}: {info.description}")
    for entry in folders:
        sizes = ", ".join(f"{split} {n}" for split, n in entry["sizes"].items())
        click.echo(f"{entry['name']:16s} {entry['num_classes']:>4d} classes {str(tuple(entry['in_shape'])):14s} "
                   f"image folder {entry['path']} ({sizes})")


@datasets.command("add", epilog=ADD_EXAMPLES)
@click.argument("name")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--image-size", type=click.IntRange(8, 512), default=None,
              help="resize to S x S (default: the median image size if <= 64 px, else 64)")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="convert every image to 1 or 3 channels")
@click.option("--replace", is_flag=True, help="re-register NAME (e.g. after the folder changed)")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def add(name: str, path: Path, image_size: int | None, channels: str | None, replace: bool, as_json: bool) -> None:
    """Validate the image folder PATH and register it as dataset NAME (every image is decoded once)."""
    import time

    from worker.datasets import register

    start = time.perf_counter()
    entry = register(open_store(), name, path, get_settings().dataset_roots(), image_size=image_size,
                     channels=int(channels) if channels else None, replace=replace)
    if as_json:
        print_json({**entry, "seconds": round(time.perf_counter() - start, 3)})
        return
    _show(entry)
    click.echo(f"registered in {time.perf_counter() - start:.1f} s; search it with "
               f"`knas search --dataset {name}`", err=True)


@datasets.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def show(name: str, as_json: bool) -> None:
    """Classes, counts per split, size, normalisation and fingerprint of a registered folder."""
    from worker.datasets import describe, find

    row = find(open_store(), name)
    if row is None:
        raise click.ClickException(f"no registered dataset {name!r}; `knas datasets list` shows them")
    entry = describe(row)
    print_json(entry) if as_json else _show(entry)


@datasets.command("remove")
@click.argument("name")
@user_errors
def remove(name: str) -> None:
    """Forget a registration (the files stay; finished jobs keep the record they ran with)."""
    from worker.datasets import remove as forget

    if not forget(open_store(), name):
        raise click.ClickException(f"no registered dataset {name!r}; `knas datasets list` shows them")
    click.echo(f"removed dataset {name!r}")


def _show(entry: dict) -> None:
    console.print(f"[bold]{entry['name']}[/bold]  image folder {entry['path']}")
    console.print(f"  {entry['num_classes']} classes: {', '.join(entry['classes'][:20])}"
                  f"{' ...' if entry['num_classes'] > 20 else ''}")
    for split, counts in entry["counts"].items():
        note = " (held out from train, seeded, stratified)" if split == "valid" and entry["valid_source"] == "held-out" else ""
        console.print(f"  {split}: {sum(counts.values())} images{note}")
    console.print(f"  input {entry['channels']}x{entry['image_size']}x{entry['image_size']}, "
                  f"mean {[round(m, 4) for m in entry['mean']]}, std {[round(s, 4) for s in entry['std']]}")
    console.print(f"  fingerprint {entry['fingerprint']}")


EXPORT_EXAMPLES = """
\b
Writes model.torchscript.pt, model.onnx, weights.safetensors, arch.json, card.json, MODEL_CARD.md.
\b
Examples:
  knas export 3f2a --output ./model          # an id prefix is enough
  python -c "import torch; m = torch.jit.load('model/model.torchscript.pt'); print(m)"
"""


@click.command(epilog=EXPORT_EXAMPLES)
@click.argument("job_id")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="folder to write the model into (created)")
@click.option("--rebuild", is_flag=True, help="build the bundle again from the winner's checkpoint")
@user_errors
def export(job_id: str, output: Path, rebuild: bool) -> None:
    """Export a finished job's winner: TorchScript, ONNX, safetensors and its model card."""
    import time

    from models.queries import find_job
    from worker.artifacts import artifacts_from_settings
    from worker.export import build_export, copy_export
    from worker.runtime import Runtime

    settings = get_settings()
    store, artifacts = open_store(), artifacts_from_settings(settings)
    with store.session() as session:
        job = find_job(session, job_id)
        if job is None:
            raise click.ClickException(f"no job {job_id!r}; `knas jobs list` shows the ids")
        job_id, status = job.id, job.status
    start = time.perf_counter()
    if rebuild or not artifacts.export_dir(job_id).is_dir():
        if status != "succeeded":
            raise click.ClickException(f"job {job_id} is {status}: its winner is exported when the job succeeds")
        build_export(store, Runtime.from_settings(settings, worker_name="local"), job_id, artifacts)
    written = copy_export(artifacts, job_id, output)
    for path in written:
        click.echo(f"{path}  ({path.stat().st_size:,} bytes)")
    click.echo(f"exported the winner of job {job_id} in {time.perf_counter() - start:.1f} s", err=True)
