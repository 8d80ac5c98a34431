"""Scoring speed: `mgm` against the per-sample loop it replaces and one plain batched pass.

For each probe-batch size n and a few NATS-Bench TSS cells this times

- loop:    the paper's definition done literally (tests/scorer/reference.py:
           n batch-size-1 forward+backward passes, an n x P gradient matrix, its Gram mean);
- mgm:     the registered `mgm` proxy (one batched forward+backward with per-sample
           BatchNorm; Gram mean = ||(1/n) sum_i g_i||^2);
- batched: one ordinary forward+backward of the mean cross-entropy over the same batch,
           train-mode BatchNorm, gradients w.r.t. the same parameters.

Times are medians over --repeats runs after a small warm-up (methods interleaved within each
repeat so that load drift on a shared machine hits them alike). Peak memory is measured for
each method in a FRESH process (this script re-run with the hidden --measure flag): on CPU the
growth of ru_maxrss over a baseline taken right after building the net and the batch, on CUDA
torch.cuda.max_memory_allocated over the memory allocated just before the method.

    python bench/score_speed.py [--n 16 64] [--archs 3] [--repeats 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "tests" / "scorer"):  # the loop lives in tests/scorer/reference.py
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from scorer.spaces import get_space  # noqa: E402  (does not import torch)

# torch and everything that imports it are loaded lazily (see _load_torch): the parent process
# launches the fresh memory-measuring processes BEFORE it imports torch, because on Linux a
# child's ru_maxrss starts at the parent's peak RSS (it survives fork + exec), which would
# hide the method's own peak.
torch = F = gram_mean_loop = probe_batch = _MGM = None


def _load_torch() -> None:
    global torch, F, gram_mean_loop, probe_batch, _MGM
    import torch as _torch
    from torch.nn import functional as _F

    from reference import gram_mean_loop as _loop
    from scorer.data import probe_batch as _probe
    from scorer.proxies import get_proxy

    torch, F, gram_mean_loop, probe_batch, _MGM = _torch, _F, _loop, _probe, get_proxy("mgm")

SPACE = "nats-tss"
IN_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MOSTLY_SKIP = "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
METHODS = ("loop", "mgm", "batched")


# --------------------------------------------------------------------------- setup

def bench_archs(count: int) -> list[tuple[str, str]]:
    """(label, arch): all-conv3x3, TSS index 0, mostly skip/none, then TSS indices 1, 2, ..."""
    space = get_space(SPACE)
    archs = [("all nor_conv_3x3", ALL_CONV), ("tss #0", space.arch(0)), ("mostly skip/none", MOSTLY_SKIP)]
    i = 1
    while len(archs) < count:
        archs.append((f"tss #{i}", space.arch(i)))
        i += 1
    return archs[:count]


def load_batch(n: int, seed: int, data_dir: Path, quiet: bool = False):
    """(inputs, targets, dataset name): real CIFAR-10 sample if present, else synthetic."""
    try:
        x, y = probe_batch("cifar10-sample", n, seed, data_dir=data_dir)
        return x, y, "cifar10-sample"
    except FileNotFoundError as exc:  # DatasetNotFoundError is a FileNotFoundError
        if not quiet:
            print(f"note: cifar10-sample not found under {data_dir} ({exc.__class__.__name__}); "
                  "using the synthetic dataset instead", file=sys.stderr)
        x, y = probe_batch("synthetic", n, seed)
        return x, y, "synthetic"


def build_net(arch: str, device):
    torch.manual_seed(0)
    return get_space(SPACE).build(arch, num_classes=NUM_CLASSES, in_shape=IN_SHAPE).to(device)


def pick_device(name: str):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --------------------------------------------------------------------------- the methods

def run_loop(net, x, y) -> float:
    return gram_mean_loop(net, x, y)


def run_mgm(net, x, y) -> float:
    return _MGM(net, x, y)


def run_batched(net, x, y) -> float:
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    loss = F.cross_entropy(net(x), y, reduction="mean")
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    del grads
    return float(loss.detach())


RUN = {"loop": run_loop, "mgm": run_mgm, "batched": run_batched}


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, net, x, y, device) -> tuple[float, float]:
    sync(device)
    start = time.perf_counter()
    value = fn(net, x, y)
    sync(device)
    return time.perf_counter() - start, value


# --------------------------------------------------------------------------- memory (fresh process)

def _maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def _current_rss_bytes() -> int | None:
    """Resident set size right now (Linux only): shows whether the ru_maxrss baseline is a real one."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def measure_in_this_process(method: str, arch: str, n: int, seed: int, data_dir: Path, device_name: str) -> dict:
    """Run `method` once in this (fresh) process and report its peak memory over a baseline."""
    _load_torch()
    device = pick_device(device_name)
    x, y, _ = load_batch(n, seed, data_dir, quiet=True)
    net = build_net(arch, device)
    x, y = x.to(device), y.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        RUN[method](net, x, y)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return {"method": method, "metric": "cuda max_memory_allocated", "baseline": base, "peak": peak,
                "delta": peak - base}
    rss_before = _current_rss_bytes()
    base = _maxrss_bytes()
    RUN[method](net, x, y)
    peak = _maxrss_bytes()
    # ru_maxrss only rises, so if loading data etc. peaked above what the method needs, the method's
    # peak is hidden (delta 0): flag that, the figure is then only a lower bound.
    hidden = peak == base and rss_before is not None and base - rss_before > 2**20
    return {"method": method, "metric": "ru_maxrss", "baseline": base, "peak": peak, "delta": peak - base,
            "rss_at_baseline": rss_before, "lower_bound": hidden}


