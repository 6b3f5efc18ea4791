"""Intervals on exact accuracy: a two-level (cluster) bootstrap over seeds and test puzzles.

Several seeds of one configuration are evaluated on the SAME test puzzles, so their per-puzzle
outcomes are correlated (an easy puzzle is solved by every seed). Pooling them into one binomial
sample of seeds x puzzles treats them as independent and gives intervals that are too narrow.
Instead each bootstrap replicate

1. draws the test puzzles with replacement (whole puzzle groups: every augmented variant of one
   original moves together), ONE draw per task shared by every configuration evaluated on it, so
   differences and fits across configurations see the same puzzle sample; and
2. draws the seeds of each configuration with replacement;

and the statistic is the mean exact accuracy over the drawn seeds and puzzles. With one seed the
seed level is a no-op and only puzzles are resampled.

`Cell` holds one configuration's [seeds, examples] correctness bits. Replicates are computed as
matrix products (weights x bits), so thousands of replicates of a sweep take milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binomtest


@dataclass
class Cell:
    """One configuration on one test set: `correct` [S, N] bool (seed x example), `puzzle_ids` [N]
    (the group of each example; examples of one group are resampled together)."""

    correct: np.ndarray
    puzzle_ids: np.ndarray
    key: str = "test"  # cells with equal keys share the puzzle draw
    seeds: list = field(default_factory=list)

    def __post_init__(self):
        self.correct = np.atleast_2d(np.asarray(self.correct, dtype=bool))
        self.puzzle_ids = np.asarray(self.puzzle_ids)
        if self.correct.shape[1] != len(self.puzzle_ids):
            raise ValueError(f"correct {self.correct.shape} does not match {len(self.puzzle_ids)} puzzle ids")

    @property
    def per_seed(self) -> np.ndarray:
        return self.correct.mean(axis=1)

    @property
    def mean(self) -> float:
        return float(self.correct.mean())


def _grouped(cell: Cell, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> (C [S, G] correct count per seed and group, n [G] examples per group) over `groups`."""
    col = np.searchsorted(groups, cell.puzzle_ids)
    C = np.zeros((cell.correct.shape[0], len(groups)))
    np.add.at(C.T, col, cell.correct.T.astype(float))
    n = np.bincount(col, minlength=len(groups)).astype(float)
    return C, n


def bootstrap(cells: list[Cell], n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Two-level bootstrap replicates of every cell's mean accuracy -> [n_boot, len(cells)]."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, len(cells)))
    by_key: dict[str, list[int]] = {}
    for i, c in enumerate(cells):
        by_key.setdefault(c.key, []).append(i)
    for _key, idx in by_key.items():
        groups = np.unique(np.concatenate([cells[i].puzzle_ids for i in idx]))
        w = rng.multinomial(len(groups), np.full(len(groups), 1 / len(groups)), size=n_boot)  # [B, G]
        for i in idx:
            C, n = _grouped(cells[i], groups)
            S = C.shape[0]
            v = rng.multinomial(S, np.full(S, 1 / S), size=n_boot) if S > 1 else np.ones((n_boot, 1))
            num = (v * (w @ C.T)).sum(axis=1)  # [B]
            den = v.sum(axis=1) * (w @ n)
            out[:, i] = np.divide(num, den, out=np.full(n_boot, np.nan), where=den > 0)
    return out


def percentile_interval(
    draws: np.ndarray, level: float = 0.95, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    import warnings

    a = (1 - level) / 2
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with no replicates -> nan
        return np.nanquantile(draws, a, axis=axis), np.nanquantile(draws, 1 - a, axis=axis)


def pooled_binomial(cell: Cell, level: float = 0.95) -> tuple[float, float]:
    """The naive interval: every seed x example as one independent Bernoulli draw (Wilson).
    Kept to show what the two-level interval corrects, not used for headlines."""
    k, n = int(cell.correct.sum()), int(cell.correct.size)
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def seed_only(per_seed: np.ndarray, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Fallback when no per-example bits were logged: resample seeds only -> [n_boot] means.
    (It ignores puzzle sampling, so it is too narrow; the report labels such intervals.)"""
    per_seed = np.asarray(per_seed, float)
    rng = np.random.default_rng(seed)
    if len(per_seed) == 0:
        return np.full(n_boot, math.nan)
    idx = rng.integers(0, len(per_seed), size=(n_boot, len(per_seed)))
    return per_seed[idx].mean(axis=1)
