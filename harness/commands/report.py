"""`rbench report`: MLflow runs -> Markdown scaling report (and the tidy run table as CSV)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render the scaling report from MLflow runs")
    p.add_argument("--experiment", default="rbench", help="MLflow experiment name (default: rbench)")
    p.add_argument("--uri", default=None,
                   help="tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///<runs-dir>/mlflow.db)")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--sweep", default=None, help="only the trials of this sweep id")
    p.add_argument("--filter", default="", help="an MLflow search filter string")
    p.add_argument("--out", type=Path, default=None, help="write Markdown here (default: stdout); "
                   "the run table goes beside it as .csv")
    p.add_argument("--title", default="rbench: recursion vs parameters")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from reports.render import markdown
    from reports.table import runs_table

    uri = args.uri or os.environ.get("MLFLOW_TRACKING_URI") or \
        f"sqlite:///{Path(args.runs_dir).resolve() / 'mlflow.db'}"
    flt = args.filter
    if args.sweep:
        flt = " and ".join(x for x in (flt, f"tags.`rbench.sweep_id` = '{args.sweep}'") if x)
    df = runs_table(uri, args.experiment, filter_string=flt)
    text = markdown(df, title=args.title)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        df.to_csv(args.out.with_suffix(".csv"), index=False)
        print(f"report: {args.out}\nrun table: {args.out.with_suffix('.csv')}")
    else:
        print(text)
    return 0
