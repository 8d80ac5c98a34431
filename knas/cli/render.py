"""Human-readable tables for jobs and rankings."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(stderr=False)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def ranking_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("rank", "index", "arch", "score", "params", "valid acc", "test acc"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            _fmt(row.get("rank")), _fmt(row.get("arch_index")), row["arch"], _fmt(row.get("score")),
            _fmt(row.get("params")), _fmt(row.get("valid_acc"), 4), _fmt(row.get("test_acc"), 4),
        )
    return table


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(title="jobs")
    for column in ("id", "status", "space", "dataset", "proxy", "scored", "created"):
        table.add_column(column)
    for job in jobs:
        p = job["progress"]
        table.add_row(job["id"][:8], job["status"], job["space"], job["dataset"], job["proxy"],
                      f"{p['scored'] + p['failed']}/{p['candidates']}", (job["created_at"] or "")[:19])
    return table


def job_details(job: dict[str, Any]) -> None:
    p = job["progress"]
    console.print(f"[bold]job {job['id']}[/bold]  status: [bold]{job['status']}[/bold]")
    console.print(f"space {job['space']}  dataset {job['dataset']}  proxy {job['proxy']}  "
                  f"candidates {p['scored']}/{p['candidates']} scored ({p['failed']} failed)  "
                  f"top-k {job['top_k']} ({p['trained']} trained)")
    for stage, entry in (job.get("timings") or {}).items():
        console.print(f"  {stage}: {entry.get('seconds', '…')} s")
    if job.get("error"):
        console.print(f"[red]error:[/red] {job['error']}")
    result = job.get("result") or {}
    if result.get("top_k"):
        console.print(ranking_table(result["top_k"], title="top-k"))
    winner = result.get("winner")
    if winner:
        acc = f", valid acc {winner['valid_acc']:.2f}%" if winner.get("valid_acc") is not None else ""
        console.print(f"[bold green]winner[/bold green] #{winner['rank']} {winner['arch']} "
                      f"(index {winner['arch_index']}{acc}; selected by {result['selected_by']})")
    retrain = result.get("retrain")
    if retrain:
        acc = f", valid acc {retrain['valid_acc']:.2f}%" if retrain.get("valid_acc") is not None else ""
        console.print(f"retrained the winner: {retrain['status']}, {retrain['epochs']} epochs{acc}")
    export = result.get("export")
    if export and export.get("status") == "ready":
        console.print(f"model: exported ({export['bytes']:,} bytes zipped); take it with "
                      f"`knas export {job['id'][:8]} --output DIR`")
    elif export:
        console.print(f"model: not exported ({export.get('reason')})")
    compute = result.get("compute")
    if compute:
        line = (f"compute on {compute['device']}: scoring {compute['scoring_seconds']} s, "
                f"training {compute['training_seconds']} s; energy "
                + (f"{compute['energy_joules']:.0f} J" if compute.get("energy_joules") is not None else "unknown"))
        console.print(line)
        if compute.get("train_every_candidate_seconds"):
            console.print(f"  training every candidate would have taken ~{compute['train_every_candidate_seconds']} s "
                          f"({compute['speedup_vs_training_all']}x this search)")
    validity = result.get("validity")
    if validity:
        console.print(f"validity: {validity['note']}")
    cut = result.get("cut")
    if cut:
        console.print(f"top-k cut: {cut['note']}")
