"""`rbench run CONFIG [key=value ...]`: one training run, locally or on Ray."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from harness.config import ExperimentConfig, load_experiment
from harness.errors import ConfigError, UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="train one experiment config",
        description="Train one experiment. Overrides are dotted key=value pairs, "
        "e.g. `rbench run exp.yaml train.lr=3e-4 model.n=4`.",
    )
    p.add_argument("config", help="experiment YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    p.add_argument(
        "--run-dir", type=Path, help="where this run's files go (default: <runs_dir>/<name>-<timestamp>)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint of --run-dir (default: the newest run of "
        "this config's name that has one)",
    )
    p.add_argument("--workers", type=int, default=None, help="data-parallel workers on Ray")
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or local)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")
    p.add_argument(
        "--from",
        dest="from_",
        action="append",
        default=[],
        metavar="PATH",
        help="local copy of the task's published data (FILE, DIR with train.csv and "
        "test.csv, or train=FILE test=FILE); without it a recipe's task.stand_in is used",
    )
    p.set_defaults(func=main)


def load_and_check(
    path: str, overrides: list[str], from_paths: list[str] | None = None, *, workers: int = 1
) -> ExperimentConfig:
    """Everything that can be validated before work starts (harness/preflight.py): the schema,
    the data chosen (--from, a recipe's stand-in, or the task as configured), the device, the
    task's parameters and data files, the model's sizing. Nothing is written but the task's data
    cache."""
    from harness.data_source import choose_data
    from harness.preflight import preflight

    cfg = load_experiment(path, overrides)
    source = str(path) + (" + overrides" if overrides else "")
    try:
        cfg = choose_data(cfg, from_paths)
    except ConfigError as e:
        raise e.with_source(source) from None
    preflight(cfg, source, workers=workers)
    return cfg


def pick_run_dir(cfg: ExperimentConfig, run_dir: Path | None, resume: bool) -> Path:
    from harness import checkpoint

    if run_dir is not None:
        if resume and checkpoint.latest(run_dir) is None:
            raise UserError(f"--resume: no complete checkpoint under {run_dir}/checkpoints")
        return run_dir
    root = Path(cfg.runs_dir)
    if resume:
        candidates = sorted(p for p in root.glob(f"{cfg.name}-*") if checkpoint.latest(p) is not None)
        if not candidates:
            raise UserError(f"--resume: no run of '{cfg.name}' with a checkpoint under {root}/")
        return candidates[-1]
    return root / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def main(args: argparse.Namespace) -> int:
    address = args.address or os.environ.get("RAY_ADDRESS")
    ray = args.workers is not None or bool(address)
    cfg = load_and_check(args.config, args.overrides, args.from_, workers=args.workers or 1)
    run_dir = pick_run_dir(cfg, args.run_dir, args.resume)
    if args.resume:  # refuse a checkpoint holding code before a tracker or Ray job starts
        from harness import checkpoint

        checkpoint.verify_safe(checkpoint.latest(run_dir))
    from harness.engine import TrainingDiverged
    from harness.launch import TrialFailed
    from harness.tracking import TrackingError, read_run_id

    try:
        if ray:
            from harness.launch import launch

            result = launch(
                cfg,
                run_dir=run_dir,
                workers=args.workers or 1,
                gpus_per_worker=args.gpus_per_worker,
                address=address,
                resume=args.resume,
            )
            run_id = read_run_id(run_dir) if cfg.tracking.enabled else None
        else:
            result, run_id = run_local(cfg, run_dir, resume=args.resume, progress=not args.no_progress)
    except (TrainingDiverged, TrackingError, TrialFailed) as e:
        # Not a usage error (exit 2) but a failed run: one line, where its files are, exit 1.
        print(f"rbench: error: {e} (run files: {run_dir})", file=sys.stderr)
        return 1
    print_summary(result, run_id)
    return 0


def run_local(cfg: ExperimentConfig, run_dir: Path, *, resume: bool = False, progress: bool = True):
    """Train in this process, tracked (MLflow in a helper process, see harness/tracking/process.py:
    importing MLflow and writing each batch cost time the training loop need not wait for; and
    the helper ends the run if this process dies). Returns (TrainResult, MLflow run id or None)."""
    from harness import checkpoint, correctness
    from harness.engine import Hooks, train
    from harness.tracking import EVAL_PREFIX, Outcome, open_tracker, read_run_id

    resume_from = checkpoint.latest(run_dir) if resume else None
    tracker = open_tracker(cfg, run_dir=run_dir, run_id=read_run_id(run_dir) if resume else None)
    try:
        tracker.start()
        hooks = Hooks(
            on_log=tracker.log_metrics,
            on_eval=lambda step, m: tracker.log_metrics(step, m, prefix=EVAL_PREFIX),
        )
        try:
            result = train(cfg, run_dir, resume_from=resume_from, hooks=hooks, progress=progress)
        except BaseException as e:  # FAILED with the reason, or KILLED by Ctrl-C
            tracker.finish_quietly(Outcome.of_exception(e))
            raise
        correctness.upload(tracker, run_dir)  # per-example bits for the report
        tracker.finish(Outcome.finished(result))
        run_id = tracker.run_id
    finally:
        tracker.close()
    return result, run_id


def print_summary(result, run_id: str | None) -> None:
    print(f"mlflow run: {run_id or '(tracking disabled)'}")
    print(f"step: {result.step}  params: {result.num_parameters:,}  training FLOPs: {result.flops:.4g}")
    for k, v in sorted(result.metrics.items()):
        print(f"  {k}: {v:.6g}")
    print(f"run files: {result.run_dir}")
    print(f"checkpoint: {result.checkpoint_dir}")
