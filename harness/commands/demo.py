"""`rbench demo`: the main job on the embedded default, end to end on this machine.

Runs the sweep in `sweeps/demo.yaml` (recursive models next to 1x, 4x and 16x-parameter
transformers on a depth task, every trial at the same training-FLOPs budget, three seeds) through
Ray Tune + Optuna with one MLflow child run per trial, then renders the scaling report from MLflow
into <sweep folder>/report/ (report.html with figures and fits, report.md, runs.csv, runs.parquet)
and prints its headline.

A smaller or different study is the same spec with overrides, e.g. a quick look:

    rbench demo --name demo-quick --seeds 0 train.flops_budget=3e11

KEY=VALUE pairs override the base experiment (after the spec's own overrides); `sweep.KEY=VALUE`
sets a key of the sweep spec itself (e.g. `sweep.test_time.examples=100`); `--seeds`, `--name` and
`--runs-dir` replace the spec's. The derived spec is written into the sweep folder, so the
study records exactly what ran and `--resume` continues it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import UserError

DEMO_SPEC = Path(__file__).resolve().parents[2] / "sweeps" / "demo.yaml"
SPEC_PREFIX = "sweep."  # KEY=VALUE with this prefix sets a key of the sweep spec
TITLE = "rbench demo: recursion vs parameters at equal training FLOPs"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo study and write its report",
        usage="rbench demo [--spec SPEC] [--name NAME] [--seeds S,S,..] [--runs-dir DIR] "
        "[--resume] [-v] [KEY=VALUE ...]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="base experiment overrides")
    p.add_argument("--spec", type=Path, default=DEMO_SPEC, help="sweep spec (default: sweeps/demo.yaml)")
    p.add_argument("--name", default=None, help="sweep name (default: the spec's, 'demo')")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the spec's)")
    p.add_argument("--runs-dir", type=Path, default=None, help="runs folder (default: the spec's)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo sweep")
    p.add_argument("-v", "--verbose", action="store_true", help="also show Ray's and Tune's own output")
    p.set_defaults(func=main)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise UserError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2")
    return seeds


def set_dotted(data: dict, assignment: str, spec: Path) -> None:
    """`a.b.c=VALUE` (VALUE read as YAML) into the spec mapping; the path must exist up to its
    last key, which the spec's validation then checks."""
    import yaml

    key, _, text = assignment.partition("=")
    *path, last = key.split(".")
    node = data
    for part in path:
        if not isinstance(node.get(part), dict):
            raise UserError(f"{spec}: {SPEC_PREFIX}{key}: the spec has no mapping {part!r} to set it in")
        node = node[part]
    node[last] = yaml.safe_load(text)


def derived_spec(args: argparse.Namespace) -> Path:
    """The spec to run: the given one untouched, or (with overrides, --seeds, --name or
    --runs-dir) a copy with those applied, its base experiment as an absolute path, written as
    <runs folder>/sweeps/<name>.spec.yaml."""
    import yaml

    from harness.config import read_yaml
    from harness.sweep import load_spec

    for o in args.overrides:
        if "=" not in o or o.startswith("="):
            raise UserError(f"override {o!r}: expected KEY=VALUE, e.g. train.flops_budget=3e11")
    if not (args.overrides or args.seeds or args.name or args.runs_dir):
        return args.spec
    sw = load_spec(args.spec)  # validates the original first: its errors name its file
    data = read_yaml(args.spec)
    exp = Path(data["experiment"])
    data["experiment"] = str(exp if exp.is_absolute() else (args.spec.parent / exp).resolve())
    spec_sets = [o for o in args.overrides if o.startswith(SPEC_PREFIX)]
    data["overrides"] = list(data.get("overrides") or []) + [
        o for o in args.overrides if not o.startswith(SPEC_PREFIX)
    ]
    for o in spec_sets:
        set_dotted(data, o[len(SPEC_PREFIX) :], args.spec)
    if args.seeds:
        data["seeds"] = parse_seeds(args.seeds)
    if args.name:
        data["name"] = args.name
    if args.runs_dir:
        data["runs_dir"] = str(args.runs_dir.resolve())
    runs_dir = Path(data["runs_dir"]) if data.get("runs_dir") else Path(sw.base.runs_dir)
    out = runs_dir / "sweeps" / f"{data['name']}.spec.yaml"
    if out.exists() and yaml.safe_load(out.read_text()) != data:
        if args.resume or (out.parent / data["name"] / "sweep.json").exists():
            raise UserError(
                f"{out}: sweep '{data['name']}' was started with other settings; give this one another --name"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# derived from {args.spec.resolve()} by `rbench demo`\n"
    out.write_text(header + yaml.safe_dump(data, sort_keys=False))
    load_spec(out)  # the overrides are checked here: a mistake names the derived file and key
    return out


def main(args: argparse.Namespace) -> int:
    from harness.commands.sweep import write_report
    from harness.sweep import format_status, load_spec, run_sweep

    spec = derived_spec(args)
    sw = load_spec(spec)
    resume = args.resume or (sw.sweep_dir / "sweep.json").exists()
    summary = run_sweep(spec, resume=resume, verbose=args.verbose)
    print(format_status(summary))
    files = write_report(str(spec), summary, title=TITLE)
    if files is None:
        return 1
    print()
    for line in files.headlines:
        print(line)
    print(f"\nThe report: {files.html}")
    print(f"Browse the runs: rbench ui --runs-dir {sw.base.runs_dir}   (then open http://127.0.0.1:5000)")
    counts = summary["counts"]
    return 0 if counts.get("failed", 0) == 0 else 1
