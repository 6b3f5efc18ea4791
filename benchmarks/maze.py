"""Maze tasks: generated n x n mazes with a shortest-path-length filter, or the published Maze-Hard.

Grid characters (the published CSV): '#' wall, ' ' open, 'S' start, 'G' goal, 'o' path. Encoding:
token = 1 + index in "# SGo" (0 = pad), seq_len n*n, vocab 6. The label is the grid with the cells of
a shortest S->G path (S and G excluded) marked 'o'; every cell carries loss.

Generation: a random depth-first ("recursive backtracker") maze on the lattice of odd coordinates,
then a fraction `loops` of the remaining inner walls between two corridors is knocked down so that
routes are not unique; S and G are drawn among open cells whose BFS distance is at least
`min_path_length` (Maze-Hard: 30x30, length > 110). With `unique_path` (default) only mazes with
exactly one shortest path are kept, so exact-match scoring never penalises an equally short route.
Mazes can be trained at one size and tested at a larger one (`test_grid`): the smaller ones sit in
the top-left corner of the larger canvas, the rest filled with wall.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from pydantic import Field

from benchmarks import csvfmt, published
from benchmarks.dihedral import forward as dihedral
from benchmarks.dataset import DatasetMeta, MappedRows, PuzzleDataset
from benchmarks.registry import Family, TaskSpec, split_seed
from benchmarks.errors import ConfigError, DataError, UserError

CHARS = "# SGo"
WALL, OPEN, START, GOAL, PATH = range(5)  # codes; token = code + 1


class MazeParams(published.SourceParams):
    hub_repo: str | None = "sapientinc/maze-30x30-hard-1k"
    grid: int = Field(30, ge=5, le=128)  # side of training mazes (and test, unless test_grid)
    test_grid: int | None = Field(None, ge=5, le=128)
    min_path_length: int = Field(1, ge=1)  # BFS moves from S to G, at least (Maze-Hard: 111)
    loops: float = Field(0.1, ge=0, le=1)  # fraction of inner walls removed after carving
    unique_path: bool = True
    augmentations: int = Field(0, ge=0, le=7)  # extra dihedral variants per training maze
    max_candidates: int = Field(200, ge=1)


# ---------------------------------------------------------------------------------------------
# Geometry helpers on a grid of codes [n, n]


def bfs(grid: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Moves from `start` to every cell through non-wall cells (-1 = unreachable). Runs on a flat
    list with a wall border added, so neighbours need no bounds checks (numpy indexing per cell is
    ~20x slower than list indexing here)."""
    n, m = grid.shape
    w = m + 2
    padded = np.zeros((n + 2, w), bool)
    padded[1:-1, 1:-1] = grid != WALL
    free = padded.ravel().tolist()
    dist = [-1] * len(free)
    s = (start[0] + 1) * w + start[1] + 1
    dist[s] = 0
    q = deque([s])
    steps = (-w, w, -1, 1)
    while q:
        v = q.popleft()
        d = dist[v] + 1
        for step in steps:
            u = v + step
            if free[u] and dist[u] < 0:
                dist[u] = d
                q.append(u)
    return np.asarray(dist, np.int64).reshape(n + 2, w)[1:-1, 1:-1]


def shortest_path(grid: np.ndarray, s: tuple[int, int], g: tuple[int, int]):
    """(one shortest path as a list of cells from s to g or None, number of shortest paths capped at 2)."""
    ds, dg = bfs(grid, s), bfs(grid, g)
    L = int(ds[g])
    if L < 0:
        return None, 0
    n, m = grid.shape
    on = ((ds >= 0) & (dg >= 0) & (ds + dg == L)).ravel().tolist()  # on some shortest path
    d = ds.ravel().tolist()
    # Count paths in order of distance (cap 2): ways[v] = sum over on-path neighbours one closer.
    order = sorted((i for i in range(n * m) if on[i]), key=d.__getitem__)
    ways = [0] * (n * m)
    si, gi = s[0] * m + s[1], g[0] * m + g[1]

    def prev(v):
        r, c = divmod(v, m)
        for u, ok in ((v - m, r > 0), (v + m, r < n - 1), (v - 1, c > 0), (v + 1, c < m - 1)):
            if ok and on[u] and d[u] == d[v] - 1:
                yield u

    for v in order:
        ways[v] = 1 if v == si else min(2, sum(ways[u] for u in prev(v)))
    path = [gi]
    while path[-1] != si:
        path.append(next(prev(path[-1])))
    return [divmod(v, m) for v in reversed(path)], ways[gi]


