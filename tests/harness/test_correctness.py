"""Per-example correctness of every evaluation, and the validation split held out of training."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.dataset import DatasetMeta, PuzzleDataset, holdout
from harness import correctness


def test_engine_records_per_example_bits_and_a_val_split(runs_dir):
    from harness.engine import train
    from tests.harness.test_engine import make_cfg

    cfg = make_cfg(runs_dir, train__steps=6, train__eval_every=3, train__val_examples=20)
    result = train(cfg, runs_dir / "c", progress=False)
    got = correctness.read(correctness.path_in(runs_dir / "c"))
    assert list(got["steps"]) == [3, 6]
    bits, ids = got["splits"]["test"]
    assert bits.shape == (2, 32) and ids.shape == (32,)
    for row, h in zip(bits, result.history):  # the bits ARE the logged metric
        assert row.mean() == pytest.approx(h["exact_accuracy"])
        assert "val_exact_accuracy" in h and h["inference_flops_per_example"] > 0
    vbits, vids = got["splits"]["val"]
    assert vbits.shape[0] == 2 and vbits.shape[1] >= 20
    assert vbits[-1].mean() == pytest.approx(result.metrics["val_exact_accuracy"])


def test_holdout_takes_whole_groups_the_same_for_every_call():
    meta = DatasetMeta("t", seq_len=2, vocab_size=3, num_puzzle_identifiers=1)
    g = np.repeat(np.arange(10), 3)
    ds = PuzzleDataset(
        np.zeros((30, 2), np.int32), np.zeros((30, 2), np.int32), np.zeros(30, np.int32), g, meta
    )
    rest, val = holdout(ds, 7)
    assert len(val) == 9 and len(rest) == 21  # 3 whole groups of 3
    assert not set(val.group_ids) & set(rest.group_ids)
    assert list(holdout(ds, 7)[1].group_ids) == list(val.group_ids)
    with pytest.raises(ValueError, match="no training data"):
        holdout(ds, 30)


def test_resumed_evaluations_replace_later_ones(tmp_path):
    ids = np.arange(5)
    for step, bit in ((2, 0), (4, 1), (2, 1)):  # resume from step 2 rewrote step 2
        correctness.record(tmp_path, step, {"test": (np.full(5, bool(bit)), ids)})
    got = correctness.read(correctness.path_in(tmp_path))
    assert list(got["steps"]) == [2] and got["splits"]["test"][0].all()
