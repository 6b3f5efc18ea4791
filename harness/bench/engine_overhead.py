"""Harness overhead: the same training through `rbench run` and through a bare PyTorch loop.

Same model, data, sampler order, optimizer, schedule, gradient clipping and step count; the bare
loop has no DeepSpeed, MLflow, progress, metric sync or checkpoint. Each measurement is one fresh
process timed from launch to exit (what a user waits for): `rbench run CONFIG` against
`python -m harness.bench.engine_overhead --bare CONFIG`. Both therefore pay interpreter start-up,
imports, model build and the final evaluation.

One-time costs of a machine or a runs folder are paid before timing, in an untimed warm-up run:
building the dataset cache, DeepSpeed compiling its shm op, and MLflow creating its database.

The step count is calibrated so one bare run lasts about --seconds; bare and harness runs alternate
(bare, harness, bare, ...) so that drift in machine speed hits both, and the ratio is
mean(harness) / mean(bare).

    python -m harness.bench.engine_overhead [--seconds 60] [--repeats 2] [--config FILE] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "sweeps" / "experiments" / "bench-overhead.yaml"


def bare_loop(cfg, data, steps: int):
    """Plain PyTorch, one process: build the model, train `steps` steps, evaluate.

    Returns (wall seconds, trained model). Implements the plain recipe only (no EMA, no sparse
    puzzle embeddings): those are harness features a bare loop would have to re-implement.
    """
    import torch

    from benchmarks.sampler import GroupSampler
    from harness.engine import lr_factor, to_batch
    from harness.seeding import seed_everything, step_generator
    from harness.optim import build_optimizer
    from models import build_model

    if cfg.train.ema_decay:
        raise ValueError("the bare loop has no EMA: use a config without train.ema_decay")
    t0 = time.perf_counter()
    train_ds, test_ds = data["train"], data["test"]
    seed_everything(cfg.seed)
    model = build_model(cfg.model, train_ds.meta)
    if getattr(model.core, "puzzle_emb", None) is not None:
        raise ValueError("the bare loop has no sparse puzzle-embedding optimizer: use puzzle_emb_len 0")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = build_optimizer(cfg.train, params)  # train.optimizer, as the engine
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s, steps))
    batches = GroupSampler(train_ds, cfg.train.batch_size, seed=cfg.seed).batches()
    carry = None
    model.train()
    for step in range(steps):
        batch = to_batch(train_ds, next(batches), torch.device("cpu"))
        carry = model.initial_carry(batch) if carry is None else carry
        carry, loss, _, _ = model(carry, batch, generator=step_generator(cfg.seed, 0, step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
        opt.step()
        sched.step()
    model.eval()
    n = min(len(test_ds), cfg.train.eval_examples or len(test_ds))
    bs = cfg.train.eval_batch_size or cfg.train.batch_size
    with torch.no_grad():
        for start in range(0, n, bs):
            model.predict(
                to_batch(test_ds, torch.arange(start, min(n, start + bs)).numpy(), torch.device("cpu"))
            )
    return time.perf_counter() - t0, model


def _bare_main(config: str) -> None:
    """Child process of the benchmark: the bare loop on a resolved config."""
    from benchmarks import build
    from benchmarks.registry import resolve
    from harness.config import load_experiment
    from harness.device import resolve_runtime

    cfg = load_experiment(config)
    resolve_runtime(cfg.engine)  # the same thread settings as the harness
    data = build(resolve(cfg.task), Path(cfg.runs_dir) / "data")
    seconds, _ = bare_loop(cfg, data, cfg.train.steps)
    print(json.dumps({"inner_seconds": seconds}))


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and everything it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"benchmark child failed ({' '.join(cmd)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def measure(config: str | Path, seconds: float, repeats: int, overrides: list[str] | None = None) -> dict:
    """Bare and harness runs alternated (bare, harness, bare, ...) on `config` calibrated so one
    bare run lasts about `seconds`. -> {"steps", "bare": [(wall, cpu)], "harness": [(wall, cpu)],
    "pairs": each harness wall / the mean of the bare walls either side, "cfg", "parameters"}."""
    import yaml

    from benchmarks import build
    from benchmarks.registry import resolve
    from harness.config import load_experiment
    from harness.device import resolve_runtime

    overrides = list(overrides or [])
    py = sys.executable
    rbench = [py, "-m", "harness.cli"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory(prefix="rbench-bench-") as tmp:
        tmp = Path(tmp)
        cfg = load_experiment(config, [*overrides, f"runs_dir={tmp}"])
        resolve_runtime(cfg.engine)
        data = build(resolve(cfg.task), tmp / "data")

        def write(steps: int) -> Path:
            d = cfg.to_dict()
            d["train"].update(
                steps=steps,
                log_every=max(1, steps // 100),
                lr_warmup_steps=min(steps, d["train"]["lr_warmup_steps"]),
            )
            path = tmp / f"bench-{steps}.yaml"
            path.write_text(yaml.safe_dump(d, sort_keys=False))
            return path

        # Calibrate in this process: per-step cost from the difference of two short bare runs,
        # after a throwaway run has paid the first-call costs (lazy imports, allocator warm-up).
        bare_loop(cfg, data, 2)
        t_short, _ = bare_loop(cfg, data, 10)
        t_long, _ = bare_loop(cfg, data, 40)
        per_step = max((t_long - t_short) / 30, 1e-4)
        steps = max(20, int((seconds - max(t_short - 10 * per_step, 0.0)) / per_step))
        config = write(steps)

        # Untimed warm-up: dataset cache, DeepSpeed's shm op, MLflow's database.
        _timed([*rbench, "run", str(write(2)), "--no-progress", "--run-dir", str(tmp / "warmup")], env)

        bare, harness = [], []
        bare_cmd = [py, "-m", "harness.bench.engine_overhead", "--bare", str(config)]
        for i in range(repeats):
            bare.append(_timed(bare_cmd, env))
            harness.append(
                _timed(
                    [*rbench, "run", str(config), "--no-progress", "--run-dir", str(tmp / f"harness-{i}")],
                    env,
                )
            )
        bare.append(_timed(bare_cmd, env))

    from models import build_model

    wall_b, wall_h = [w for w, _ in bare], [w for w, _ in harness]
    # each harness run against the two bare runs around it: the spread shows the machine's noise
    pairs = [h / ((wall_b[i] + wall_b[i + 1]) / 2) for i, h in enumerate(wall_h)]
    return {
        "steps": steps,
        "bare": bare,
        "harness": harness,
        "pairs": pairs,
        "cfg": cfg,
        "parameters": build_model(cfg.model, data["train"].meta).num_parameters(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--seconds", type=float, default=60.0, help="target length of one bare run")
    ap.add_argument("--repeats", type=int, default=2, help="harness runs (bare runs: one more)")
    ap.add_argument("--bare", metavar="CONFIG", help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    if args.bare:
        return _bare_main(args.bare)

    import torch

    r = measure(args.config, args.seconds, args.repeats, args.overrides)
    cfg, steps, bare, harness, pairs = r["cfg"], r["steps"], r["bare"], r["harness"], r["pairs"]
    n_params = r["parameters"]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    wall_b, wall_h = [w for w, _ in bare], [w for w, _ in harness]
    print(f"config: {args.config} {' '.join(args.overrides)}")
    print(
        f"model: {cfg.model.arch}  params: {n_params:,}  steps: {steps}  batch: {cfg.train.batch_size}  "
        f"threads: {torch.get_num_threads()}  log every {max(1, steps // 100)} steps"
    )
    print(
        f"bare PyTorch loop, wall s: {', '.join(f'{t:.1f}' for t in wall_b)}  mean {mean(wall_b):.1f}  "
        f"(CPU s mean {mean([c for _, c in bare]):.1f})"
    )
    print(
        f"rbench run (DeepSpeed + MLflow + checkpoint), wall s: {', '.join(f'{t:.1f}' for t in wall_h)}  "
        f"mean {mean(wall_h):.1f}  (CPU s mean {mean([c for _, c in harness]):.1f})"
    )
    print(f"ratio per harness run (vs the bare runs either side): {', '.join(f'{r:.3f}' for r in pairs)}")
    print(
        f"ratio harness/bare: means {mean(wall_h) / mean(wall_b):.3f}, median per run "
        f"{statistics.median(pairs):.3f}"
    )


if __name__ == "__main__":
    main()
