"""`rbench data list|build|show|export`: the task registry from the command line.

TASK is a registered task name (`rbench data list`) followed by optional `key=value` parameter
overrides, or an experiment YAML whose `task:` section and `runs_dir` are used. Built data is cached
under `<runs_dir>/data` (default runs/data), the same place training looks.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness.errors import ConfigError, UserError


class _Intermixed(argparse.ArgumentParser):
    """Options and key=value overrides in any order (`TASK --from F train_size=10`); plain argparse
    stops filling a positional list at the first option."""

    def parse_known_args(self, args=None, namespace=None):
        if getattr(self, "_mixing", False):  # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="list, build, inspect and export benchmark tasks",
        description="Benchmark tasks: list the registry, build (and cache) a task, "
        "show a few examples, export puzzles as CSV.",
    )
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION", parser_class=_Intermixed)

    ls = dsub.add_parser("list", help="registered tasks and their shapes")
    ls.set_defaults(func=cmd_list)

    def task_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("task", help="task name, or an experiment YAML (its task: section is used)")
        q.add_argument(
            "overrides",
            nargs="*",
            metavar="key=value",
            help="task parameter overrides, e.g. train_size=2000 data_seed=1",
        )
        q.add_argument(
            "--runs-dir",
            type=Path,
            default=None,
            help="cache under RUNS_DIR/data (default: the experiment's runs_dir, else runs)",
        )
        q.add_argument(
            "--from",
            dest="from_",
            action="append",
            default=[],
            metavar="PATH",
            help="local copy of the published data: a file, a folder holding the split "
            "files, or split=FILE (repeatable); use when offline",
        )

    b = dsub.add_parser("build", help="build a task and cache it (a no-op when cached)")
    task_args(b)
    b.set_defaults(func=cmd_build)

    s = dsub.add_parser("show", help="render a few examples as text grids (builds if needed)")
    task_args(s)
    s.add_argument("--split", default="test")
    s.add_argument("-n", "--count", type=int, default=3, help="how many examples")
    s.add_argument("--start", type=int, default=0, help="index of the first example shown")
    s.set_defaults(func=cmd_show)

    e = dsub.add_parser(
        "export", help="write a built split in the published CSV format (source,question,answer,rating)"
    )
    task_args(e)
    e.add_argument("--split", default="test")
    e.add_argument("--out", type=Path, required=True, help="CSV file to write")
    e.set_defaults(func=cmd_export)


# ---------------------------------------------------------------------------------------------


def _task(args) -> tuple[object, Path]:
    """(TaskSpec, cache root) from the command line."""
    from benchmarks.registry import resolve
    from harness.config import load_experiment, parse_override

    runs_dir = args.runs_dir
    task_file = args.task.endswith((".yaml", ".yml"))
    if task_file:
        cfg = load_experiment(args.task)
        task = {"name": cfg.task.name, **cfg.task.params}
        runs_dir = runs_dir or Path(cfg.runs_dir)
    else:
        task = {"name": args.task}
    for text in args.overrides:
        path, value = parse_override(text)
        if path[0] == "task" and len(path) > 1:
            path = path[1:]
        if len(path) != 1 or path[0] == "name":
            raise ConfigError(
                text,
                "expected a task parameter override key=value (e.g. train_size=2000)",
                source="command line",
            )
        task[path[0]] = value
    source = args.task if task_file else "command line"
    try:
        if args.from_:
            from benchmarks.registry import family_of

            task.update(family_of(task["name"]).local_source(args.from_))
        spec = resolve(task)
    except ConfigError as e:
        raise e.with_source(source) from None
    return spec, Path(runs_dir or "runs") / "data"


def _build(spec, root: Path, quiet: bool = False):
    from benchmarks import build
    from benchmarks.cache import cache_dir, lookup

    hit = lookup(spec, root)
    if hit is None and not quiet:
        print(f"building {spec.name} ...", flush=True)
    t0 = time.perf_counter()
    data = build(spec, root)
    return data, cache_dir(spec, root), hit is not None, time.perf_counter() - t0


def cmd_list(args) -> int:
    from benchmarks.registry import describe, list_tasks, resolve

    rows = []
    for name in list_tasks():
        try:
            spec = resolve(name)
            shape = f"{spec.seq_len:>5} {spec.vocab_size:>5} {spec.num_puzzle_identifiers:>9}"
        except UserError as e:  # e.g. a task whose files must be given first
            shape = f"{'?':>5} {'?':>5} {'?':>9}  ({e})"
        rows.append((name, shape, describe(name).metric, describe(name).description))
    w = max(len(r[0]) for r in rows)
    print(f"{'task':<{w}} {'seq':>5} {'vocab':>5} {'puzzle_ids':>9}  {'metric':<15} description")
    for name, shape, metric, desc in rows:
        print(f"{name:<{w}} {shape}  {metric:<15} {desc}")
    return 0


def cmd_build(args) -> int:
    spec, root = _task(args)
    data, d, hit, seconds = _build(spec, root)
    sizes = ", ".join(f"{s} {len(ds):,}" for s, ds in data.items())
    state = "cached (nothing to do)" if hit else f"built in {seconds:.1f} s"
    print(
        f"{spec.name}: {state}: {sizes}; seq_len {spec.seq_len}, vocab {spec.vocab_size}, "
        f"puzzle identifiers {spec.num_puzzle_identifiers:,}"
    )
    print(f"cache: {d}")
    return 0


def cmd_show(args) -> int:
    spec, root = _task(args)
    data, *_ = _build(spec, root)
    if args.split not in data:
        raise UserError(f"--split: {spec.name} has splits {', '.join(data)}, not {args.split!r}")
    ds = data[args.split]
    stop = min(len(ds), args.start + max(0, args.count))
    print(
        f"{spec.name} [{args.split}]: {len(ds):,} examples, seq_len {spec.seq_len}, vocab {spec.vocab_size}"
    )
    for i in range(args.start, stop):
        extra = "".join(f" {k}={v[i].tolist()}" for k, v in ds.aux.items() if v.ndim == 1)
        print(f"\n#{i}  group {int(ds.group_ids[i])}  puzzle id {int(ds.puzzle_identifiers[i])}{extra}")
        print(spec.family.render(ds, i))
    return 0


def cmd_export(args) -> int:
    from benchmarks.csvfmt import write

    spec, root = _task(args)
    if not hasattr(spec.family, "export_rows"):
        raise UserError(
            f"{spec.name}: export writes the Sudoku/Maze CSV format; this task's family has no such format"
        )
    data, *_ = _build(spec, root, quiet=True)
    if args.split not in data:
        raise UserError(f"--split: {spec.name} has splits {', '.join(data)}, not {args.split!r}")
    n = write(args.out, spec.family.export_rows(data[args.split], f"rbench/{spec.name}/{args.split}"))
    print(f"wrote {n:,} rows to {args.out}")
    return 0
