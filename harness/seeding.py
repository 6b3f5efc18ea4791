"""The one seeding helper.

Training randomness that must survive a resume exactly (ACT exploration) never comes from global
RNG state: it comes from `step_generator(seed, rank, step)`, a fresh generator derived from the
run's seed, the worker's rank and the optimizer step. A resumed run therefore draws the same numbers
as an uninterrupted one without saving any RNG state.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(*parts: int) -> int:
    """A stable 63-bit seed from integers (splitmix64 mixing; no Python hash randomisation)."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 29
    return x & 0x7FFFFFFFFFFFFFFF


def step_generator(seed: int, rank: int, step: int, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, rank, step))
    return g
