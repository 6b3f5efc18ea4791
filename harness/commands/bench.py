"""`rbench bench {run,compare,history}`: the benchmark suites (benchmarks/suites/*.yaml), the
regression check between two results files, and a metric's trend. See docs/benchmarks.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark suites, regression check, trends",
        description="Run a benchmark suite, compare two results files, plot a metric's history.",
    )
    bsub = p.add_subparsers(dest="bench_command", required=True, metavar="SUBCOMMAND")
    r = bsub.add_parser(
        "run",
        help="run a suite and write its results JSON",
        description="Run the benchmarks of a suite (benchmarks/suites/NAME.yaml or a YAML file) and "
        "write a results file validated against benchmarks/schema/results-v1.json.",
    )
    r.add_argument("--suite", required=True, help="suite name (smoke, nightly) or a suite YAML file")
    r.add_argument("--out", type=Path, required=True, help="results JSON to write")
    r.add_argument("--only", nargs="+", metavar="BENCHMARK", help="run only these benchmarks of the suite")
    r.set_defaults(func=run_main)

    c = bsub.add_parser(
        "compare",
        help="verdict per metric: improved / unchanged / regressed (exit 1 on a regression)",
        description="Compare two results files metric by metric (a test on the samples plus a "
        "minimum effect per metric kind; counts exactly). Exit 1 if any metric regressed.",
    )
    c.add_argument(
        "baseline", type=Path, help="results JSON, or a folder of several good runs' results (pooled)"
    )
    c.add_argument("new", type=Path)
    c.add_argument("--alpha", type=float, default=None, help="significance level of the Mann-Whitney test")
    c.add_argument(
        "--min-effect",
        action="append",
        default=[],
        metavar="KIND=X",
        help="minimum effect per kind, e.g. time=0.15 accuracy=0.05 (repeatable)",
    )
    c.add_argument("--report", type=Path, help="also write the comparison as Markdown here")
    c.add_argument(
        "--missing-baseline",
        choices=["error", "warn"],
        default="error",
        help="when BASELINE does not exist: error (exit 2, the default) or warn and exit 0 (a "
        "scheduled job's first run, whose results become the baseline)",
    )
    c.set_defaults(func=compare_main)

    h = bsub.add_parser(
        "history",
        help="a metric's trend across results files (PNG)",
        description="Plot one metric (BENCHMARK/METRIC) across the results JSON files in DIR.",
    )
    h.add_argument("directory", type=Path)
    h.add_argument("--metric", required=True, help="BENCHMARK/METRIC, e.g. train-step/trm/step_s")
    h.add_argument("--out", type=Path, help="PNG to write (default: DIR/<metric>.png)")
    h.set_defaults(func=history_main)


def run_main(args: argparse.Namespace) -> int:
    from harness.benchsuite.run import run_suite

    run_suite(args.suite, args.out, only=args.only)
    return 0


def _min_effects(items: list[str]) -> dict[str, float]:
    from harness.benchsuite.compare import MIN_EFFECT

    out = {}
    for item in items:
        kind, sep, value = item.partition("=")
        try:
            x = float(value)
        except ValueError:
            x = -1.0
        if not sep or kind not in MIN_EFFECT or x < 0:
            raise UserError(
                f"--min-effect: expected KIND=X with KIND one of {', '.join(MIN_EFFECT)} "
                f"and X >= 0, got {item!r}"
            )
        out[kind] = x
    return out


def compare_main(args: argparse.Namespace) -> int:
    from harness.benchsuite import results
    from harness.benchsuite.compare import ALPHA, compare, header, markdown, table

    alpha = ALPHA if args.alpha is None else args.alpha
    if not 0 < alpha < 1:
        raise UserError(f"--alpha: expected a number between 0 and 1, got {alpha}")
    effects = _min_effects(args.min_effect)
    new = results.read(args.new)  # the new results are checked either way
    if not args.baseline.exists() and args.missing_baseline == "warn":
        note = (
            f"warning: no baseline {args.baseline}: nothing compared. Commit these results "
            f"({args.new}) as {args.baseline} to compare the next runs with them."
        )
        print(note, file=sys.stderr)
        if args.report:
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(note.replace("warning: ", "**No baseline.** ") + "\n")
        return 0
    base = results.read_baseline(args.baseline)
    rows = compare(base, new, alpha, effects)
    head = header(base, new)
    for line in head:
        print(line, file=sys.stderr if line.startswith("warning") else sys.stdout)
    print(table(rows))
    bad = [r for r in rows if r.verdict == "regressed"]
    print(
        f"\n{len(bad)} regressed, {sum(r.verdict == 'improved' for r in rows)} improved, "
        f"{sum(r.verdict == 'unchanged' for r in rows)} unchanged"
    )
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(markdown(rows, head))
    return 1 if bad else 0


def history_main(args: argparse.Namespace) -> int:
    from harness.benchsuite.history import collect, default_out, plot

    found, missing = collect(args.directory, args.metric)
    for f in missing:
        print(f"note: {f} has no {args.metric}; skipped", file=sys.stderr)
    out = plot(found, args.metric, args.out or default_out(args.directory, args.metric))
    print(f"wrote {out} ({len(found)} results files)")
    return 0
