"""Hierarchical Reasoning Model (HRM, arXiv 2506.21734).

Two stacks: f_L (low level, fast) and f_H (high level, slow), L_layers / H_layers blocks each.
    z_H, z_L  [B, S, d]   high- and low-level states;  x [B, S, d] embedded input

One supervision segment, H_cycles x L_cycles with additive input injection:
    for h in 1..H_cycles:
        for l in 1..L_cycles:  z_L = f_L(z_L + z_H + x)
        z_H = f_H(z_H + z_L)
The "1-step gradient": every call except the very last f_L and f_H runs under no_grad.
logits = lm_head(z_H[:, P:]), (q_halt, q_continue) = q_head(z_H[:, 0]).

ACT uses Q-learning (halt when q_halt > q_continue) and the continue target from an extra no-grad
pass (models/act.py); `act_continue: false` drops both and halts on q_halt > 0 like TRM.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveInt

from benchmarks.dataset import DatasetMeta
from models.act import Core, CoreConfig, LatentNoise, perturb
from models.layers import Stack


class HRMConfig(CoreConfig):
    arch: Literal["hrm"] = "hrm"
    H_layers: PositiveInt = 4
    L_layers: PositiveInt = 4
    H_cycles: PositiveInt = 2
    L_cycles: PositiveInt = 2
    act_continue: bool = True  # Q-learning continue head + its extra no-grad target pass
    puzzle_emb_len: int = Field(1, ge=0)

    def shape(self) -> str:
        return (
            f"H_cycles={self.H_cycles} L_cycles={self.L_cycles} "
            f"H_layers={self.H_layers} L_layers={self.L_layers}"
        )


class HRM(Core):
    latent_names = ("z_H", "z_L")
    answer_latent = "z_H"

    def __init__(self, cfg: HRMConfig, meta: DatasetMeta):
        super().__init__(cfg, meta)
        kw = self.block_kw()
        self.H_cycles, self.L_cycles = cfg.H_cycles, cfg.L_cycles
        self.f_H = Stack(cfg.H_layers, **kw)
        self.f_L = Stack(cfg.L_layers, **kw)

    def forward(self, latents, batch, need_logits: bool = True, noise: LatentNoise | None = None):
        x = self.embed(batch)  # [B, S, d]
        z_H, z_L = latents["z_H"], latents["z_L"]
        with torch.no_grad():
            for h in range(self.H_cycles):
                z_L = perturb(z_L, noise)  # test-time noise, once per H cycle
                for l in range(self.L_cycles):
                    if not (h == self.H_cycles - 1 and l == self.L_cycles - 1):
                        z_L = self.f_L(z_L, z_H + x, self.rotary)
                if h != self.H_cycles - 1:
                    z_H = self.f_H(z_H, z_L, self.rotary)
        z_L = self.f_L(z_L, z_H + x, self.rotary)  # 1-step gradient: last f_L ...
        z_H = self.f_H(z_H, z_L, self.rotary)  # ... and last f_H
        logits, q = self.heads(z_H, need_logits)
        return {"z_H": z_H.detach(), "z_L": z_L.detach()}, logits, q

    # FLOPs per example: H*L f_L calls and H f_H calls; in training all but the last of each are
    # forward only (2/MAC) and the last f_L, f_H have backward too (6/MAC); plus the heads.
    # (The Q-target pass is added by the ACT wrapper: segment_flops(grad=False, need_logits=False).)
    def segment_flops(self, grad: bool, q_grad: bool = True, need_logits: bool = True) -> float:
        fL, fH = self.f_L.macs(self.S), self.f_H.macs(self.S)
        nL, nH = self.H_cycles * self.L_cycles, self.H_cycles
        if grad:
            body = 2 * (fL * (nL - 1) + fH * (nH - 1)) + 6 * (fL + fH)
        else:
            body = 2 * (fL * nL + fH * nH)
        return body + self._heads_flops(grad, q_grad, need_logits)

    def effective_depth(self) -> int:
        return self.H_cycles * (self.L_cycles * self.cfg.L_layers + self.cfg.H_layers)
