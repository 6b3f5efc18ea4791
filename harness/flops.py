"""Measure a model's matmul FLOPs with torch.utils.flop_counter.FlopCounterMode, to check the
analytic `flops_per_example` of models/ (tests, and the engine's optional check).

What is counted, on both sides: FLOPs of matrix multiplies (mm/addmm/bmm/baddbmm and the matmuls
inside attention), 2 per multiply-accumulate, forward and — in training — backward. Attention runs
under the MATH SDPA backend so that its Q K^T and A V products appear as ordinary bmm calls (the
fused CPU/GPU kernels are either not counted or counted with different conventions). Norms,
activations, rotary, embedding look-ups and the loss's elementwise work are not counted.

    train step: one supervision segment through the ACT wrapper (incl. HRM's extra no-grad target
                pass) + loss.backward(), per example
    eval step:  `predict` (all halt_max_steps segments, no_grad), per example per segment
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


@contextmanager
def counting():
    """`with counting() as c: ...; c.get_total_flops()` — MATH attention, nothing printed."""
    with sdpa_kernel([SDPBackend.MATH]):
        counter = FlopCounterMode(display=False)
        with counter:
            yield counter


def measure_train_flops(
    model, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
) -> float:
    """Measured FLOPs per example of one training step (forward + backward of one segment).

    Runs on a fresh carry (every row loads `batch`); gradients land in the model's .grad (the caller
    zeroes them if it cares). Leaves the model in training mode.
    """
    model.train()
    carry = model.initial_carry(batch)
    with counting() as c:
        _, loss, _, _ = model(carry, batch, generator=generator)
        loss.backward()
    if hasattr(model, "core") and getattr(model.core, "puzzle_emb", None) is not None:
        model.core.puzzle_emb._pending.clear()  # measurement only: no embedding update due
    return c.get_total_flops() / batch["inputs"].shape[0]


def measure_eval_flops(model, batch: dict[str, torch.Tensor]) -> float:
    """Measured FLOPs per example per supervision segment of `predict`."""
    was = model.training
    model.eval()
    with counting() as c:
        model.predict(batch)
    model.train(was)
    return c.get_total_flops() / (batch["inputs"].shape[0] * model.cfg.halt_max_steps)


def check_flops(
    model, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None, rel_tol: float = 0.02
) -> dict[str, float]:
    """Analytic vs measured FLOPs per example (train and eval). Raises AssertionError beyond rel_tol.

    Returns {"train_analytic", "train_measured", "eval_analytic", "eval_measured"}.
    """
    out = {
        "train_analytic": float(model.flops_per_example("train")),
        "train_measured": measure_train_flops(model, batch, generator),
        "eval_analytic": float(model.flops_per_example("eval")),
        "eval_measured": measure_eval_flops(model, batch),
    }
    for mode in ("train", "eval"):
        a, m = out[f"{mode}_analytic"], out[f"{mode}_measured"]
        if abs(a - m) > rel_tol * m:
            raise AssertionError(
                f"{mode} FLOPs: analytic {a:.6g} vs measured {m:.6g} "
                f"({(a - m) / m:+.2%}, tolerance {rel_tol:.0%})"
            )
    return out
