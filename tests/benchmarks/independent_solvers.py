"""Checkers written independently of benchmarks/ (different algorithms), used as ground truth."""

from __future__ import annotations

from collections import deque

BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}


def count_sudoku_solutions(grid: list[int], n: int, limit: int = 2) -> int:
    """Knuth's Algorithm X on the exact-cover form of sudoku (dict-of-sets), counting to `limit`."""
    br, bc = BOXES[n]
    X = {}
    rows = {}
    for r in range(n):
        for c in range(n):
            b = (r // br) * (n // bc) + c // bc
            for d in range(1, n + 1):
                rows[(r, c, d)] = [("cell", r, c), ("row", r, d), ("col", c, d), ("box", b, d)]
    for key, cols in rows.items():
        for col in cols:
            X.setdefault(col, set()).add(key)

    def select(key):
        removed = []
        for j in rows[key]:
            for i in X[j]:
                for k in rows[i]:
                    if k != j:
                        X[k].remove(i)
            removed.append(X.pop(j))
        return removed

    def deselect(key, removed):
        for j in reversed(rows[key]):
            X[j] = removed.pop()
            for i in X[j]:
                for k in rows[i]:
                    if k != j:
                        X[k].add(i)

    for idx, d in enumerate(grid):
        if d:
            r, c = divmod(idx, n)
            if any((r, c, d) not in X[col] for col in rows[(r, c, d)] if col in X) or any(
                col not in X for col in rows[(r, c, d)]
            ):
                return 0
            select((r, c, d))

    def search() -> int:
        if not X:
            return 1
        col = min(X, key=lambda k: len(X[k]))
        total = 0
        for key in list(X[col]):
            removed = select(key)
            total += search()
            deselect(key, removed)
            if total >= limit:
                break
        return total

    return search()


def valid_sudoku(grid: list[int], n: int) -> bool:
    br, bc = BOXES[n]
    want = set(range(1, n + 1))
    rows = [grid[r * n : (r + 1) * n] for r in range(n)]
    if any(set(r) != want for r in rows):
        return False
    if any({rows[r][c] for r in range(n)} != want for c in range(n)):
        return False
    for r0 in range(0, n, br):
        for c0 in range(0, n, bc):
            if {rows[r][c] for r in range(r0, r0 + br) for c in range(c0, c0 + bc)} != want:
                return False
    return True


def maze_distance(rows: list[str], s, g) -> int:
    """BFS over a list of strings; '#' is a wall. -1 if unreachable."""
    n, m = len(rows), len(rows[0])
    dist = {s: 0}
    q = deque([s])
    while q:
        r, c = q.popleft()
        if (r, c) == g:
            return dist[(r, c)]
        for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= rr < n and 0 <= cc < m and rows[rr][cc] != "#" and (rr, cc) not in dist:
                dist[(rr, cc)] = dist[(r, c)] + 1
                q.append((rr, cc))
    return -1


def _open_cells(rows: list[str]) -> set[tuple[int, int]]:
    return {(r, c) for r, line in enumerate(rows) for c, ch in enumerate(line) if ch != "#"}


def _neighbours(cell, cells):
    r, c = cell
    return [x for x in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)) if x in cells]


def count_shortest_paths(rows: list[str], s, g) -> int:
    """Number of distinct shortest S->G paths, exactly (no cap): one BFS from S that adds up, for
    each cell, the counts of the cells one move closer as the frontier reaches it."""
    cells = _open_cells(rows)
    dist, ways = {s: 0}, {s: 1}
    frontier = [s]
    while frontier and g not in dist:
        nxt = {}
        for v in frontier:
            for u in _neighbours(v, cells):
                if u not in dist:
                    nxt[u] = nxt.get(u, 0) + ways[v]
        for u, w in nxt.items():
            dist[u], ways[u] = dist[frontier[0]] + 1, w
        frontier = list(nxt)
    return ways.get(g, 0)


def cycle_rank(rows: list[str]) -> int:
    """Independent cycles of the open-cell graph (edges - vertices + components): 0 for a tree
    (a "perfect" maze), > 0 as soon as some route can loop back."""
    cells = _open_cells(rows)
    edges = sum(1 for v in cells for u in _neighbours(v, cells)) // 2
    seen, components = set(), 0
    for v in cells:
        if v in seen:
            continue
        components += 1
        stack = [v]
        seen.add(v)
        while stack:
            for u in _neighbours(stack.pop(), cells):
                if u not in seen:
                    seen.add(u)
                    stack.append(u)
    return edges - len(cells) + components
