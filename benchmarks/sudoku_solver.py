"""Sudoku of any box shape: bitmask depth-first search, generation and rating.

A grid is a flat list of n*n ints, 0 = blank, 1..n = digits. The solver keeps one candidate bitmask
per cell (bit d-1 = digit d possible). Placing a digit removes it from the cell's peers, and any peer
left with a single candidate is placed in turn (naked singles), so a search only branches on cells
with two or more candidates, choosing the one with fewest (minimum remaining values).

Rating = the number of dead-end guesses ("backtracks") this DFS makes before it finds the first
solution, trying digits in ascending order. Puzzles solvable by naked singles alone rate 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # grid size -> (box rows, box cols)


@dataclass(frozen=True)
class Geometry:
    n: int
    br: int  # rows per box
    bc: int  # columns per box
    peers: tuple[tuple[int, ...], ...] = field(repr=False, compare=False, default=())
    units: tuple[tuple[int, int, int], ...] = field(repr=False, compare=False, default=())  # (row, col, box)

    @classmethod
    def of(cls, n: int) -> Geometry:
        br, bc = BOXES[n]
        peers, units = [], []
        for cell in range(n * n):
            r, c = divmod(cell, n)
            box = (r // br * br, c // bc * bc)
            ps = {r * n + j for j in range(n)} | {i * n + c for i in range(n)}
            ps |= {(box[0] + i) * n + box[1] + j for i in range(br) for j in range(bc)}
            ps.discard(cell)
            peers.append(tuple(sorted(ps)))
            units.append((r, c, (r // br) * (n // bc) + c // bc))
        return cls(n, br, bc, tuple(peers), tuple(units))

    @property
    def cells(self) -> int:
        return self.n * self.n

    @property
    def full(self) -> int:
        return (1 << self.n) - 1


_GEOMS: dict[int, Geometry] = {}


def geometry(n: int) -> Geometry:
    if n not in _GEOMS:
        _GEOMS[n] = Geometry.of(n)
    return _GEOMS[n]


def _assign(c: list[int], cell: int, bit: int, peers) -> bool:
    """Place `bit` at `cell` and propagate naked singles. False on contradiction (c is then junk)."""
    if not c[cell] & bit:
        return False
    c[cell] = bit
    stack = [(cell, bit)]
    while stack:
        cell, bit = stack.pop()
        for p in peers[cell]:
            m = c[p]
            if m & bit:
                m ^= bit
                if not m:
                    return False
                c[p] = m
                if not m & (m - 1):
                    stack.append((p, m))
    return True


def _start(grid, geo: Geometry, exclude: tuple[int, int] | None = None) -> list[int] | None:
    """Candidate masks for `grid`'s givens, singles propagated (None if they contradict).
    `exclude=(cell, digit)` forbids that digit at that cell (used to ask "is there a solution other
    than this one?"). Masks come from per-unit digit sets in one pass; only cells left with a single
    candidate then go through `_assign` (propagating every given separately costs ~10x more)."""
    n = geo.n
    row_used, col_used, box_used = [0] * n, [0] * n, [0] * n
    unit = geo.units
    for cell, d in enumerate(grid):
        if d:
            bit = 1 << (d - 1)
            r, c, b = unit[cell]
            if (row_used[r] | col_used[c] | box_used[b]) & bit:
                return None
            row_used[r] |= bit
            col_used[c] |= bit
            box_used[b] |= bit
    ex_cell, ex_bit = (exclude[0], 1 << (exclude[1] - 1)) if exclude is not None else (-1, 0)
    full = geo.full
    masks, singles = [], []
    for cell, d in enumerate(grid):
        if d:
            m = 1 << (d - 1)
        else:
            r, c, b = unit[cell]
            m = full & ~(row_used[r] | col_used[c] | box_used[b])
            if not m & (m - 1):
                singles.append(cell)
        if cell == ex_cell:
            m &= ~ex_bit
            if m and not m & (m - 1):
                singles.append(cell)
        if not m:
            return None
        masks.append(m)
    peers = geo.peers
    for cell in singles:
        if not _assign(masks, cell, masks[cell], peers):
            return None
    return masks


def _branch_cell(c: list[int]) -> int:
    best, best_k = -1, 99
    for i, m in enumerate(c):
        if m & (m - 1):
            k = m.bit_count()
            if k < best_k:
                best, best_k = i, k
                if k == 2:
                    break
    return best


def _count(c: list[int], peers, limit: int) -> int:
    cell = _branch_cell(c)
    if cell < 0:
        return 1
    total, m = 0, c[cell]
    while m:
        bit = m & -m
        m ^= bit
        c2 = c.copy()
        if _assign(c2, cell, bit, peers):
            total += _count(c2, peers, limit - total)
            if total >= limit:
                break
    return total


def _first(c: list[int], peers, dead: list[int], order=None) -> list[int] | None:
    cell = _branch_cell(c)
    if cell < 0:
        return c
    m = c[cell]
    bits = []
    while m:
        b = m & -m
        bits.append(b)
        m ^= b
    if order is not None:
        order.shuffle(bits)
    for bit in bits:
        c2 = c.copy()
        if _assign(c2, cell, bit, peers):
            r = _first(c2, peers, dead, order)
            if r is not None:
                return r
        dead[0] += 1
    return None


def _digits(c: list[int]) -> list[int]:
    return [m.bit_length() for m in c]


def count_solutions(grid, n: int, limit: int = 2) -> int:
    """Number of solutions of `grid`, counting stops at `limit`."""
    geo = geometry(n)
    c = _start(grid, geo)
    return 0 if c is None else _count(c, geo.peers, limit)


def solve(grid, n: int) -> tuple[list[int] | None, int]:
    """(first solution in ascending-digit DFS order or None, backtracks it needed = the rating)."""
    geo = geometry(n)
    c = _start(grid, geo)
    dead = [0]
    sol = None if c is None else _first(c, geo.peers, dead)
    return (None if sol is None else _digits(sol)), dead[0]


def rate(grid, n: int) -> int:
    return solve(grid, n)[1]


def random_solution(n: int, rng: np.random.Generator) -> list[int]:
    """A random complete grid: DFS from an empty grid with shuffled digit order."""
    import random

    geo = geometry(n)
    order = random.Random(int(rng.integers(2**63)))
    return _digits(_first([geo.full] * geo.cells, geo.peers, [0], order))


def generate(n: int, rng: np.random.Generator, clues: int | None = None) -> tuple[list[int], list[int]]:
    """(puzzle, solution) with exactly one solution. Givens are removed in random order while the
    solution stays unique; stops at `clues` givens, or when no given can go (a minimal puzzle)."""
    geo = geometry(n)
    sol = random_solution(n, rng)
    puzzle = list(sol)
    left = geo.cells
    for cell in rng.permutation(geo.cells).tolist():
        if clues is not None and left <= clues:
            break
        d = puzzle[cell]
        puzzle[cell] = 0
        c = _start(puzzle, geo, exclude=(cell, d))
        if c is not None and _first(c, geo.peers, [0]) is not None:
            puzzle[cell] = d  # another solution exists without this given: keep it
        else:
            left -= 1
    return puzzle, sol


def is_valid_solution(grid: np.ndarray, n: int) -> np.ndarray:
    """Vectorised check of complete grids [..., n*n] (digits 1..n): every row, column and box holds
    each digit once. Returns a bool per grid."""
    br, bc = BOXES[n]
    g = np.asarray(grid).reshape(-1, n, n)
    want = np.arange(1, n + 1)
    rows = np.sort(g, axis=2)
    cols = np.sort(g, axis=1).transpose(0, 2, 1)
    boxes = g.reshape(-1, n // br, br, n // bc, bc).transpose(0, 1, 3, 2, 4).reshape(-1, n, n)
    boxes = np.sort(boxes, axis=2)
    ok = (rows == want).all((1, 2)) & (cols == want).all((1, 2)) & (boxes == want).all((1, 2))
    return ok.reshape(np.asarray(grid).shape[:-1])
