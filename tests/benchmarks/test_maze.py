"""Mazes: every label is a shortest path (checked by an independent BFS); the CSV format."""

from __future__ import annotations

import numpy as np
import pytest
from independent_solvers import count_shortest_paths, cycle_rank, maze_distance

from benchmarks import build, scoring
from benchmarks.maze import CHARS, read_csv
from benchmarks.registry import resolve
from harness.errors import ConfigError, DataError

CH = np.array(list("?" + CHARS))


def as_text(row, side):
    return ["".join(r) for r in CH[np.clip(row, 0, None).reshape(side, side)]]


def check_label_is_a_shortest_path(q_rows, a_rows):
    find = lambda rows, ch: next((r, c) for r, line in enumerate(rows) for c, x in enumerate(line) if x == ch)
    s, g = find(q_rows, "S"), find(q_rows, "G")
    shortest = maze_distance(q_rows, s, g)
    assert shortest > 0
    for qr, ar in zip(q_rows, a_rows):
        for x, y in zip(qr, ar):
            assert x == y or (x == " " and y == "o")
    # walking only on S, G and 'o' gives the same distance, and no 'o' is spare
    walk = ["".join(ch if ch in "SGo" else "#" for ch in r) for r in a_rows]
    assert maze_distance(walk, s, g) == shortest
    assert sum(r.count("o") for r in a_rows) == shortest - 1
    return shortest


@pytest.mark.parametrize(
    "task,over",
    [
        ("maze-11x11", {"train_size": 60, "test_size": 20, "augmentations": 3}),
        ("maze-hard-gen", {"train_size": 6, "test_size": 4}),
        ("maze-11to21", {"train_size": 10, "test_size": 5}),
    ],
)
def test_every_label_is_a_shortest_path(cache_root, task, over):
    spec = resolve({"name": task, **over})
    data = build(spec, cache_root)
    side = spec.meta.extra["canvas"]
    p = spec.params
    for _split, ds in data.items():
        for i in range(len(ds)):
            n = check_label_is_a_shortest_path(as_text(ds.inputs[i], side), as_text(ds.labels[i], side))
            assert n >= p.min_path_length and ds.aux["rating"][i] == n
    if p.augmentations:
        assert np.bincount(data["train"].group_ids).tolist() == [p.augmentations + 1] * p.train_size
    if task == "maze-hard-gen":
        assert spec.seq_len == 900 and spec.vocab_size == 6


