"""The dense optimizers `train.optimizer` names: `adamw` (torch's) and `adam_atan2` (the reference's).

AdamATan2 is the optimizer the HRM/TRM code trains with (there a compiled CUDA extension). This is a
pure-PyTorch implementation of its rule, for CPU and GPU alike. Per parameter, at step t with the
usual Adam moments m, v and the bias corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t:

    m <- beta1 m + (1 - beta1) g;      v <- beta2 v + (1 - beta2) g^2
    p <- p (1 - lr wd)                                        (decoupled weight decay)
    p <- p - (lr / bc1) atan2(m, sqrt(v) / sqrt(bc2))          (no epsilon)

atan2 replaces Adam's m / (sqrt(v) + eps): the same ratio for small steps, but bounded, so each
update is at most lr * pi/2 / bc1 and no epsilon is needed. The state (step, exp_avg, exp_avg_sq) is
kept in the parameters' dtype (fp32: DeepSpeed hands mixed-precision runs' fp32 master weights to
the torch optimizer it wraps).
"""

from __future__ import annotations

import torch


class AdamATan2(torch.optim.Optimizer):
    def __init__(
        self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95), weight_decay: float = 0.0
    ):
        if lr <= 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(
                f"invalid AdamATan2 settings: lr={lr}, betas={betas}, weight_decay={weight_decay}"
            )
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamATan2 does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"].item()
                g, m, v = p.grad, state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(g, 1 - beta1)  # m = b1 m + (1-b1) g
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v = b2 v + (1-b2) g^2
                bc1, bc2 = 1 - beta1**t, 1 - beta2**t
                if wd:
                    p.mul_(1 - lr * wd)
                p.add_(torch.atan2(m, v.sqrt() / bc2**0.5), alpha=-lr / bc1)
        return loss


OPTIMIZERS = ("adamw", "adam_atan2")


def build_optimizer(train_cfg, params) -> torch.optim.Optimizer:
    """The torch optimizer `train.optimizer` names, with train.lr / betas / weight_decay."""
    kw = dict(lr=train_cfg.lr, betas=tuple(train_cfg.betas), weight_decay=train_cfg.weight_decay)
    if train_cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, **kw)
    if train_cfg.optimizer == "adam_atan2":
        return AdamATan2(params, **kw)
    raise ValueError(f"unknown optimizer {train_cfg.optimizer!r}; expected one of {OPTIMIZERS}")
