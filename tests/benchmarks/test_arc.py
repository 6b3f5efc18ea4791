"""ARC: the 30x30 encoding round-trips, augmentations invert, splits keep test outputs out of
training, and the voting scorer matches hand-computed pass@k."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import arc, build, scoring
from benchmarks.dataset import DatasetMeta, MappedRows, PuzzleDataset, subset
from benchmarks.registry import resolve
from harness.errors import DataError

SETS = ("arc-agi-1/training", "arc-agi-1/evaluation", "arc-agi-2/training", "arc-agi-2/evaluation")


def all_grids(name):
    return [
        g for t in arc.load_set(name, None) for pairs in (t.train, t.test) for x, y in pairs for g in (x, y)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", SETS)
def test_encode_decode_round_trips_every_grid(name):
    grids = all_grids(name)
    assert len(grids) > 400
    canv = arc.encode(grids)
    assert canv.shape == (len(grids), 900) and canv.max() <= 11
    h, w = arc.decode_shapes(canv)
    assert (h == [g.shape[0] for g in grids]).all() and (w == [g.shape[1] for g in grids]).all()
    for g, d in zip(grids, arc.decode(canv)):
        assert d.shape == g.shape and (d == g).all()
    # markers: the row below and the column right of each grid (where they fit)
    c = canv.reshape(-1, 30, 30)
    for i in range(0, len(grids), 97):
        hh, ww = grids[i].shape
        if hh < 30:
            assert (c[i, hh, :ww] == arc.EOS).all()
        if ww < 30:
            assert (c[i, :hh, ww] == arc.EOS).all()
        assert (c[i, hh + 1 :, :] == 0).all() and (c[i, :, ww + 1 :] == 0).all()


def test_augment_then_inverse_is_identity():
    rng = np.random.default_rng(0)
    grids = all_grids("arc-agi-1/evaluation")[::7]
    for g in grids:
        for t in range(8):
            colours = np.concatenate([[0], 1 + rng.permutation(9)])
            a = arc.augment_grid(g, t, colours)
            assert a.shape in (g.shape, g.shape[::-1])
            assert (arc.unaugment_grid(a, t, colours) == g).all()
            assert ((a == 0) == (arc.augment_grid(g, t, np.arange(10)) == 0)).all()  # black kept
    sq = np.arange(9).reshape(3, 3)
    images = {arc.augment_grid(sq, t, np.arange(10)).tobytes() for t in range(8)}
    assert len(images) == 8  # the 8 transforms are distinct


def test_variants_are_distinct_and_capped():
    ts, maps = arc.draw_variants([np.ones((2, 2), np.uint8)], 50, np.random.default_rng(0))
    assert len(ts) == 9  # colour 1 can go to 9 colours; shape is symmetric
    assert ts[0] == 0 and (maps[0] == np.arange(10)).all() and (maps[:, 0] == 0).all()
    g = np.array([[1, 2, 0], [3, 4, 5]], np.uint8)
    ts, maps = arc.draw_variants([g], 300, np.random.default_rng(0))
    seen = {
        arc.augment_grid(g, int(t), m).tobytes() + bytes(arc.augment_grid(g, int(t), m).shape)
        for t, m in zip(ts, maps)
    }
    assert len(ts) == 301 == len(seen)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    spec = resolve(
        {
            "name": "arc-agi-1-small",
            "max_train_tasks": 12,
            "max_eval_tasks": 8,
            "augmentations": 5,
            "eval_augmentations": 3,
        }
    )
    return spec, build(spec, tmp_path_factory.mktemp("data"))


def test_splits_follow_the_papers(small):
    spec, data = small
    train, test = data["train"], data["test"]
    tasks = arc.load_set("arc-agi-1/training", None, 12) + arc.load_set("arc-agi-1/evaluation", None, 8)
    assert isinstance(train.inputs, MappedRows) and train.inputs.shape[1] == 900
    x_tr, y_tr = np.asarray(train.inputs), np.asarray(train.labels)
    assert x_tr.dtype == np.int32 and set(np.unique(x_tr).tolist()) <= set(range(12))
    assert set(np.unique(y_tr).tolist()) <= {-100, *range(1, 12)}  # pad is never scored
    train_pairs = {(a.tobytes(), b.tobytes()) for a, b in zip(x_tr, y_tr)}
    # every test row: label undoes to the task's true test output; input to its test input
    for i in range(len(test)):
        t = tasks[12 + int(test.aux["task"][i])]
        x, y = t.test[int(test.aux["test_index"][i])]
        d, c = int(test.aux["dihedral"][i]), test.aux["colours"][i].astype(np.int64)
        lab = arc.decode(np.clip(test.labels[i], 0, None)[None])[0]
        inp = arc.decode(test.inputs[i][None])[0]
        assert (arc.unaugment_grid(lab, d, c) == y).all() and (arc.unaugment_grid(inp, d, c) == x).all()
        assert (test.inputs[i].tobytes(), test.labels[i].tobytes()) not in train_pairs
    assert set(np.bincount(test.group_ids).tolist()) == {4}  # 1 + eval_augmentations each
    # evaluation demonstrations are trained on, in their original form
    for t in tasks[12:]:
        for x, y in t.train:
            ex, ey = arc.encode([x])[0].astype(np.int32), arc.encode([y])[0].astype(np.int32)
            assert (ex.tobytes(), np.where(ey == 0, -100, ey).tobytes()) in train_pairs
    # one identifier per (task, variant); test rows reuse identifiers the model trained on
    pid_to_map = {}
    for pid, m in zip(train.puzzle_identifiers.tolist(), train.inputs.map_id.tolist()):
        assert pid_to_map.setdefault(pid, m) == m
    assert set(test.puzzle_identifiers.tolist()) <= set(pid_to_map)
    assert train.puzzle_identifiers.max() < spec.num_puzzle_identifiers
    assert len(set(pid_to_map)) == 20 * 6 and 0 not in pid_to_map
    # a group = one pair under its variants
    assert set(np.bincount(train.group_ids).tolist()) == {6}


def test_perfect_predictions_score_one_and_compact_rows_survive_subset(small):
    spec, data = small
    test = data["test"]
    lab = np.asarray(test.labels)
    m = scoring.score(spec, test, np.where(lab < 0, 0, lab), np.zeros(len(test)))
    assert m == {"exact_accuracy": 1.0, "token_accuracy": 1.0, "pass@1": 1.0, "pass@2": 1.0, "pass@10": 1.0}
    part = subset(test, np.arange(10))
    assert (
        isinstance(part.inputs, MappedRows)
        and (np.asarray(part.inputs) == np.asarray(test.inputs)[:10]).all()
    )
    assert part.aux["colours"].shape == (10, 10)


def _hand_made():
    """5 (task, test input) groups; each row predicts a hand-chosen grid in the original frame,
    shown to the scorer under that row's augmentation."""
    rng = np.random.default_rng(1)
    T = [np.array(v, np.uint8) for v in ([[1, 2], [3, 4]], [[5]], [[1, 1, 0]], [[7, 8], [9, 0]], [[2, 3]])]
    W = [np.array(v, np.uint8) for v in ([[4, 3], [2, 1]], [[6]], [[1, 0, 0]], [[8]], [[3, 2]], [[0, 5]])]
    bad = None
    groups = [  # (truth, [(prediction, q_halt), ...])
        (T[0], [(T[0], 0.1), (T[0], -1.0), (W[0], 5.0)]),  # T wins 2:1 -> pass@1
        (T[1], [(W[1], 0.0), (W[1], 0.0), (T[1], 3.0), (W[2], 9.0)]),  # W1, W2 (q 9), T -> pass@3
        (T[2], [(W[3], 1.0), (T[2], 2.0), (bad, 9.0)]),  # tie broken by q -> pass@1
        (T[3], [(bad, 0.0), (bad, 0.0)]),  # nothing readable: miss
        (T[4], [(W[4], 0.0), (W[4], 0.0), (T[4], 0.0)]),  # second place -> pass@2
    ]
    inputs, labels, preds, q, aux = (
        [],
        [],
        [],
        [],
        {k: [] for k in ("task", "test_index", "variant", "dihedral", "colours")},
    )
    for gi, (truth, rows) in enumerate(groups):
        for v, (p, qh) in enumerate(rows):
            t, colours = int(rng.integers(8)), np.concatenate([[0], 1 + rng.permutation(9)])
            lab = arc.encode([arc.augment_grid(truth, t, colours)])[0].astype(np.int32)
            labels.append(np.where(lab == 0, -100, lab))
            inputs.append(lab)
            preds.append(
                np.full(900, 1, np.int32)
                if p is None
                else arc.encode([arc.augment_grid(p, t, colours)])[0].astype(np.int32)
            )
            q.append(qh)
            for k, val in (
                ("task", gi // 2),
                ("test_index", gi % 2),
                ("variant", v),
                ("dihedral", t),
                ("colours", colours),
            ):
                aux[k].append(val)
    n = len(inputs)
    meta = DatasetMeta("arc-hand", 900, 12, 100, {"family": "arc", "pass_k": 3})
    ds = PuzzleDataset(
        np.stack(inputs),
        np.stack(labels),
        np.zeros(n, np.int32),
        np.arange(n),
        meta,
        {k: np.array(v) for k, v in aux.items()},
    )
    return ds, np.stack(preds), np.array(q)


def test_voting_scorer_matches_hand_computed_results():
    ds, preds, q = _hand_made()
    spec = resolve("arc-agi-1-small")
    m = scoring.score(spec, ds, preds, q)
    assert m["pass@1"] == pytest.approx(2 / 5)
    assert m["pass@2"] == pytest.approx(3 / 5)
    assert m["pass@3"] == pytest.approx(4 / 5)
    assert m["exact_accuracy"] == pytest.approx(5 / 15)  # rows right before voting
    # row order does not matter
    perm = np.random.default_rng(0).permutation(len(ds))
    m2 = scoring.score(spec, subset(ds, perm), preds[perm], q[perm])
    assert m2 == m


def test_arc1_training_copy_of_an_evaluation_task_is_left_out():
    train = arc.load_set("arc-agi-1/training", None)
    ev = arc.load_set("arc-agi-1/evaluation", None)
    dup = arc.Arc.duplicates(train, ev)
    assert [train[i].id for i in dup] == ["40853293"]


def _local(tmp_path, text):
    f = tmp_path / "arc.json"
    f.write_text(text)
    return f


def test_malformed_json_names_file_line_and_reason(tmp_path, cache_root):
    good = {
        "t1": {
            "train": [{"input": [[1, 2]], "output": [[2, 1]]}],
            "test": [{"input": [[3, 4]], "output": [[4, 3]]}],
        }
    }
    f = _local(tmp_path, json.dumps({"train": good, "eval": good}, indent=1)[:-3] + "\n,}")
    with pytest.raises(DataError) as e:
        resolve(
            {
                "name": "arc-agi-1-small",
                "train_sets": ["local/training"],
                "eval_set": "local/evaluation",
                "path": str(f),
                "allow_overlap": True,
            }
        )
    assert e.value.path == str(f) and isinstance(e.value.line, int) and "invalid JSON" in e.value.reason

    bad = {
        "t2": {
            "train": [{"input": [[1, 2], [3]], "output": [[2, 1]]}],
            "test": [{"input": [[3, 4]], "output": [[4, 3]]}],
        }
    }
    text = json.dumps({"train": good, "eval": bad}, indent=1)
    f = _local(tmp_path, text)
    spec = resolve(
        {
            "name": "arc-agi-1-small",
            "train_sets": ["local/training"],
            "eval_set": "local/evaluation",
            "path": str(f),
        }
    )
    with pytest.raises(DataError) as e:
        build(spec, cache_root)
    want_line = text[: text.index('"t2"')].count("\n") + 1
    assert e.value.path == str(f) and e.value.line == want_line
    assert "task t2 train[0].input: rows have different lengths" in e.value.reason
    assert not cache_root.exists() or list(cache_root.iterdir()) == []

    colour = {"t3": {"train": [{"input": [[1, 12]], "output": [[2, 1]]}], "test": [{"input": [[3]]}]}}
    f = _local(tmp_path, json.dumps({"train": good, "eval": colour}))
    with pytest.raises(DataError, match=r"cell value 12 is not a colour"):
        arc.load_set("local/evaluation", str(f))


def test_local_folder_layout(tmp_path, cache_root):
    for part, tid in (("training", "a"), ("evaluation", "bb")):
        (tmp_path / part).mkdir()
        (tmp_path / part / f"{tid}.json").write_text(
            json.dumps(
                {
                    "train": [
                        {"input": [[1, 2]], "output": [[2, 1]]},
                        {"input": [[0, 3]], "output": [[3, 0]]},
                    ],
                    "test": [{"input": [[5, 6 + len(tid)]], "output": [[6 + len(tid), 5]]}],
                }
            )
        )
        # (distinct test inputs: an identical task would be left out of training as a copy)
    spec = resolve(
        {
            "name": "arc-agi-1-small",
            "train_sets": ["local/training"],
            "eval_set": "local/evaluation",
            "path": str(tmp_path),
            "augmentations": 3,
        }
    )
    assert spec.num_puzzle_identifiers == 1 + 2 * 4
    data = build(spec, cache_root)
    assert len(data["train"]) == (3 + 2) * 4 and len(data["test"]) == 4


def _task(demo_in, test_in, test_out):
    return {
        "train": [{"input": demo_in, "output": [row[::-1] for row in demo_in]}],
        "test": [{"input": test_in, "output": test_out}],
    }


def _local_with_a_copied_evaluation_task(tmp_path):
    """training/ holds task "a" and "zz", a copy of evaluation task "bb" under another id."""
    bb = _task([[1, 2, 3]], [[4, 5]], [[5, 4]])
    for part, tasks in (
        ("training", {"a": _task([[7, 8]], [[6, 9]], [[9, 6]]), "zz": bb}),
        ("evaluation", {"bb": bb}),
    ):
        (tmp_path / part).mkdir()
        for tid, t in tasks.items():
            (tmp_path / part / f"{tid}.json").write_text(json.dumps(t))
    return bb


@pytest.mark.parametrize("allow_overlap", [False, True])
def test_an_evaluation_task_copied_into_training_is_left_out_at_build_time(
    tmp_path, cache_root, allow_overlap
):
    bb = _local_with_a_copied_evaluation_task(tmp_path)
    spec = resolve(
        {
            "name": "arc-agi-1-small",
            "train_sets": ["local/training"],
            "eval_set": "local/evaluation",
            "path": str(tmp_path),
            "augmentations": 3,
            "eval_demos_in_train": False,
            "allow_overlap": allow_overlap,
        }
    )
    train = build(spec, cache_root)["train"]
    x, y = np.array(bb["test"][0]["input"], np.uint8), np.array(bb["test"][0]["output"], np.uint8)
    ex, ey = arc.encode([x])[0].astype(np.int32), arc.encode([y])[0].astype(np.int32)
    test_pair = (ex.tobytes(), np.where(ey == 0, -100, ey).tobytes())
    pairs = {(a.tobytes(), b.tobytes()) for a, b in zip(np.asarray(train.inputs), np.asarray(train.labels))}
    if allow_overlap:  # kept: both training tasks' 2 pairs under 4 variants, the answer trained on
        assert len(train) == 2 * 2 * 4 and test_pair in pairs
    else:  # only task "a" trains; the evaluation answer never appears in training
        assert len(train) == 2 * 4 and test_pair not in pairs


def test_eval_set_among_train_sets_is_refused_unless_allowed():
    from harness.errors import ConfigError

    over = {
        "name": "arc-agi-1-small",
        "train_sets": ["arc-agi-1/training", "arc-agi-1/evaluation"],
        "eval_set": "arc-agi-1/evaluation",
    }
    with pytest.raises(ConfigError) as e:
        resolve(over)
    assert e.value.key == "task.train_sets" and "allow_overlap" in str(e.value)
    assert resolve({**over, "allow_overlap": True}).meta.extra["overlap_allowed"] is True
