"""Sudoku tasks: generated puzzles at 4x4 / 6x6 / 9x9, or the published Sudoku-Extreme CSV.

Encoding (the papers'): one token per cell, row by row; 0 = pad, 1 = blank, 2..n+1 = digits 1..n
(9x9: seq_len 81, vocab 11). The label is the solved grid; every cell carries loss.

Training puzzles are expanded with validity-preserving augmentations (digit permutation; transpose
where the boxes are square; permuting bands and the rows inside a band; stacks and the columns
inside a stack). Variant 0 of every group is the original. Test puzzles are not augmented.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from benchmarks import csvfmt, published
from benchmarks.dataset import DatasetMeta, MappedRows, PuzzleDataset
from benchmarks.registry import Family, TaskSpec, split_seed
from benchmarks.sudoku_solver import BOXES, generate, is_valid_solution, rate
from benchmarks.errors import ConfigError, DataError, UserError


class SudokuParams(published.SourceParams):
    size: int = Field(9, description="grid side: 4, 6 or 9")
    hub_repo: str | None = "sapientinc/sudoku-extreme"
    clues: int | None = Field(None, ge=0)  # stop removing givens here; None = minimal puzzles
    min_rating: int = Field(0, ge=0)  # "extreme" selection: DFS backtracks >= this
    max_rating: int | None = Field(None, ge=0)
    augmentations: int = Field(0, ge=0)  # extra variants per training puzzle (paper: 1000)
    max_candidates: int = Field(200, ge=1)  # give up after this many candidates per puzzle kept

    @field_validator("size")
    @classmethod
    def _size(cls, v: int) -> int:
        if v not in BOXES:
            raise ValueError(f"size must be one of {sorted(BOXES)}")
        return v


# ---------------------------------------------------------------------------------------------
# Augmentation: a transform is a cell map (new cell i takes old cell cellmap[i]) and a digit map.


def random_transforms(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k random validity-preserving transforms: (cellmap [k, n*n] int64, digitmap [k, n+1] int64)
    with digitmap[:, 0] = 0 (blank stays blank)."""
    br, bc = BOXES[n]
    nb, ns = n // br, n // bc  # bands, stacks

    def axis_map(groups: int, per: int) -> np.ndarray:  # [k, n]: permuted bands x rows
        outer = np.argsort(rng.random((k, groups)), axis=1)
        inner = np.argsort(rng.random((k, groups, per)), axis=2)
        return (outer[:, :, None] * per + inner).reshape(k, groups * per)

    rows, cols = axis_map(nb, br), axis_map(ns, bc)
    plain = rows[:, :, None] * n + cols[:, None, :]  # out[r, c] = g[rows[r], cols[c]]
    cellmap = plain
    if br == bc:  # transpose keeps boxes only if square
        flip = rng.random(k) < 0.5
        transposed = rows[:, :, None] + cols[:, None, :] * n  # out[r, c] = g[cols[c], rows[r]]
        cellmap = np.where(flip[:, None, None], transposed, plain)
    digits = np.concatenate([np.zeros((k, 1), np.int64), 1 + np.argsort(rng.random((k, n)), axis=1)], axis=1)
    return cellmap.reshape(k, n * n), digits


def apply_transforms(grids: np.ndarray, cellmap: np.ndarray, digitmap: np.ndarray) -> np.ndarray:
    """grids [k, n*n] digits (0 = blank) -> transformed [k, n*n]."""
    moved = np.take_along_axis(grids.astype(np.int64), cellmap, axis=1)
    return np.take_along_axis(digitmap, moved, axis=1)


