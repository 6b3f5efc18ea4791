"""`rbench demo`: the main job on the embedded default, end to end on this machine.

Runs the sweep in `sweeps/demo.yaml` (recursive models next to 1x and 4x-parameter transformers on a
depth task, every trial at the same training-FLOPs budget) through Ray Tune + Optuna with one MLflow
child run per trial, then renders the scaling report from MLflow into <runs_dir>/demo/report.md.
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
    from reports.render import markdown
    from reports.table import runs_table

    sw = load_spec(args.spec)
    resume = args.resume or (sw.sweep_dir / "sweep.json").exists()
    summary = run_sweep(args.spec, resume=resume)
    print(format_status(summary))
    df = runs_table(resolve_uri(sw.base), sw.base.tracking.experiment,
                    filter_string=f"tags.`rbench.sweep_id` = '{summary['sweep_id']}'")
    out = Path(sw.base.runs_dir) / "demo" / "report.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(df, title="rbench demo: recursion vs parameters at equal training FLOPs",
                    notes=[f"Sweep `{sw.spec.name}` from `{args.spec}`; base experiment "
                           f"`{sw.spec.experiment}`. Every trial trains for the same FLOPs budget "
                           f"(`train.flops_budget`), so rows differ in how they spend compute."])
    out.write_text(text)
    df.to_csv(out.with_suffix(".csv"), index=False)
    print(text)
    print(f"report: {out}\nrun table: {out.with_suffix('.csv')}")
    return 0