def carve(n: int, loops: float, rng: np.random.Generator) -> np.ndarray:
    """A maze of codes [n, n]: border and lattice walls, corridors carved by randomized DFS."""
    k = (n - 1) // 2  # lattice cells per side, at odd coordinates 1..2k-1
    openc = [False] * (n * n)
    seen = [False] * (k * k)
    choice = rng.random(4 * k * k).tolist()  # pre-drawn: one rng call instead of one per step
    t = 0
    start = int(rng.integers(k * k))
    seen[start] = True
    i, j = divmod(start, k)
    openc[(2 * i + 1) * n + 2 * j + 1] = True
    stack = [start]
    while stack:
        i, j = divmod(stack[-1], k)
        nxt = [
            (a, b)
            for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1))
            if 0 <= a < k and 0 <= b < k and not seen[a * k + b]
        ]
        if not nxt:
            stack.pop()
            continue
        a, b = nxt[int(choice[t] * len(nxt))]
        t += 1
        seen[a * k + b] = True
        openc[(2 * a + 1) * n + 2 * b + 1] = True
        openc[(i + a + 1) * n + j + b + 1] = True  # the wall between (i,j) and (a,b)
        stack.append(a * k + b)
    grid = np.where(np.array(openc).reshape(n, n), OPEN, WALL).astype(np.int8)
    if loops > 0:
        # Inner walls that separate two corridor cells: an even and an odd coordinate.
        r, c = np.nonzero(grid == WALL)
        inner = (r > 0) & (c > 0) & (r < 2 * k) & (c < 2 * k) & ((r + c) % 2 == 1)
        r, c = r[inner], c[inner]
        pick = rng.random(len(r)) < loops
        grid[r[pick], c[pick]] = OPEN
    return grid


def generate(n: int, p: MazeParams, rng: np.random.Generator):
    """(question codes [n, n], answer codes [n, n], path length) or None if this maze is rejected."""
    grid = carve(n, p.loops, rng)
    cells = np.argwhere(grid == OPEN)
    s = tuple(cells[int(rng.integers(len(cells)))])
    d = bfs(grid, s)
    if d.max() < p.min_path_length:  # double sweep: the farthest cell is near a diameter end
        s = tuple(np.unravel_index(int(d.argmax()), d.shape))
        d = bfs(grid, s)
    far = np.argwhere(d >= max(p.min_path_length, 1))
    if len(far) == 0:
        return None
    g = tuple(far[int(rng.integers(len(far)))])
    path, count = shortest_path(grid, s, g)
    if p.unique_path and count != 1:
        return None
    q = grid.copy()
    q[s], q[g] = START, GOAL
    a = q.copy()
    for cell in path[1:-1]:
        a[cell] = PATH
    return q, a, len(path) - 1


def place(grids: np.ndarray, canvas: int) -> np.ndarray:
    """[k, n, n] codes -> [k, canvas, canvas], extra cells wall."""
    k, n, _ = grids.shape
    out = np.full((k, canvas, canvas), WALL, np.int8)
    out[:, :n, :n] = grids
    return out


