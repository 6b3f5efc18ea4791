"""Harness overhead: the same training through `rbench run` and through a bare PyTorch loop.

Same model, data, sampler order, optimizer, schedule and step count; the bare loop has no
DeepSpeed, MLflow, progress, metric sync or checkpoint. Both include model build and the final
evaluation. Runs bare, harness, bare in one process and reports harness / mean(bare).

    python -m harness.bench.engine_overhead [--seconds 60] [--config FILE] [key=value ...]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from harness.config import load_experiment
from harness.engine import lr_factor, to_batch
from harness.seeding import seed_everything, step_generator

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "sweeps" / "experiments" / "bench-overhead.yaml"


def bare_loop(cfg, data, steps: int) -> float:
    """Plain PyTorch: returns wall seconds for build + `steps` steps + final evaluation."""
    from benchmarks.sampler import GroupSampler
    from models import build_model

    t0 = time.perf_counter()
    train_ds, test_ds = data["train"], data["test"]
    seed_everything(cfg.seed)
    model = build_model(cfg.model, train_ds.meta)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr,
                            betas=cfg.train.betas, weight_decay=cfg.train.weight_decay)
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
        opt.step()
        sched.step()
    model.eval()
    n = min(len(test_ds), cfg.train.eval_examples or len(test_ds))
    bs = cfg.train.eval_batch_size or cfg.train.batch_size
    with torch.no_grad():
        for start in range(0, n, bs):
            model.predict(to_batch(test_ds, torch.arange(start, min(n, start + bs)).numpy(), torch.device("cpu")))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--seconds", type=float, default=60.0, help="target length of each run")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    from benchmarks import build
    from benchmarks.registry import resolve
    from harness.commands.run import run_local

    with tempfile.TemporaryDirectory(prefix="rbench-bench-") as tmp:
        cfg = load_experiment(args.config, [*args.overrides, f"runs_dir={tmp}"])
        data = build(resolve(cfg.task), Path(tmp) / "data")
        probe = bare_loop(cfg, data, 10) / 10            # rough per-step cost, build included
        steps = max(20, int(args.seconds / probe))
        cfg = load_experiment(args.config, [*args.overrides, f"runs_dir={tmp}", f"train.steps={steps}",
                                            f"train.log_every={max(1, steps // 100)}"])
        bare1 = bare_loop(cfg, data, steps)
        t0 = time.perf_counter()
        result, run_id = run_local(cfg, Path(tmp) / "harness-run", progress=False)
        harness = time.perf_counter() - t0
        bare2 = bare_loop(cfg, data, steps)
    bare = (bare1 + bare2) / 2
    print(f"config: {args.config} {' '.join(args.overrides)}")
    print(f"model: {cfg.model.arch}  params: {result.num_parameters:,}  steps: {steps}  "
          f"batch: {cfg.train.batch_size}  threads: {torch.get_num_threads()}")
    print(f"bare PyTorch loop: {bare1:.1f} s and {bare2:.1f} s (mean {bare:.1f} s)")
    print(f"rbench run (DeepSpeed + MLflow + checkpoint): {harness:.1f} s  (mlflow run {run_id})")
    print(f"ratio harness/bare: {harness / bare:.3f}")


if __name__ == "__main__":
    main()
