"""What a worker's imports cost the building of a net, and what gc.freeze() gives back.

    python bench/net_build.py [--archs 40] [--json]

Runs the same loop in four fresh processes: nats-tss nets built by `scorer.scoring.build_candidate`
with only the scorer imported, or with everything a Celery pool child imports (worker.tasks,
worker.pipeline, the store, Celery), each without and with `gc.collect(); gc.freeze()` first (what
worker/celery_app.py does in every pool child). Prints ms per net.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LOOP = """
import gc, sys, time
if sys.argv[1] == "worker":
    import worker.tasks, worker.pipeline  # noqa: F401  (what a pool child holds)
import scorer
from scorer.scoring import build_candidate
from scorer.seeding import candidate_seed
if sys.argv[2] == "frozen":
    gc.collect()
    gc.freeze()
space = scorer.get_space("nats-tss")
archs = space.sample(5, int(sys.argv[3]))
build_candidate(space, archs[0], 0, 10, (3, 32, 32))  # warm-up
start = time.perf_counter()
for arch in archs:
    build_candidate(space, arch, candidate_seed(0, arch), 10, (3, 32, 32))
print((time.perf_counter() - start) / len(archs) * 1000)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    figures = {}
    for imports in ("scorer", "worker"):
        for gc_mode in ("default", "frozen"):
            out = subprocess.run([sys.executable, "-c", LOOP, imports, gc_mode, str(args.archs)], env=env, cwd=REPO,
                                 capture_output=True, text=True, check=True).stdout
            figures[f"{imports}_{gc_mode}_ms"] = round(float(out.strip().splitlines()[-1]), 2)
            if not args.json:
                print(f"{imports:7s} imports, gc {gc_mode:7s}: {figures[f'{imports}_{gc_mode}_ms']:6.2f} ms per net")
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
