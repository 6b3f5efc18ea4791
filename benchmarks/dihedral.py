"""The 8 symmetries of a square grid (the dihedral group D4), on the last two axes.

Transform t in 0..7: rotate by 90 degrees (t mod 4) times, then transpose if t >= 4. t = 0 is the
identity. `inverse(forward(g, t), t) == g` for every grid shape (tested).
"""

from __future__ import annotations

import numpy as np


def forward(grid: np.ndarray, t: int) -> np.ndarray:
    g = np.rot90(grid, t % 4, axes=(-2, -1))
    return np.swapaxes(g, -2, -1) if t >= 4 else g


def inverse(grid: np.ndarray, t: int) -> np.ndarray:
    g = np.swapaxes(grid, -2, -1) if t >= 4 else grid
    return np.rot90(g, -(t % 4), axes=(-2, -1))
