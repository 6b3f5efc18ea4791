"""`rbench sweep SPEC [--resume]` runs a sweep; `rbench sweep status SPEC|SWEEP_DIR` reports it."""

from __future__ import annotations

import argparse
import json
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a Ray Tune + Optuna sweep, or show its status",
        usage="rbench sweep SPEC [--resume] [--address ADDR] [-v] [--no-report]\n"
        "       rbench sweep status SPEC|SWEEP_DIR [--json]",
        description="Run the sweep a spec in sweeps/ describes (Ray Tune trials driven by a persisted "
        "Optuna study, one MLflow child run per trial), or show how far it got. After the "
        "driver was stopped, `--resume` continues the same study.",
    )
    p.add_argument("target", nargs="+", metavar="SPEC", help="sweep spec YAML, or: status SPEC|DIR")
    p.add_argument("--resume", action="store_true", help="continue the sweep of this spec")
    p.add_argument(
        "--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray)"
    )
    p.add_argument("--json", action="store_true", help="status: print JSON")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show Ray's and Tune's own output (otherwise kept in <sweep folder>/ray.log)",
    )
    p.add_argument(
        "--no-report",
        action="store_true",
        help="do not write the scaling report (<sweep folder>/report/report.html) at the end",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from harness.errors import UserError
    from harness.sweep import format_status, resolve_sweep_dir, run_sweep, status

    target = list(args.target)
    if target[0] == "status":
        if len(target) != 2:
            raise UserError("usage: rbench sweep status SPEC|SWEEP_DIR")
        s = status(resolve_sweep_dir(target[1]))
        print(json.dumps(s, indent=2, default=str) if args.json else format_status(s))
        return 0
    if len(target) != 1:
        raise UserError("usage: rbench sweep SPEC [--resume]  (one spec at a time)")
    summary = run_sweep(
        target[0],
        resume=args.resume,
        verbose=args.verbose,
        address=args.address or os.environ.get("RAY_ADDRESS"),
    )
    print(format_status(summary))
    if not args.no_report:
        write_report(target[0], summary)
    return 0 if summary["counts"]["done"] + summary["counts"]["stopped"] > 0 or not summary["trials"] else 1


def write_report(spec_path: str, summary: dict, title: str | None = None):
    """The scaling report of a finished (or stopped) sweep, from its MLflow runs, into
    <sweep folder>/report/ and onto the sweep's parent run. None when tracking is off."""
    from pathlib import Path

    from harness.sweep import load_spec
    from harness.tracking import resolve_uri
    from reports import build_report

    sw = load_spec(spec_path)
    if not sw.base.tracking.enabled or not summary.get("trials"):
        return None
    files = build_report(
        resolve_uri(sw.base),
        Path(sw.sweep_dir) / "report",
        experiment=sw.base.tracking.experiment,
        sweep=summary["sweep_id"],
        title=title,
    )
    print(f"report: {files.html}\nsummary: {files.markdown}\nrun table: {files.csv} {files.parquet}")
    return files
