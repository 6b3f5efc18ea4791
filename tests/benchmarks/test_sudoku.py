"""Sudoku: unique solutions (checked by an independent solver), valid augmentations, the CSV format."""

from __future__ import annotations

import numpy as np
import pytest
from independent_solvers import count_sudoku_solutions, valid_sudoku

from benchmarks import build, sudoku_solver
from benchmarks.dataset import MappedRows
from benchmarks.registry import resolve
from benchmarks.sudoku import apply_transforms, random_transforms, read_csv
from harness.errors import DataError, UserError


@pytest.mark.parametrize("n,count,min_rating", [(4, 150, 0), (6, 60, 0), (9, 8, 0), (9, 4, 20)])
def test_generated_puzzles_have_exactly_one_solution(cache_root, n, count, min_rating):
    spec = resolve(
        {
            "name": f"sudoku-{n}x{n}" if n != 9 else "sudoku-9x9",
            "size": n,
            "train_size": count,
            "test_size": 2,
            "min_rating": min_rating,
        }
    )
    data = build(spec, cache_root)
    for ds in data.values():
        assert ds.inputs.shape[1] == n * n and ds.meta.vocab_size == n + 2
        assert ds.inputs.min() >= 1 and ds.inputs.max() <= n + 1
        for q, a, r in zip(ds.inputs - 1, ds.labels - 1, ds.aux["rating"]):
            q, a = q.tolist(), a.tolist()
            assert count_sudoku_solutions(q, n) == 1
            assert valid_sudoku(a, n)
            assert all(x in (0, y) for x, y in zip(q, a))  # givens agree
            assert r >= min_rating and sudoku_solver.rate(q, n) == r
    qs = [bytes(x) for ds in data.values() for x in ds.inputs.astype(np.uint8)]
    assert len(set(qs)) == len(qs)  # train/test distinct


@pytest.mark.parametrize("n,count", [(4, 40), (6, 12), (9, 2)])
def test_generated_minimal_puzzles_are_minimal(cache_root, n, count):
    """Without `clues`, every given is needed: removing any one leaves 2+ solutions (counted by
    the independent exact-cover solver)."""
    name = {4: "sudoku-4x4-min", 6: "sudoku-6x6", 9: "sudoku-9x9"}[n]
    data = build(resolve({"name": name, "train_size": count, "test_size": 1}), cache_root)
    for ds in data.values():
        for q in (ds.inputs - 1).tolist():
            assert count_sudoku_solutions(q, n) == 1
            givens = [i for i, x in enumerate(q) if x]
            for i in givens:
                assert count_sudoku_solutions(q[:i] + [0] + q[i + 1 :], n) >= 2, (q, i)


@pytest.mark.parametrize("n,clues", [(4, 8), (4, 6), (6, 20), (9, 40)])
def test_clue_count_is_exact(cache_root, n, clues):
    """With `clues: k` every puzzle has exactly k givens (and still one solution)."""
    name = {4: "sudoku-4x4", 6: "sudoku-6x6", 9: "sudoku-9x9"}[n]
    data = build(resolve({"name": name, "clues": clues, "train_size": 20, "test_size": 5}), cache_root)
    for ds in data.values():
        q = ds.inputs - 1
        assert ((q != 0).sum(1) == clues).all(), (q != 0).sum(1)
        assert all(count_sudoku_solutions(row, n) == 1 for row in q.tolist())


def test_9x9_encoding_is_the_papers():
    spec = resolve("sudoku-extreme")
    assert (spec.seq_len, spec.vocab_size, spec.num_puzzle_identifiers) == (81, 11, 1)


@pytest.mark.parametrize("n", [4, 6, 9])
def test_every_augmentation_of_a_valid_grid_is_valid(n):
    rng = np.random.default_rng(n)
    grids = np.array([sudoku_solver.random_solution(n, rng) for _ in range(20)])
    puzzles = grids.copy()
    puzzles[rng.random(grids.shape) < 0.5] = 0
    k = 400
    idx = rng.integers(0, len(grids), k)
    cellmap, digitmap = random_transforms(n, k, rng)
    out = apply_transforms(grids[idx], cellmap, digitmap)
    outq = apply_transforms(puzzles[idx], cellmap, digitmap)
    for a, q in zip(out.tolist(), outq.tolist()):
        assert valid_sudoku(a, n)
        assert all(x in (0, y) for x, y in zip(q, a))
    assert sudoku_solver.is_valid_solution(out, n).all()
    # transforms are bijections on cells and digits, and they actually vary
    assert (np.sort(cellmap, 1) == np.arange(n * n)).all()
    assert len({c.tobytes() for c in cellmap}) >= 100  # (4x4 has 128 cell maps in all)
    if n == 6:  # 2x3 boxes: a transpose would turn them into 3x2 boxes
        r, c = np.divmod(cellmap, n)
        assert (r.reshape(k, n, n)[:, 0, :] == r.reshape(k, n, n)[:, 0, :1]).all()