def measure_fresh(method: str, arch: str, n: int, seed: int, data_dir: Path, device_name: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", method, "--arch", arch,
           "--n", str(n), "--seed", str(seed), "--data-dir", str(data_dir), "--device", device_name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory measurement of {method} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_repeated(method: str, arch: str, n: int, args) -> dict:
    """--memory-repeats fresh processes; `delta` is their median (RSS growth varies run to run)."""
    runs = [measure_fresh(method, arch, n, args.seed, args.data_dir, args.device) for _ in range(args.memory_repeats)]
    out = dict(runs[0])
    out["deltas"] = [r["delta"] for r in runs]
    out["delta"] = statistics.median(out["deltas"])
    out["lower_bound"] = any(r.get("lower_bound", False) for r in runs)
    return out


# --------------------------------------------------------------------------- the benchmark

def bench_one(label: str, arch: str, n: int, args, device: torch.device, memory: dict) -> dict:
    x, y, dataset = load_batch(n, args.seed, args.data_dir, quiet=True)
    net = build_net(arch, device)
    x, y = x.to(device), y.to(device)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)

    # Warm-up on two samples (thread pools, kernels, allocator); a full-size warm-up would double
    # the run time of the loop for little gain, and the median of the repeats absorbs a slow first run.
    for m in METHODS:
        RUN[m](net, x[:2], y[:2])

    times = {m: [] for m in METHODS}
    values = {}
    for _ in range(args.repeats):
        for m in METHODS:
            t, v = timed(RUN[m], net, x, y, device)
            times[m].append(t)
            values[m] = v
    med = {m: statistics.median(ts) for m, ts in times.items()}

    row = {
        "arch_label": label, "arch": arch, "n": n, "dataset": dataset, "params": params,
        "times_s": times, "median_s": med,
        "loop_over_mgm": med["loop"] / med["mgm"], "mgm_over_batched": med["mgm"] / med["batched"],
        "mgm_value": values["mgm"], "loop_value": values["loop"],
        "mgm_vs_loop_rel_diff": abs(values["mgm"] - values["loop"]) / max(abs(values["loop"]), 1e-12),
        "memory": memory,
    }
    if memory:
        b = memory["batched"]["delta"]
        row["mgm_mem_over_batched"] = memory["mgm"]["delta"] / b if b > 0 else None
    return row


