"""Tiny Recursive Model (TRM, arXiv 2510.04871).

ONE network `net` of `layers` post-norm blocks updates both states:
    y  [B, S, d]  the current answer (HRM's z_H)
    z  [B, S, d]  the latent reasoning state (HRM's z_L)
    x  [B, S, d]  the embedded question (puzzle prefix + tokens)

    latent_recursion(x, y, z):   n times  z = net(z + y + x);   then  y = net(y + z)
    one supervision step:        T-1 recursions under no_grad, then 1 with full backprop through
                                 its n+1 calls;  logits = lm_head(y[:, P:]),  q = q_head(y[:, 0])

Halting: a single BCE head (q_halt_logit > 0), no continue loss. EMA of the weights is the engine's
job (train.ema_decay). TRM-MLP (`mlp_t: true`): attention replaced by a SwiGLU across the sequence,
no positional encoding.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveInt

from benchmarks.dataset import DatasetMeta
from models.act import Core, CoreConfig, LatentNoise, perturb
from models.layers import Stack


class TRMConfig(CoreConfig):
    arch: Literal["trm"] = "trm"
    layers: PositiveInt = 2
    T: PositiveInt = 3  # recursions per supervision step (T-1 without gradient)
    n: PositiveInt = 6  # latent updates per recursion
    mlp_t: bool = False  # TRM-MLP: token-mixing SwiGLU instead of attention
    puzzle_emb_len: int = Field(16, ge=0)

    def shape(self) -> str:
        return f"T={self.T} n={self.n} layers={self.layers}" + (" (MLP)" if self.mlp_t else "")


class TRM(Core):
    latent_names = ("y", "z")
    answer_latent = "y"

    def __init__(self, cfg: TRMConfig, meta: DatasetMeta):
        super().__init__(cfg, meta)
        self.T, self.n = cfg.T, cfg.n
        self.net = Stack(cfg.layers, **self.block_kw())

    def latent_recursion(self, x, y, z):
        for _ in range(self.n):
            z = self.net(z, y + x, self.rotary)  # z = net(z + y + x)   [B, S, d]
        y = self.net(y, z, self.rotary)  # y = net(y + z)       [B, S, d]
        return y, z

    def forward(self, latents, batch, need_logits: bool = True, noise: LatentNoise | None = None):
        x = self.embed(batch)  # [B, S, d]
        y, z = latents["y"], latents["z"]
        with torch.no_grad():
            for _ in range(self.T - 1):
                y, z = self.latent_recursion(x, y, perturb(z, noise))
        y, z = self.latent_recursion(x, y, perturb(z, noise))  # full backprop through n+1 calls
        logits, q = self.heads(y, need_logits)
        return {"y": y.detach(), "z": z.detach()}, logits, q

    # FLOPs per example: (T-1)(n+1) net calls forward only (2/MAC) + (n+1) calls with backward
    # (6/MAC), plus the heads. T=3, n=6: 2N*14 + 6N*7 = 70N per token.
    def segment_flops(self, grad: bool, q_grad: bool = True, need_logits: bool = True) -> float:
        net = self.net.macs(self.S)
        calls = self.T * (self.n + 1)
        if grad:
            body = 2 * net * (calls - (self.n + 1)) + 6 * net * (self.n + 1)
        else:
            body = 2 * net * calls
        return body + self._heads_flops(grad, q_grad, need_logits)

    def effective_depth(self) -> int:
        return self.T * (self.n + 1) * self.cfg.layers