def read_csv(path, n: int) -> csvfmt.Rows:
    """Published Maze-Hard CSV. Checks every row: one S, one G, no 'o' in the question; the answer
    equals the question except open cells marked 'o', and those form a shortest S->G path."""
    rows = csvfmt.read(path, n * n, "# SG", CHARS)
    q = rows.questions.reshape(-1, n, n)
    a = rows.answers.reshape(-1, n, n)
    for i in range(len(q)):
        line = int(rows.lines[i])
        ns, ng = int((q[i] == START).sum()), int((q[i] == GOAL).sum())
        if ns != 1 or ng != 1:
            raise DataError(path, line, f"question needs exactly one S and one G (has {ns} S, {ng} G)")
        changed = a[i] != q[i]
        if (changed & ~((q[i] == OPEN) & (a[i] == PATH))).any():
            r, c = np.argwhere(changed & ~((q[i] == OPEN) & (a[i] == PATH)))[0]
            raise DataError(
                path,
                line,
                f"answer differs from the question at row {r}, column {c} "
                f"other than by marking an open cell 'o'",
            )
        s = tuple(np.argwhere(q[i] == START)[0])
        g = tuple(np.argwhere(q[i] == GOAL)[0])
        shortest = bfs(q[i], s)[g]
        if shortest < 0:
            raise DataError(path, line, "G cannot be reached from S")
        marked = int((a[i] == PATH).sum())
        walk = np.where((a[i] == PATH) | (a[i] == START) | (a[i] == GOAL), OPEN, WALL)
        if marked != shortest - 1 or bfs(walk, s)[g] != shortest:
            raise DataError(
                path,
                line,
                f"the 'o' cells ({marked}) are not a shortest S->G path (shortest has {shortest} moves)",
            )
    return rows


def path_valid(inputs: np.ndarray, preds: np.ndarray, canvas: int) -> np.ndarray:
    """Per row: does the prediction mark a shortest S->G path (any one) and change nothing else?"""
    ok = np.zeros(len(inputs), bool)
    q = inputs.reshape(-1, canvas, canvas) - 1
    p = preds.reshape(-1, canvas, canvas) - 1
    for i in range(len(q)):
        if ((p[i] != q[i]) & ~((q[i] == OPEN) & (p[i] == PATH))).any():
            continue
        s, g = np.argwhere(q[i] == START), np.argwhere(q[i] == GOAL)
        if len(s) != 1 or len(g) != 1:
            continue
        s, g = tuple(s[0]), tuple(g[0])
        shortest = bfs(q[i], s)[g]
        walk = np.where((p[i] == PATH) | (p[i] == START) | (p[i] == GOAL), OPEN, WALL)
        ok[i] = shortest > 0 and int((p[i] == PATH).sum()) == shortest - 1 and bfs(walk, s)[g] == shortest
    return ok


