"""Puzzle embeddings: one learned vector per puzzle identifier, prepended as prefix tokens.

The table is a *buffer*, not a parameter: it is excluded from parameter counts and never seen by the
dense optimizer (DeepSpeed's or any other). The rows used by a batch are copied into a leaf tensor
that requires grad; after `loss.backward()` that leaf holds the sparse gradient, and
`step(lr, weight_decay)` applies sign-SGD with decoupled weight decay to those rows only:

    w <- w * (1 - lr * wd) - lr * sign(g)        (g summed over duplicate rows and over workers)

Under torch.distributed every worker gathers every worker's (ids, grads) first, so all copies of the
table stay identical. The table is kept in fp32 even when the module is cast to bf16.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class PuzzleEmbedding(nn.Module):
    def __init__(self, num_identifiers: int, dim: int, prefix_len: int):
        super().__init__()
        assert prefix_len >= 1
        self.dim, self.prefix_len = dim, prefix_len
        # zero-init, as in the reference: a fresh puzzle starts from "no information"
        self.register_buffer("weights", torch.zeros(max(1, num_identifiers), dim))
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # (ids [B], local rows [B, dim])

    def _apply(self, fn, recurse=True):
        # module.bfloat16() / .half() (DeepSpeed's bf16 path) would cast the table; sign-SGD steps
        # of 1e-2 on bf16 values near 1 are lost to rounding, so keep it fp32 (device moves apply).
        super()._apply(fn, recurse)
        if self.weights.dtype != torch.float32:
            self.weights = self.weights.float()
        return self

    def forward(self, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """ids [B] -> prefix [B, P, dim]: the identifier's vector, then P-1 zero positions."""
        rows = self.weights[ids]  # [B, dim] (a copy)
        if self.training and torch.is_grad_enabled():
            rows.requires_grad_(True)
            self._pending.append((ids, rows))
        prefix = rows.to(dtype).unsqueeze(1)  # [B, 1, dim]
        if self.prefix_len > 1:
            pad = prefix.new_zeros(prefix.shape[0], self.prefix_len - 1, self.dim)
            prefix = torch.cat((prefix, pad), dim=1)
        return prefix

    @torch.no_grad()
    def step(self, lr: float, weight_decay: float) -> None:
        """Sparse sign-SGD on the rows used since the last step; collective when distributed."""
        pending = [(i, r.grad) for i, r in self._pending if r.grad is not None]
        self._pending.clear()
        device = self.weights.device
        if pending:
            ids = torch.cat([i for i, _ in pending]).to(device)
            grads = torch.cat([g for _, g in pending]).to(device=device, dtype=torch.float32)
        else:
            ids = torch.zeros(0, dtype=torch.long, device=device)
            grads = torch.zeros(0, self.dim, device=device)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            ids, grads = _all_gather_rows(ids, grads)
        if ids.numel() == 0:
            return
        uniq, inverse = torch.unique(ids, return_inverse=True)
        g = torch.zeros(uniq.numel(), self.dim, device=device).index_add_(0, inverse, grads)
        w = self.weights[uniq]
        w.mul_(1.0 - lr * weight_decay).add_(torch.sign(g), alpha=-lr)
        self.weights[uniq] = w


def _all_gather_rows(ids: torch.Tensor, grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every worker's (ids, grads). Workers may hold different row counts."""
    world = dist.get_world_size()
    n = torch.tensor([ids.numel()], dtype=torch.long, device=ids.device)
    counts = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(counts, n)
    counts = [int(c.item()) for c in counts]
    m = max(counts)
    if m == 0:
        return ids, grads
    pad_ids = torch.zeros(m, dtype=ids.dtype, device=ids.device)
    pad_ids[: ids.numel()] = ids
    pad_g = torch.zeros(m, grads.shape[1], dtype=grads.dtype, device=grads.device)
    pad_g[: grads.shape[0]] = grads
    all_ids = [torch.empty_like(pad_ids) for _ in range(world)]
    all_g = [torch.empty_like(pad_g) for _ in range(world)]
    dist.all_gather(all_ids, pad_ids)
    dist.all_gather(all_g, pad_g)
    return (
        torch.cat([a[:c] for a, c in zip(all_ids, counts)]),
        torch.cat([a[:c] for a, c in zip(all_g, counts)]),
    )
