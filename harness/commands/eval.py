"""`rbench eval RUN_OR_CHECKPOINT`: test-time compute (depth x breadth) on a trained checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="re-evaluate a trained checkpoint with more/fewer steps and K samples",
        description="Test-time compute on a trained run: every (steps, samples) point "
        "is evaluated on the test split; results are printed, written to "
        "<run>/testtime/ (JSON, CSV) and logged as an MLflow child run of "
        "the training run. See docs/test-time.md.",
    )
    p.add_argument(
        "target",
        type=Path,
        metavar="RUN_OR_CHECKPOINT",
        help="a run folder (its newest complete checkpoint) or a checkpoint directory",
    )
    p.add_argument(
        "--steps",
        help="supervision steps, comma separated "
        "(default: powers of two up to twice the trained steps, and the trained steps)",
    )
    p.add_argument("--samples", default="1", help="trajectories per puzzle, comma separated (default 1)")
    p.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="Gaussian noise std on the latent at each recursion, relative to its RMS (default 0)",
    )
    p.add_argument(
        "--select",
        choices=("q", "vote"),
        default="q",
        help="answer of K samples: highest halting logit (q) or majority vote (default q)",
    )
    p.add_argument("--examples", type=int, help="test examples (default: the run's train.eval_examples)")
    p.add_argument("--batch-size", type=int, help="puzzles per batch (default: the run's eval batch size)")
    p.add_argument("--seed", type=int, help="noise seed (default: the run's seed)")
    p.add_argument("--no-ema", action="store_true", help="use the module weights even if the run kept an EMA")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main)


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise UserError(f"{option}: expected comma-separated positive integers, got {text!r}")
    return tuple(dict.fromkeys(values))


def main(args: argparse.Namespace) -> int:
    from harness import testtime as tt

    for option, value in (("--examples", args.examples), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise UserError(f"{option}: expected a positive integer, got {value}")
    steps = parse_ints(args.steps, "--steps") if args.steps else None
    samples = parse_ints(args.samples, "--samples")
    run_dir, checkpoint_dir = tt.resolve_target(args.target)
    cfg = tt.load_run_config(run_dir)
    steps = steps or tt.default_steps(cfg.model.halt_max_steps)
    grid = tt.Grid(
        steps=steps,
        samples=samples,
        noise=args.noise,
        select=args.select,
        examples=args.examples,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    if max(grid.samples) > 1 and grid.noise == 0:
        print("note: --noise is 0, so the K samples of a puzzle are identical")
    result = tt.run_test_time(
        cfg, checkpoint_dir, grid, progress=not args.no_progress, use_ema=not args.no_ema
    )
    files = tt.write(result)
    print(
        f"checkpoint: {checkpoint_dir} ({result.weights} weights, trained with "
        f"{result.trained_steps} steps; noise {result.noise:g}, select {result.select})"
    )
    print(tt.table(result))
    ref = result.reference.get("exact_accuracy")
    if ref is not None:
        print(f"training run's final exact accuracy: {ref:.4f}")
    print(f"results: {files[0]}  {files[1]}")
    if args.no_mlflow:
        return 0
    run_id = tt.mlflow_log(run_dir, result, (*files, files[0].with_suffix(".npz")))
    print(
        f"mlflow child run: {run_id}" if run_id else "mlflow: skipped (the run folder has no mlflow_run.json)"
    )
    return 0
