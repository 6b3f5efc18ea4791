"""`rbench demo`: the main job on the embedded default, end to end on this machine.

Runs the sweep in `sweeps/demo.yaml` (recursive models next to 1x and 4x-parameter transformers on a
depth task, every trial at the same training-FLOPs budget) through Ray Tune + Optuna with one MLflow
child run per trial, then renders the scaling report from MLflow into <runs_dir>/demo/report/
(report.html with figures and fits, report.md, runs.csv, runs.parquet).
"""
from __future__ import annotations

import argparse
from pathlib import Path

DEMO_SPEC = Path(__file__).resolve().parents[2] / "sweeps" / "demo.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the demo study and write its report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", type=Path, default=DEMO_SPEC, help="sweep spec (default: sweeps/demo.yaml)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo sweep")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from harness.sweep import format_status, load_spec, run_sweep
    from harness.tracking import resolve_uri
    from reports import build_report

    sw = load_spec(args.spec)
    resume = args.resume or (sw.sweep_dir / "sweep.json").exists()
    summary = run_sweep(args.spec, resume=resume)
    print(format_status(summary))
    files = build_report(resolve_uri(sw.base), Path(sw.base.runs_dir) / "demo" / "report",
                         experiment=sw.base.tracking.experiment, sweep=summary["sweep_id"],
                         title="rbench demo: recursion vs parameters at equal training FLOPs")
    print(files.markdown.read_text())
    print(f"report: {files.html}\nsummary: {files.markdown}\nrun table: {files.csv} {files.parquet}")
    return 0
