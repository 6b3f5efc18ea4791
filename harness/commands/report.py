"""`rbench report`: MLflow runs -> the scaling report (HTML + Markdown, run table as CSV/Parquet)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="render the scaling report from MLflow runs",
        description="Fits, intervals and figures from the runs of one sweep or one "
        "experiment, as one self-contained HTML file plus a Markdown summary.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--sweep", default=None, help="the trials of this sweep id (any experiment)")
    which.add_argument("--experiment", default=None, help="every run of this MLflow experiment")
    p.add_argument("--filter", default="", help="an MLflow search filter string, ANDed in")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: <runs-dir>/reports/<sweep id or experiment>)",
    )
    p.add_argument(
        "--uri",
        default=None,
        help="tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///<runs-dir>/mlflow.db)",
    )
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--title", default=None)
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates (default 2000)")
    p.add_argument("--no-log", action="store_true", help="do not log the report on the sweep's parent run")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from harness.errors import UserError
    from reports import build_report

    if args.bootstrap < 10:
        raise UserError(f"--bootstrap: at least 10 replicates, got {args.bootstrap}")
    uri = (
        args.uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{Path(args.runs_dir).resolve() / 'mlflow.db'}"
    )
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise UserError(f"--uri {uri}: no such MLflow database (run something first, or pass --uri)")
    out = args.out or Path(args.runs_dir) / "reports" / (args.sweep or args.experiment)
    files = build_report(
        uri,
        out,
        experiment=args.experiment,
        sweep=args.sweep,
        filter_string=args.filter,
        title=args.title,
        n_boot=args.bootstrap,
        log_to_parent=not args.no_log,
    )
    print(f"report: {files.html}\nsummary: {files.markdown}\nrun table: {files.csv} {files.parquet}")
    if files.parent_run_id:
        print(f"logged on the sweep's MLflow run {files.parent_run_id}")
    return 0
