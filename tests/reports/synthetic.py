"""Synthetic evaluations drawn from known laws: per-example bits for seeds x puzzles."""

from __future__ import annotations

import numpy as np

from reports.intervals import Cell

A, ALPHA, PHI = 5.0, 0.35, 0.5  # error = A * (N * r^phi)^(-alpha)
TRANSFORMER_N = (1e4, 3e4, 1e5, 3e5, 1e6)
RECURSIVE = (1e4, (2, 4, 8))  # one recursive family: N fixed, r varies


def law_cells(rng, seeds: int = 3, puzzles: int = 400, sigma: float = 0.15):
    """-> (N [n], r [n], cells): transformers at TRANSFORMER_N (r = 1), then the recursive family.
    Each seed's error is the law's times a mean-one lognormal (seed-to-seed variance); each puzzle
    is an independent Bernoulli draw given the seed."""
    rows = [(n, 1) for n in TRANSFORMER_N] + [(RECURSIVE[0], r) for r in RECURSIVE[1]]
    cells = []
    for n, r in rows:
        e = A * (n * r**PHI) ** -ALPHA
        es = e * np.exp(sigma * rng.standard_normal(seeds) - sigma**2 / 2)
        cells.append(Cell(rng.random((seeds, puzzles)) > es[:, None], np.arange(puzzles)))
    rows = np.array(rows, float)
    return rows[:, 0], rows[:, 1], cells


def shared_puzzle_cell(rng, seeds: int, puzzles: int, a: float = 0.4, b: float = 0.4) -> Cell:
    """Puzzles differ in difficulty (p_j ~ Beta(a, b): many always or never solved) and every seed
    sees the same puzzles, so seeds are strongly correlated."""
    p = rng.beta(a, b, size=puzzles)
    return Cell(rng.random((seeds, puzzles)) < p, np.arange(puzzles))
