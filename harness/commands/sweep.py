"""`rbench sweep SPEC [--resume]` runs a sweep; `rbench sweep status SPEC|SWEEP_DIR` reports it."""
from __future__ import annotations

import argparse
import json
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a Ray Tune + Optuna sweep, or show its status",
        usage="rbench sweep SPEC [--resume] [--address ADDR] [-v]\n       rbench sweep status SPEC|SWEEP_DIR [--json]",
        description="Run the sweep a spec in sweeps/ describes (Ray Tune trials driven by a persisted "
                    "Optuna study, one MLflow child run per trial), or show how far it got. After the "
                    "driver was stopped, `--resume` continues the same study.")
    p.add_argument("target", nargs="+", metavar="SPEC", help="sweep spec YAML, or: status SPEC|DIR")
    p.add_argument("--resume", action="store_true", help="continue the sweep of this spec")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or "
                   "a local Ray)")
    p.add_argument("--json", action="store_true", help="status: print JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="also show Ray's and Tune's own "
                   "output (otherwise kept in <sweep folder>/ray.log)")
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
    summary = run_sweep(target[0], resume=args.resume, verbose=args.verbose,
                        address=args.address or os.environ.get("RAY_ADDRESS"))
    print(format_status(summary))
    return 0 if summary["counts"]["done"] + summary["counts"]["stopped"] > 0 or \
        not summary["trials"] else 1
