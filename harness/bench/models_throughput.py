"""Training-step throughput of the paper models at paper width, next to the machine's matmul peak.

For TRM-Att, TRM-MLP, HRM and the 8-layer direct-prediction transformer (hidden 512, Sudoku shape:
81 tokens, vocab 11, TRM with 16 prefix positions, HRM with 1), it times full training steps
(one supervision segment through the ACT wrapper + backward + AdamW step + puzzle-embedding step)
and divides the model's analytic training FLOPs by that time. In the same run it times a large
fp32 torch.matmul, and prints each model's achieved FLOP/s as a fraction of it.

    python -m harness.bench.models_throughput [--batch 4] [--steps 3] [--warmup 1] [--threads N]
                                              [--matmul 2048] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.dataset import DatasetMeta
from harness.model_config import HRMConfig, TransformerConfig, TRMConfig
from models import build_model

SUDOKU = DatasetMeta(task="sudoku", seq_len=81, vocab_size=11, num_puzzle_identifiers=1)

MODELS = {
    "trm-att": TRMConfig(T=3, n=6),
    "trm-mlp": TRMConfig(T=3, n=6, mlp_t=True),
    "hrm": HRMConfig(),
    "transformer-8L": TransformerConfig(layers=8),
}


def matmul_flops_per_s(n: int, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def time_training_steps(cfg, batch_size: int, steps: int, warmup: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model = build_model(cfg, SUDOKU)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(seed)
    batch = {
        "inputs": torch.randint(1, SUDOKU.vocab_size, (batch_size, SUDOKU.seq_len), generator=g),
        "labels": torch.randint(1, SUDOKU.vocab_size, (batch_size, SUDOKU.seq_len), generator=g),
        "puzzle_identifiers": torch.zeros(batch_size, dtype=torch.long),
    }
    model.train()
    carry = model.initial_carry(batch)
    times, cpu_times = [], []
    for step in range(warmup + steps):
        t, c = time.perf_counter(), time.thread_time()
        carry, loss, _, _ = model(carry, batch, generator=torch.Generator().manual_seed(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.puzzle_emb_step(1e-2, 0.1)
        if step >= warmup:
            times.append(time.perf_counter() - t)
            cpu_times.append(time.thread_time() - c)  # this thread only: all of it with 1 torch thread
    step_s = sum(times) / len(times)
    flops = model.flops_per_example("train") * batch_size
    return {
        "parameters": model.num_parameters(),
        "effective_depth": model.effective_depth(),
        "train_flops_per_step": flops,
        "step_s": step_s,
        "flops_per_s": flops / step_s,
        "step_times": times,
        "step_cpu_times": cpu_times,
    }


def measure(models: dict, batch: int, steps: int, warmup: int, matmul_n: int, seed: int = 0) -> dict:
    """Each model's training-step figures (time_training_steps) with its achieved FLOP/s as a
    fraction of the better of two fp32 matmul measurements taken before and after."""
    peak_before = matmul_flops_per_s(matmul_n)
    rows = {name: time_training_steps(cfg, batch, steps, warmup, seed) for name, cfg in models.items()}
    peak_after = matmul_flops_per_s(matmul_n)
    peak = max(peak_before, peak_after)  # both measured; the better one is the reference
    for r in rows.values():
        r["fraction_of_matmul"] = r["flops_per_s"] / peak
    return {
        "threads": torch.get_num_threads(),
        "batch": batch,
        "steps": steps,
        "matmul_n": matmul_n,
        "matmul_flops_per_s": peak,
        "matmul_flops_per_s_before_after": [peak_before, peak_after],
        "models": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m harness.bench.models_throughput", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per model")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--matmul", type=int, default=2048, help="size of the square reference matmul")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    result = measure(
        {name: MODELS[name] for name in args.models}, args.batch, args.steps, args.warmup, args.matmul
    )
    peak, (peak_before, peak_after), rows = (
        result["matmul_flops_per_s"],
        result["matmul_flops_per_s_before_after"],
        result["models"],
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"torch {torch.__version__}, {result['threads']} thread(s), batch {args.batch}, "
        f"{args.steps} timed steps after {args.warmup} warm-up"
    )
    print(
        f"fp32 matmul {args.matmul}^3: {peak / 1e9:.1f} GFLOP/s "
        f"(before {peak_before / 1e9:.1f}, after {peak_after / 1e9:.1f})"
    )
    print(
        f"{'model':16s} {'params':>11s} {'depth':>5s} {'GFLOP/step':>11s} {'s/step':>8s} "
        f"{'GFLOP/s':>8s} {'/matmul':>8s}"
    )
    for name, r in rows.items():
        print(
            f"{name:16s} {r['parameters']:11,d} {r['effective_depth']:5d} "
            f"{r['train_flops_per_step'] / 1e9:11.1f} {r['step_s']:8.3f} "
            f"{r['flops_per_s'] / 1e9:8.1f} {r['fraction_of_matmul']:8.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
