"""`rbench demo`: the main job on the embedded default, end to end on this machine.

Runs the sweep in `sweeps/demo.yaml` (recursive models next to 1x and 4x-parameter transformers on a
depth task, every trial at the same training-FLOPs budget) through Ray Tune + Optuna with one MLflow
child run per trial, then renders the scaling report from MLflow into <sweep folder>/report/
(report.html with figures and fits, report.md, runs.csv, runs.parquet).
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO_SPEC = Path(__file__).resolve().parents[2] / "sweeps" / "demo.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo study and write its report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--spec", type=Path, default=DEMO_SPEC, help="sweep spec (default: sweeps/demo.yaml)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo sweep")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from harness.commands.sweep import write_report
    from harness.sweep import format_status, load_spec, run_sweep

    sw = load_spec(args.spec)
    resume = args.resume or (sw.sweep_dir / "sweep.json").exists()
    summary = run_sweep(args.spec, resume=resume)
    print(format_status(summary))
    files = write_report(
        str(args.spec), summary, title="rbench demo: recursion vs parameters at equal training FLOPs"
    )
    if files is not None:
        print(files.markdown.read_text())
    return 0