class Maze(Family):
    Params = MazeParams
    VERSION = 1

    def check(self, name: str, p: MazeParams) -> None:
        published.check_source(p)
        if p.test_grid is not None and p.test_grid < p.grid:
            raise ConfigError("task.test_grid", f"at least grid ({p.grid}): test mazes may be larger")
        if p.source != "generate" and p.test_grid not in (None, p.grid):
            raise ConfigError("task.test_grid", "only for generated mazes")

    def canvas(self, p: MazeParams) -> int:
        return max(p.grid, p.test_grid or p.grid)

    def meta(self, name: str, p: MazeParams) -> DatasetMeta:
        c = self.canvas(p)
        return DatasetMeta(
            task=name,
            seq_len=c * c,
            vocab_size=len(CHARS) + 1,
            num_puzzle_identifiers=1,
            extra={"family": "maze", "grid": p.grid, "test_grid": p.test_grid or p.grid, "canvas": c},
        )

    def source_files(self, p: MazeParams):
        return published.local_files(p)

    def local_source(self, paths):
        return published.local_source(paths)

    def _generate(self, p: MazeParams, n: int, count: int, salt: int):
        qs, as_, lens, seen = [], [], [], set()
        i = 0
        while len(qs) < count:
            if i >= p.max_candidates * count:
                raise UserError(
                    f"maze {n}x{n}: only {len(qs)} of {count} mazes passed the filters "
                    f"after {i} candidates; lower task.min_path_length or task.loops"
                )
            rng = np.random.default_rng([p.data_seed, n, salt, i])
            i += 1
            made = generate(n, p, rng)
            if made is None or made[0].tobytes() in seen:
                continue
            seen.add(made[0].tobytes())
            qs.append(made[0])
            as_.append(made[1])
            lens.append(made[2])
        return np.stack(qs), np.stack(as_), np.array(lens, np.float64)

    def build(self, spec: TaskSpec) -> dict[str, PuzzleDataset]:
        p: MazeParams = spec.params
        canvas = self.canvas(p)
        if p.source == "generate":
            split = {
                "train": self._generate(p, p.grid, p.train_size, 0),
                "test": self._generate(p, p.test_grid or p.grid, p.test_size, 1),
            }
            # Different seeds per split; a maze drawn in both would be a coincidence, but drop it.
            train_keys = {x.tobytes() for x in split["train"][0]}
            if p.test_grid in (None, p.grid):
                keep = np.array([x.tobytes() not in train_keys for x in split["test"][0]])
                split["test"] = tuple(v[keep] for v in split["test"])
        else:
            rows = published.load_splits(p, spec.name, lambda path: read_csv(path, p.grid))
            split = {}
            for s, rw in rows.items():
                n = p.grid
                q = rw.questions.reshape(-1, n, n).astype(np.int8)
                lens = (rw.answers == PATH).sum(1).astype(np.float64) + 1
                split[s] = (q, rw.answers.reshape(-1, n, n).astype(np.int8), lens)
        out = {}
        for s, (q, a, lens) in split.items():
            groups = np.arange(len(q), dtype=np.int64)
            if s == "train" and p.augmentations:
                rng = split_seed(p, 4)
                reps = p.augmentations + 1
                # each maze: the identity plus `augmentations` distinct non-identity symmetries
                ts = np.stack(
                    [np.concatenate([[0], 1 + rng.permutation(7)[: p.augmentations]]) for _ in range(len(q))]
                )
                q = np.stack([dihedral(q[i], t) for i in range(len(q)) for t in ts[i]])
                a = np.stack([dihedral(a[i], t) for i in range(len(a)) for t in ts[i]])
                groups, lens = np.repeat(groups, reps), np.repeat(lens, reps)
            q, a = place(q, canvas), place(a, canvas)
            x = (q.reshape(len(q), -1) + 1).astype(np.int32)
            y = (a.reshape(len(a), -1) + 1).astype(np.int32)
            if s == "train" and p.augmentations:  # large: store as uint8 rows (4x smaller)
                x, y = MappedRows.pack(x), MappedRows.pack(y)
            out[s] = PuzzleDataset(
                inputs=x,
                labels=y,
                puzzle_identifiers=np.zeros(len(q), np.int32),
                group_ids=groups,
                meta=spec.meta,
                aux={"rating": lens.astype(np.float32)},
            )
        return out

    def score(self, spec, ds, preds, q_halt):
        c = ds.meta.extra["canvas"]
        return {"path_valid": float(path_valid(np.asarray(ds.inputs), preds, c).mean()) if len(ds) else 0.0}

    def render(self, ds: PuzzleDataset, i: int) -> str:
        c = ds.meta.extra["canvas"]
        chars = np.array(list("?" + CHARS))
        q = chars[ds.inputs[i].reshape(c, c)]
        a = chars[np.clip(ds.labels[i], 0, None).reshape(c, c)]
        lines = [f"{''.join(x)}   {''.join(y)}" for x, y in zip(q, a)]
        return f"{'maze':<{c}}   solution (o = shortest path)\n" + "\n".join(lines)

    def export_rows(self, ds: PuzzleDataset, source: str):
        """(source, question, answer, rating = path length) per row, canvas-sized grids."""
        chars = np.frombuffer(b"?" + CHARS.encode(), np.uint8)
        q, a = chars[np.asarray(ds.inputs)], chars[np.clip(np.asarray(ds.labels), 0, None)]
        ratings = ds.aux.get("rating", np.full(len(ds), np.nan))
        for i in range(len(ds)):
            yield f"{source}/{i}", q[i].tobytes().decode(), a[i].tobytes().decode(), float(ratings[i])