@pytest.mark.parametrize(
    "task,over",
    [
        ("maze-11x11", {"train_size": 40, "test_size": 20, "augmentations": 2}),
        ("maze-11to21", {"train_size": 20, "test_size": 10}),
        ("maze-hard-gen", {"train_size": 3, "test_size": 3}),
    ],
)
def test_every_maze_of_every_split_has_one_shortest_path_and_some_have_cycles(cache_root, task, over):
    """Counted by an independent BFS (exact counts, no cap): with `unique_path` each maze of each
    split has exactly one shortest route although `loops` opened cycles in many of them."""
    spec = resolve({"name": task, **over})
    data = build(spec, cache_root)
    side = spec.meta.extra["canvas"]
    for split, ds in data.items():
        ranks = []
        for row in ds.inputs:
            rows = as_text(row, side)
            s, g = (
                next((r, c) for r, line in enumerate(rows) for c, x in enumerate(line) if x == ch)
                for ch in "SG"
            )
            assert count_shortest_paths(rows, s, g) == 1, (split, rows)
            ranks.append(cycle_rank(rows))
        assert sum(k > 0 for k in ranks) >= max(1, len(ranks) // 5), (split, ranks)


def test_without_unique_path_some_mazes_have_several_shortest_paths(cache_root):
    spec = resolve(
        {"name": "maze-11x11", "train_size": 40, "test_size": 1, "unique_path": False, "loops": 0.3}
    )
    counts = [
        count_shortest_paths(
            rows,
            *[
                next((r, c) for r, line in enumerate(rows) for c, x in enumerate(line) if x == ch)
                for ch in "SG"
            ],
        )
        for rows in (as_text(row, 11) for row in build(spec, cache_root)["train"].inputs)
    ]
    assert min(counts) >= 1 and max(counts) >= 2, counts


def test_loops_zero_gives_perfect_mazes(cache_root):
    spec = resolve(
        {"name": "maze-11x11", "train_size": 20, "test_size": 1, "loops": 0.0, "min_path_length": 1}
    )
    assert all(cycle_rank(as_text(row, 11)) == 0 for row in build(spec, cache_root)["train"].inputs)


def test_path_valid_accepts_any_shortest_path():
    # an open 5x5 room: many shortest paths from S (top-left) to G (bottom-right)
    q = ["#######", "#S    #", "#     #", "#     #", "#     #", "#    G#", "#######"]
    a1 = ["#######", "#Soooo#", "#    o#", "#    o#", "#    o#", "#    G#", "#######"]
    a2 = ["#######", "#S    #", "#o    #", "#o    #", "#o    #", "#ooooG#", "#######"]
    bad = ["#######", "#Soooo#", "#    o#", "# o  o#", "#    o#", "#    G#", "#######"]  # stray o
    enc = lambda rows: np.array([[CHARS.index(ch) + 1 for ch in "".join(rows)]], np.int32)
    from benchmarks.dataset import DatasetMeta, PuzzleDataset

    meta = DatasetMeta("m", 49, 6, 1, {"family": "maze", "grid": 7, "canvas": 7})
    ds = PuzzleDataset(
        np.repeat(enc(q), 3, 0), np.repeat(enc(a1), 3, 0), np.zeros(3, np.int32), np.arange(3), meta
    )
    preds = np.concatenate([enc(a1), enc(a2), enc(bad)])
    spec = resolve({"name": "maze-11x11"})
    m = scoring.score(spec, ds, preds, np.zeros(3))
    assert m["exact_accuracy"] == pytest.approx(1 / 3) and m["path_valid"] == pytest.approx(2 / 3)


def test_csv_round_trip_and_loader(cache_root, tmp_path):
    from harness.cli import main

    runs = tmp_path / "runs"
    out = tmp_path / "maze.csv"
    args = ["maze-11x11", "train_size=4", "test_size=6", "--runs-dir", str(runs)]
    assert main(["data", "export", *args, "--split", "test", "--out", str(out)]) == 0
    rows = read_csv(out, 11)
    built = build(resolve({"name": "maze-11x11", "train_size": 4, "test_size": 6}), runs / "data")
    np.testing.assert_array_equal(rows.questions.astype(np.int32) + 1, built["test"].inputs)
    np.testing.assert_array_equal(rows.answers.astype(np.int32) + 1, built["test"].labels)
    spec = resolve({"name": "maze-hard", "source": "csv", "path": str(out), "grid": 11, "train_size": 4})
    data = build(spec, cache_root)
    assert (len(data["train"]), len(data["test"])) == (4, 2)


def test_malformed_maze_rows(tmp_path):
    q = "######S  ## # ##  G######"
    a = "######Soo## #o##  G######"
    cases = [
        (q, a.replace("Soo", "So "), "not a shortest S->G path"),
        (q.replace("G", " "), a.replace("G", " "), "exactly one S and one G"),
        (q, a.replace("# #o#", "#o#o#"), "not a shortest"),
        (q, a.replace("#####", "#o###", 1), "other than by marking an open cell"),
        (q + "#", a, "question has 26 characters"),
    ]
    for i, (qq, aa, reason) in enumerate(cases):
        f = tmp_path / f"m{i}.csv"
        f.write_text(f"source,question,answer,rating\nok,{q},{a},3\nbad,{qq},{aa},3\n")
        with pytest.raises(DataError) as e:
            read_csv(f, 5)
        assert e.value.path == str(f) and e.value.line == 3 and reason in e.value.reason, (i, e.value)


def test_test_grid_must_not_be_smaller():
    with pytest.raises(ConfigError) as e:
        resolve({"name": "maze-11x11", "test_grid": 9})
    assert e.value.key == "task.test_grid"
