"""Dataset build times from an empty cache: the three paper-scale builds, side by side.

    python -m harness.bench.data_build [--quick] [--only sudoku,maze,arc]

1. Sudoku-Extreme-like 9x9: 1k train + 1k test generated here with rating >= 20 (task
   sudoku-extreme-gen), plus its 1000 augmentations per training puzzle;
2. Maze-Hard-like: 1k + 1k 30x30 mazes with shortest path > 110 (task maze-hard-gen);
3. ARC-AGI-1 with 300 augmentations per task (task arc-agi-1, augmentations=300).

Each is built into a fresh temporary cache, then built again (a cache hit: load only). Printed per
task: build wall and CPU seconds (CPU time is the figure to compare on a shared machine),
cache-hit seconds, rows per split, size on disk, and for the generators the candidates tried per
puzzle kept and CPU milliseconds per candidate. `--quick` builds a tenth of each
(to check the script, not for the record).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def timed_build(task: dict, root: Path) -> dict:
    from benchmarks import build
    from benchmarks.cache import cache_dir
    from benchmarks.registry import resolve

    spec = resolve(task)
    t0, c0 = time.perf_counter(), time.process_time()
    data = build(spec, root)
    first, cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    build(spec, root)
    again = time.perf_counter() - t0
    return {
        "spec": spec,
        "data": data,
        "build_s": first,
        "cpu_s": cpu,
        "hit_s": again,
        "mb": disk_mb(cache_dir(spec, root)),
    }


def generator_rate(kind: str, spec, count: int) -> tuple[float, float]:
    """(candidates per kept puzzle, ms per candidate) measured on `count` fresh candidates."""
    p = spec.params
    t0 = time.process_time()
    kept = 0
    if kind == "sudoku":
        from benchmarks.sudoku_solver import generate, rate

        for i in range(count):
            q, _ = generate(p.size, np.random.default_rng([p.data_seed, p.size, 99, i]), p.clues)
            kept += rate(q, p.size) >= p.min_rating
    else:
        from benchmarks.maze import generate

        for i in range(count):
            kept += generate(p.grid, p, np.random.default_rng([p.data_seed, p.grid, 99, i])) is not None
    ms = (time.process_time() - t0) / count * 1e3
    return count / max(kept, 1), ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of each size (smoke run)")
    ap.add_argument("--only", default="sudoku,maze,arc")
    args = ap.parse_args(argv)
    scale = 10 if args.quick else 1
    n = 1000 // scale
    jobs = {
        "sudoku": (
            "Sudoku-Extreme-like 9x9 (rating>=20) 1k+1k, x1000 aug",
            {"name": "sudoku-extreme-gen", "train_size": n, "test_size": n},
        ),
        "maze": (
            "Maze-Hard-like 30x30 (path>110) 1k+1k",
            {"name": "maze-hard-gen", "train_size": n, "test_size": n},
        ),
        "arc": (
            "ARC-AGI-1, 300 augmentations (100 scored)",
            {"name": "arc-agi-1", "augmentations": 300 // scale},
        ),
    }
    print(f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    rows = []
    for key in args.only.split(","):
        title, task = jobs[key]
        root = Path(tempfile.mkdtemp(prefix="rbench-bench-"))
        try:
            r = timed_build(task, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        sizes = ", ".join(f"{s} {len(d):,}" for s, d in r["data"].items())
        extra = ""
        if key in ("sudoku", "maze"):
            tries, ms = generator_rate(key, r["spec"], 200 // scale)
            extra = f"; {tries:.2f} candidates per kept, {ms:.1f} CPU ms per candidate"
            if key == "sudoku":
                ratings = r["data"]["test"].aux["rating"]
                extra += (
                    f"; test rating mean {ratings.mean():.1f}, median "
                    f"{np.median(ratings):.0f}, min {ratings.min():.0f}"
                )
        rows.append((title, r["build_s"], r["cpu_s"], r["hit_s"], r["mb"], sizes + extra))
        print(
            f"{title}: build {r['build_s']:.1f} s ({r['cpu_s']:.1f} s CPU), "
            f"cache hit {r['hit_s']:.2f} s, "
            f"{r['mb']:.0f} MB on disk; {sizes}{extra}",
            flush=True,
        )
    print("\n| dataset | build from empty cache, wall (s) | CPU (s) | cache hit (s) | on disk (MB) |")
    print("|---|---:|---:|---:|---:|")
    for title, b, c, h, mb, _ in rows:
        print(f"| {title} | {b:.1f} | {c:.1f} | {h:.2f} | {mb:.0f} |")
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
