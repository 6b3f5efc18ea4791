"""One-GPU check: TRM-Att at paper width trained for a few hundred steps in bf16, its examples/s and
model FLOP utilisation (MFU) against the GPU's own bf16 matmul rate, measured in the same run.

The model is the paper recipe's (sweeps/experiments/paper/trm-att-sudoku.yaml: hidden 512, 2 layers,
T=3, n=6, 16 puzzle-embedding positions, Sudoku's 81 tokens), the optimizer its AdamATan2, the
batch its 768, one supervision segment per step through the ACT wrapper (forward, backward,
optimizer step, puzzle-embedding step) under `torch.autocast(bfloat16)`. MFU = the model's
analytic training FLOPs per step (models/act.py: no_grad calls forward only) / step time / the
measured matmul rate (a square bf16 matmul, best of several): a ratio of two numbers from one
run, not a datasheet peak.

    python -m harness.bench.gpu_check                  # on a GPU: 300 steps at batch 768
    python -m harness.bench.gpu_check --reduced        # anywhere: tiny width and batch, a few steps
    python -m harness.bench.gpu_check --json

`--reduced` runs the same code path at hidden 64, T=2, n=2, batch 8, 4 steps on whatever device there is
(the CPU in the tests), so the check itself is tested where no GPU is.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmarks.dataset import DatasetMeta
from harness.config import load_experiment
from harness.optim import build_optimizer
from models import build_model

RECIPE = Path(__file__).resolve().parents[2] / "sweeps" / "experiments" / "paper" / "trm-att-sudoku.yaml"
SUDOKU = DatasetMeta(task="sudoku", seq_len=81, vocab_size=11, num_puzzle_identifiers=1)
REDUCED = ["model.hidden=64", "model.heads=2", "model.puzzle_emb_len=2", "model.T=2", "model.n=2"]


@dataclass
class GpuCheck:
    device: str
    dtype: str
    parameters: int
    batch_size: int
    steps: int
    step_s: float  # median over the timed steps
    examples_per_s: float
    train_flops_per_step: float
    model_flops_per_s: float
    matmul_flops_per_s: float  # this device's square matmul in `dtype`, this run
    mfu: float  # model_flops_per_s / matmul_flops_per_s
    loss_first: float
    loss_last: float


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 10) -> float:
    """FLOP/s of an n x n matmul in `dtype` on `device`: the best of `repeats` timed batches."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    inner = 10 if device.type == "cuda" else 1
    torch.matmul(a, b)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            torch.matmul(a, b)
        sync(device)
        best = min(best, (time.perf_counter() - t) / inner)
    return 2 * n**3 / best


def batch_of(n: int, device: torch.device, generator: torch.Generator) -> dict[str, torch.Tensor]:
    shape = (n, SUDOKU.seq_len)
    return {
        "inputs": torch.randint(1, SUDOKU.vocab_size, shape, generator=generator).to(device),
        "labels": torch.randint(1, SUDOKU.vocab_size, shape, generator=generator).to(device),
        "puzzle_identifiers": torch.zeros(n, dtype=torch.long, device=device),
    }


def run_check(
    *, steps: int, warmup: int, batch_size: int | None, overrides: list[str], matmul_n: int, seed: int = 0
) -> GpuCheck:
    device = pick_device()
    dtype = torch.bfloat16
    cfg = load_experiment(RECIPE, overrides)
    batch_size = batch_size or cfg.train.batch_size
    torch.manual_seed(seed)
    model = build_model(cfg.model, SUDOKU).to(device)
    opt = build_optimizer(cfg.train, model.parameters())
    g = torch.Generator().manual_seed(seed)
    batch = batch_of(batch_size, device, g)
    model.train()
    carry = model.initial_carry(batch)
    times, losses = [], []
    for step in range(warmup + steps):
        sync(device)
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype):
            carry, loss, _, _ = model(carry, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.puzzle_emb_step(cfg.train.puzzle_emb_lr, cfg.train.puzzle_emb_weight_decay)
        losses.append(float(loss.detach()))  # also a sync point
        sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - t)
    step_s = sorted(times)[len(times) // 2]
    flops = float(model.flops_per_example("train")) * batch_size
    peak = matmul_rate(device, dtype, matmul_n)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return GpuCheck(
        device=name,
        dtype=str(dtype).replace("torch.", ""),
        parameters=int(model.num_parameters()),
        batch_size=batch_size,
        steps=steps,
        step_s=step_s,
        examples_per_s=batch_size / step_s,
        train_flops_per_step=flops,
        model_flops_per_s=flops / step_s,
        matmul_flops_per_s=peak,
        mfu=flops / step_s / peak,
        loss_first=losses[0],
        loss_last=losses[-1],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness.bench.gpu_check", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 300; reduced 4)")
    p.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 20; reduced 1)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default the recipe's 768; reduced 8)")
    p.add_argument("--matmul", type=int, default=None, help="matmul size (default 8192; reduced 256)")
    p.add_argument("--reduced", action="store_true", help="tiny width and batch: the code path anywhere")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    r = args.reduced
    result = run_check(
        steps=args.steps or (4 if r else 300),
        warmup=args.warmup if args.warmup is not None else (1 if r else 20),
        batch_size=args.batch or (8 if r else None),
        overrides=REDUCED if r else [],
        matmul_n=args.matmul or (256 if r else 8192),
    )
    if args.json:
        print(json.dumps(asdict(result), indent=2))
        return 0
    print(
        f"TRM-Att {result.parameters:,} parameters on {result.device} ({result.dtype}), "
        f"batch {result.batch_size}, {result.steps} timed steps"
    )
    print(f"  step {result.step_s * 1e3:.1f} ms (median)   {result.examples_per_s:,.0f} examples/s")
    print(
        f"  model {result.model_flops_per_s / 1e12:.2f} TFLOP/s vs {result.dtype} matmul "
        f"{result.matmul_flops_per_s / 1e12:.2f} TFLOP/s measured now: MFU {result.mfu:.1%}"
    )
    print(f"  loss {result.loss_first:.3f} -> {result.loss_last:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