def test_augmented_training_split(cache_root):
    spec = resolve({"name": "sudoku-4x4", "train_size": 10, "test_size": 5, "augmentations": 7})
    data = build(spec, cache_root)
    tr = data["train"]
    assert len(tr) == 80 and len(data["test"]) == 5
    assert np.bincount(tr.group_ids).tolist() == [8] * 10
    assert isinstance(tr.inputs, MappedRows)  # augmented splits are stored packed
    for q, a in zip(np.asarray(tr.inputs) - 1, np.asarray(tr.labels) - 1):
        assert valid_sudoku(a.tolist(), 4) and count_sudoku_solutions(q.tolist(), 4) == 1


def test_rating_counts_backtracks():
    # solvable by naked singles alone -> 0; the empty grid needs guesses but the ascending-digit
    # DFS never hits a dead end on an empty 4x4 -> 0; a puzzle with no solution is rated and None
    easy = [1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 0]
    assert sudoku_solver.solve(easy, 4) == ([1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1], 0)
    assert sudoku_solver.solve([1, 1] + [0] * 14, 4)[0] is None
    # a puzzle that no propagation finishes needs guesses, and some of them fail: rated > 0
    # (A. Inkala's "hardest sudoku"; unique solution checked by the independent solver)
    inkala = [
        int(ch) for ch in "800000000003600000070090200050007000000045700000100030001000068008500010090000400"
    ]
    assert count_sudoku_solutions(inkala, 9) == 1
    solution, backtracks = sudoku_solver.solve(inkala, 9)
    assert valid_sudoku(solution, 9) and all(x in (0, y) for x, y in zip(inkala, solution))
    assert backtracks > 0 and sudoku_solver.rate(inkala, 9) == backtracks


def _csv(tmp_path, rows, name="s.csv"):
    f = tmp_path / name
    f.write_text("source,question,answer,rating\n" + "".join(r + "\n" for r in rows))
    return f


def test_export_then_load_round_trips(cache_root, tmp_path, capsys):
    from harness.cli import main

    runs = tmp_path / "runs"
    base = ["sudoku-9x9", "train_size=3", "test_size=4", "--runs-dir", str(runs)]
    out = tmp_path / "test.csv"
    assert main(["data", "export", *base, "--split", "test", "--out", str(out)]) == 0
    text = out.read_text().splitlines()
    assert text[0] == "source,question,answer,rating" and len(text) == 5
    rows = read_csv(out, 9)
    built = build(resolve({"name": "sudoku-9x9", "train_size": 3, "test_size": 4}), runs / "data")
    np.testing.assert_array_equal(rows.questions, built["test"].inputs - 1)
    np.testing.assert_array_equal(rows.answers, built["test"].labels - 1)
    np.testing.assert_array_equal(rows.ratings, built["test"].aux["rating"])
    assert "." in text[1].split(",")[1]  # blanks written as '.'


def test_published_files_load_with_subsampling(cache_root, tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(12):
        q, a = sudoku_solver.generate(9, rng)
        qs = "".join("." if d == 0 else str(d) for d in q)
        lines.append(f"src{i},{qs.replace('.', '0') if i % 2 else qs},{''.join(map(str, a))},{i}")
    tr, te = _csv(tmp_path, lines[:8], "train.csv"), _csv(tmp_path, lines[8:], "test.csv")
    spec = resolve(
        {
            "name": "sudoku-extreme",
            "source": "csv",
            "train_path": str(tr),
            "test_path": str(te),
            "train_size": 5,
            "augmentations": 2,
            "min_rating": 1,
        }
    )
    data = build(spec, cache_root)
    assert len(data["test"]) == 4 and len(data["train"]) == 15
    assert set(data["train"].aux["rating"].tolist()) <= set(range(1, 8))  # row 0 filtered out
    assert (np.asarray(data["train"].inputs) >= 1).all() and (data["test"].labels >= 2).all()


@pytest.mark.parametrize(
    "row,line,reason",
    [
        ("x,1..........3....,1234341221434321", 3, "expected 4 fields"),
        ("x,1..........3...x,1234341221434321,0", 3, "question contains 'x'"),
        ("x,1..........3....,123434122143432,0", 3, "answer has 15 characters"),
        ("x,1..........3....,1234341221434312,0", 3, "not a valid solved grid"),
        ("x,2..........3....,1234341221434321,0", 3, "disagrees with the question's given at cell 0"),
        ("x,1..........3....,1234341221434321,hard", 3, "rating 'hard' is not a number"),
    ],
)
def test_malformed_rows_name_file_line_and_reason(tmp_path, row, line, reason):
    f = _csv(tmp_path, ["ok,1..........3....,1234341221434321,0", row])
    with pytest.raises(DataError) as e:
        read_csv(f, 4)
    assert e.value.path == str(f) and e.value.line == line and reason in e.value.reason


def test_bad_header_and_empty_file(tmp_path):
    f = tmp_path / "h.csv"
    f.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"h.csv:1: header"):
        read_csv(f, 4)
    f.write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_csv(f, 4)


def test_hub_offline_says_so_in_one_line(cache_root):
    with pytest.raises(UserError) as e:
        build(resolve("sudoku-extreme"), cache_root)
    msg = str(e.value)
    assert "\n" not in msg and "--from" in msg and "sapientinc/sudoku-extreme" in msg
    assert not cache_root.exists() or list(cache_root.iterdir()) == []
