"""Looped (Universal) transformer: one weight-tied stack applied `loops` times per segment.

The "recursion without the HRM/TRM specifics" baseline: the same blocks and input injection,

    for i in 1..loops:   z = f(z + x)          z, x [B, S, d]

with full backprop through every loop (no no-grad part, unlike TRM), and the shared deep
supervision / optional ACT wrapper around it (`act: false` = fixed halt_max_steps segments).
"""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt

from benchmarks.dataset import DatasetMeta
from models.act import Core, CoreConfig, LatentNoise, perturb
from models.layers import Stack


class LoopedConfig(CoreConfig):
    """Universal / looped transformer: one weight-tied stack applied `loops` times."""

    arch: Literal["looped"] = "looped"
    layers: PositiveInt = 2
    loops: PositiveInt = 4

    def shape(self) -> str:
        return f"loops={self.loops} layers={self.layers}"


class Looped(Core):
    latent_names = ("z",)
    answer_latent = "z"

    def __init__(self, cfg, meta: DatasetMeta, loops: int | None = None):
        super().__init__(cfg, meta)
        self.loops = cfg.loops if loops is None else loops
        self.net = Stack(cfg.layers, **self.block_kw())

    def forward(self, latents, batch, need_logits: bool = True, noise: LatentNoise | None = None):
        x = self.embed(batch)  # [B, S, d]
        z = latents["z"]
        for _ in range(self.loops):
            z = self.net(perturb(z, noise), x, self.rotary)  # weight-tied, with gradient
        logits, q = self.heads(z, need_logits)
        return {"z": z.detach()}, logits, q

    # FLOPs per example: loops * (layers blocks), all with backward in training, plus the heads.
    def segment_flops(self, grad: bool, q_grad: bool = True, need_logits: bool = True) -> float:
        return (6 if grad else 2) * self.loops * self.net.macs(self.S) + self._heads_flops(
            grad, q_grad, need_logits
        )

    def effective_depth(self) -> int:
        return self.loops * self.cfg.layers
