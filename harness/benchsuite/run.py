"""`rbench bench run`: run a suite's benchmarks in order and write one validated results file."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness.benchsuite import results
from harness.benchsuite.measure import run_benchmark
from harness.benchsuite.spec import load_suite
from harness.errors import ConfigError


def run_suite(suite: str, out: str | Path, only: list[str] | None = None, log=None) -> dict:
    """Run `suite` (a name under benchmarks/suites/ or a YAML path), optionally only the
    benchmarks named in `only`; write the results to `out` (validated) and return them."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    s = load_suite(suite)
    chosen = s.benchmarks
    if only:
        names = {b.name for b, _, _ in s.benchmarks}
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ConfigError(
                "--only", f"no benchmark {unknown[0]!r} in {s.path}: expected one of {sorted(names)}"
            )
        chosen = [t for t in s.benchmarks if t[0].name in only]
        s.benchmarks = chosen
    import torch

    if s.spec.threads:
        torch.set_num_threads(s.spec.threads)
    machine = results.machine()  # before any work: the load average at start
    t_suite = time.perf_counter()
    done = []
    for i, (b, params, repeats) in enumerate(chosen, 1):
        log(f"[{i}/{len(chosen)}] {b.name} ({b.kind}, {repeats} repeats) ...")
        if s.spec.threads:  # a benchmark may have changed them (an experiment's engine.threads)
            torch.set_num_threads(s.spec.threads)
        t0 = time.perf_counter()
        metrics = run_benchmark(b.kind, params, repeats)
        wall = time.perf_counter() - t0
        done.append(
            {
                "name": b.name,
                "kind": b.kind,
                "params": params.model_dump(mode="json"),
                "wall_s": wall,
                "metrics": metrics,
            }
        )
        shown = ", ".join(
            f"{m['name']} {m['summary']['median']:.4g}"
            + (f" ±{m['summary']['stderr']:.2g}" if m["summary"]["n"] > 1 else "")
            for m in metrics
        )
        log(f"    {wall:.1f} s: {shown}")
    doc = results.new_document(s.name, s.config(), done, machine, time.perf_counter() - t_suite)
    results.write(doc, out)
    log(f"wrote {out} ({len(done)} benchmarks, {doc['wall_s']:.0f} s)")
    return doc