def mib(entry: dict) -> str:
    return f"{entry['delta'] / 2**20:.1f}" + ("*" if entry.get("lower_bound") else "")


def print_table(rows: list[dict]) -> None:
    head = ("arch", "n", "loop s", "mgm s", "batched s", "loop/mgm", "mgm/batched",
            "mem loop MiB", "mem mgm MiB", "mem batched MiB", "mem mgm/batched", "mgm~loop rel")
    lines = []
    for r in rows:
        mem = r["memory"]
        lines.append((
            r["arch_label"], str(r["n"]),
            f"{r['median_s']['loop']:.3f}", f"{r['median_s']['mgm']:.3f}", f"{r['median_s']['batched']:.3f}",
            f"{r['loop_over_mgm']:.1f}x", f"{r['mgm_over_batched']:.2f}x",
            mib(mem["loop"]) if mem else "-", mib(mem["mgm"]) if mem else "-",
            mib(mem["batched"]) if mem else "-",
            f"{r['mgm_mem_over_batched']:.2f}x" if mem and r["mgm_mem_over_batched"] is not None
            else "-", f"{r['mgm_vs_loop_rel_diff']:.1e}",
        ))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    fmt = "| " + " | ".join("{:<%d}" % w for w in widths) + " |"
    print(fmt.format(*head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines:
        print(fmt.format(*line))


def environment(device: torch.device) -> dict:
    env = {
        "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[16, 64], help="probe batch sizes (default 16 64)")
    p.add_argument("--archs", type=int, default=3, help="how many cells to time (default 3)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per method; the median is reported")
    p.add_argument("--seed", type=int, default=0, help="probe-batch seed")
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--memory-repeats", type=int, default=1,
                   help="fresh processes per method for peak memory; the median is reported (default 1)")
    p.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory measurements")
    p.add_argument("--json", action="store_true", help="print machine-readable results only")
    p.add_argument("--measure", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--arch", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.measure:  # hidden: one method, once, in this fresh process
        print(json.dumps(measure_in_this_process(args.measure, args.arch, args.n[0], args.seed,
                                                 args.data_dir, args.device)))
        return 0

    archs = bench_archs(args.archs)
    # Memory first, while this process has not imported torch yet (see _load_torch).
    memory: dict[tuple[str, int], dict] = {}
    if not args.no_memory:
        for label, arch in archs:
            for n in args.n:
                memory[arch, n] = {m: measure_repeated(m, arch, n, args) for m in METHODS}
                if not args.json:
                    print(f"  memory measured: {label}, n={n}", file=sys.stderr, flush=True)

    _load_torch()
    device = pick_device(args.device)
    env = environment(device)
    _, _, dataset = load_batch(min(args.n), args.seed, args.data_dir)  # prints the fallback note once
    env["dataset"] = dataset
    if not args.json:
        print(f"device: {env['device']}{' (' + env['gpu'] + ')' if 'gpu' in env else ''}, "
              f"torch {env['torch']}, {env['threads']} threads (os.cpu_count() = {env['cpu_count']}), "
              f"data: {dataset}, repeats: {args.repeats} (median reported)", flush=True)
    rows = []
    for label, arch in archs:
        for n in args.n:
            row = bench_one(label, arch, n, args, device, memory.get((arch, n), {}))
            rows.append(row)
            if not args.json:
                print(f"  timed: {label}, n={n} ({row['params']:,} params)", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"environment": env, "results": rows}, indent=2))
    else:
        print_table(rows)
        mem_note = ("CUDA max_memory_allocated over the allocation before the method" if device.type == "cuda"
                    else "growth of ru_maxrss over a baseline taken after building net + batch")
        print(f"memory: each method in {args.memory_repeats} fresh process(es), median; {mem_note}.")
        if any(e.get("lower_bound") for r in rows for e in r["memory"].values()):
            print("*: the method's peak stayed below an earlier peak of its process (e.g. loading the data), "
                  "so ru_maxrss could not see it; the figure is a lower bound. Use a larger --n.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