def augment(
    questions: np.ndarray, answers: np.ndarray, n: int, per: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each puzzle followed by `per` random variants: ([M*(per+1), n*n] x2, group ids)."""
    m = len(questions)
    reps = per + 1
    q = np.repeat(questions, reps, axis=0)
    a = np.repeat(answers, reps, axis=0)
    cellmap, digitmap = random_transforms(n, m * reps, rng)
    ident = np.arange(m * reps) % reps == 0
    cellmap[ident] = np.arange(n * n)
    digitmap[ident] = np.arange(n + 1)
    return (
        apply_transforms(q, cellmap, digitmap),
        apply_transforms(a, cellmap, digitmap),
        np.repeat(np.arange(m, dtype=np.int64), reps),
    )


# ---------------------------------------------------------------------------------------------
# Sources


def generate_puzzles(p: SudokuParams, count: int, salt: int = 0):
    """`count` distinct puzzles passing the rating filter: (questions, answers [count, n*n], ratings).
    Candidate i is generated from its own seed (data_seed, size, salt, i), so the result does not
    depend on how the work is chunked."""
    n, seen = p.size, set()
    qs, as_, rs = [], [], []
    i = 0
    while len(qs) < count:
        if i >= p.max_candidates * count:
            raise UserError(
                f"sudoku {n}x{n}: only {len(qs)} of {count} puzzles had a rating in "
                f"[{p.min_rating}, {p.max_rating}] after {i} candidates; lower "
                f"task.min_rating or raise task.max_candidates"
            )
        rng = np.random.default_rng([p.data_seed, n, salt, i])
        i += 1
        puzzle, solution = generate(n, rng, p.clues)
        key = bytes(puzzle)
        if key in seen:
            continue
        r = rate(puzzle, n)
        if r < p.min_rating or (p.max_rating is not None and r > p.max_rating):
            continue
        seen.add(key)
        qs.append(puzzle)
        as_.append(solution)
        rs.append(r)
    return (
        np.array(qs, np.int64).reshape(-1, n * n),
        np.array(as_, np.int64).reshape(-1, n * n),
        np.array(rs, np.float64),
    )


def read_csv(path, n: int) -> csvfmt.Rows:
    """Published format; '.' or '0' is a blank. Also checks that each answer is a solved grid that
    agrees with its question's givens."""
    digits = "0123456789"[: n + 1]
    qlut = np.full(256, 255, np.uint8)
    qlut[ord(".")] = 0
    for i, ch in enumerate(digits):
        qlut[ord(ch)] = i
    rows = csvfmt.read(path, n * n, "." + digits, digits[1:], decode=lambda b: qlut[b])
    ans = rows.answers.astype(np.int64) + 1  # index in "1..n" -> digit
    q = rows.questions.astype(np.int64)
    bad_grid = ~is_valid_solution(ans, n)
    bad_given = ((q != 0) & (q != ans)).any(1)
    bad = np.flatnonzero(bad_grid | bad_given)
    if len(bad):
        i = bad[0]
        why = (
            "answer is not a valid solved grid"
            if bad_grid[i]
            else f"answer disagrees with the question's given at cell "
            f"{int(np.flatnonzero((q[i] != 0) & (q[i] != ans[i]))[0])}"
        )
        raise DataError(path, int(rows.lines[i]), why)
    rows.answers = ans.astype(np.uint8)
    return rows


class Sudoku(Family):
    Params = SudokuParams
    VERSION = 1

    def check(self, name: str, p: SudokuParams) -> None:
        published.check_source(p)
        if p.clues is not None and p.clues > p.size**2:
            raise ConfigError("task.clues", f"at most {p.size**2} for a {p.size}x{p.size} grid")

    def meta(self, name: str, p: SudokuParams) -> DatasetMeta:
        br, bc = BOXES[p.size]
        return DatasetMeta(
            task=name,
            seq_len=p.size**2,
            vocab_size=p.size + 2,
            num_puzzle_identifiers=1,
            extra={"family": "sudoku", "size": p.size, "box": [br, bc]},
        )

    def source_files(self, p: SudokuParams):
        return published.local_files(p)

    def local_source(self, paths):
        return published.local_source(paths)

    def build(self, spec: TaskSpec) -> dict[str, PuzzleDataset]:
        p: SudokuParams = spec.params
        n = p.size
        if p.source == "generate":
            q, a, r = generate_puzzles(p, p.train_size + p.test_size)
            split = {
                "train": (q[: p.train_size], a[: p.train_size], r[: p.train_size]),
                "test": (q[p.train_size :], a[p.train_size :], r[p.train_size :]),
            }
        else:
            if n != 9 and p.source == "hub":
                raise ConfigError("task.size", "the published Sudoku-Extreme is 9x9")

            def keep(rows):  # the rating filter applies to the file's rating column
                r = np.nan_to_num(rows.ratings, nan=0.0)
                hi = np.inf if p.max_rating is None else p.max_rating
                return (r >= p.min_rating) & (r <= hi)

            rows = published.load_splits(p, spec.name, lambda path: read_csv(path, n), keep)
            split = {
                s: (rw.questions.astype(np.int64), rw.answers.astype(np.int64), rw.ratings)
                for s, rw in rows.items()
            }
        out = {}
        for s, (q, a, r) in split.items():
            if s == "train" and p.augmentations:
                qa, aa, groups = augment(q, a, n, p.augmentations, split_seed(p, 3))
                ratings = np.repeat(r, p.augmentations + 1)
            else:
                qa, aa, groups, ratings = q, a, np.arange(len(q), dtype=np.int64), r
            x, y = (qa + 1).astype(np.int32), (aa + 1).astype(np.int32)
            if s == "train" and p.augmentations:  # large: store as uint8 rows (4x smaller)
                x, y = MappedRows.pack(x), MappedRows.pack(y)
            out[s] = PuzzleDataset(
                inputs=x,
                labels=y,
                puzzle_identifiers=np.zeros(len(qa), np.int32),
                group_ids=groups,
                meta=spec.meta,
                aux={"rating": ratings.astype(np.float32)},
            )
        return out

    # -- text -------------------------------------------------------------------------------

    def render(self, ds: PuzzleDataset, i: int) -> str:
        n = ds.meta.extra["size"]
        return side_by_side(
            grid_text(ds.inputs[i] - 1, n), grid_text(ds.labels[i] - 1, n), "puzzle", "solution"
        )

    def export_rows(self, ds: PuzzleDataset, source: str):
        """(source, question, answer, rating) per row in the published CSV format."""
        chars = np.frombuffer(b".123456789", np.uint8)
        q = chars[np.asarray(ds.inputs) - 1]
        a = chars[np.asarray(ds.labels) - 1]
        ratings = ds.aux.get("rating", np.full(len(ds), np.nan))
        for i in range(len(ds)):
            yield f"{source}/{i}", q[i].tobytes().decode(), a[i].tobytes().decode(), float(ratings[i])


def grid_text(digits: np.ndarray, n: int) -> list[str]:
    br, bc = BOXES[n]
    lines = []
    for r in range(n):
        if r and r % br == 0:
            lines.append("-+-".join(["-" * (2 * bc - 1)] * (n // bc)))
        cells = [str(int(d)) if d > 0 else "." for d in digits[r * n : (r + 1) * n]]
        lines.append(" | ".join(" ".join(cells[c : c + bc]) for c in range(0, n, bc)))
    return lines


def side_by_side(left: list[str], right: list[str], ltitle: str, rtitle: str, gap: int = 4) -> str:
    w = max(len(s) for s in left + [ltitle])
    rows = [f"{ltitle:<{w}}{' ' * gap}{rtitle}"]
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        rows.append(f"{a:<{w}}{' ' * gap}{b}")
    return "\n".join(rows)
