"""Token losses: stablemax cross-entropy (the HRM/TRM default) and softmax cross-entropy.

stablemax replaces exp by s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0, so probabilities
p_i = s(x_i) / sum_j s(x_j) grow only linearly with the logit: no softmax collapse in long training.
Both return the per-token loss [B, L] (0 where the label is ignored), computed in fp64 / fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.dataset import IGNORE_LABEL_ID


def _s(x: torch.Tensor) -> torch.Tensor:
    # Clamp each branch to its own domain: torch.where differentiates both branches, and 1/(1-x)
    # at x = 1 would put inf * 0 = NaN into the gradient.
    return torch.where(x < 0, 1.0 / (1.0 - x.clamp(max=0)), x.clamp(min=0) + 1.0)


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = _s(x)
    return torch.log(s) - torch.log(s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL_ID
) -> torch.Tensor:
    """logits [B, L, V], labels [B, L] -> per-token loss [B, L] (fp64, as the reference does)."""
    logprobs = log_stablemax(logits.to(torch.float64))
    valid = labels != ignore_index
    picked = torch.gather(logprobs, -1, torch.where(valid, labels, 0).unsqueeze(-1)).squeeze(-1)
    return torch.where(valid, -picked, 0.0)


def softmax_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL_ID
) -> torch.Tensor:
    """logits [B, L, V], labels [B, L] -> per-token loss [B, L] (fp32)."""
    B, L, V = logits.shape
    return F.cross_entropy(
        logits.float().reshape(B * L, V), labels.reshape(B * L), ignore_index=ignore_index, reduction="none"
    ).view(B, L)


LOSSES = {"stablemax": stablemax_cross_entropy, "softmax": softmax_cross_entropy}
