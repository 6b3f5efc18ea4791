"""PuzzleDataset storage: plain and compact (MappedRows) rows index, save and subset alike."""

from __future__ import annotations

import numpy as np

from benchmarks.dataset import DatasetMeta, MappedRows, PuzzleDataset, subset


def test_mapped_rows_behave_like_the_array_they_stand_for(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 5, (7, 6)).astype(np.uint8)
    maps = np.stack([rng.permutation(5) for _ in range(3)]).astype(np.int16)
    base_id, map_id = rng.integers(0, 7, 40), rng.integers(0, 3, 40)
    rows = MappedRows(base, base_id, maps, map_id)
    dense = np.stack([maps[m][base[b]] for b, m in zip(base_id, map_id)]).astype(np.int32)
    assert rows.shape == dense.shape and len(rows) == 40
    for idx in (3, slice(5, 9), np.array([0, 39, 3, 3]), (np.array([1, 2]), slice(0, 2)), (4, 5)):
        got = rows[idx]
        np.testing.assert_array_equal(got, dense[idx])
    assert rows[np.array([1, 2])].dtype == np.int32
    np.testing.assert_array_equal(np.asarray(rows), dense)

    meta = DatasetMeta("t", 6, 5, 1)
    ds = PuzzleDataset(
        rows, MappedRows.pack(dense), np.zeros(40, np.int32), np.arange(40), meta, {"r": np.arange(40.0)}
    )
    ds.save(tmp_path / "x.npz")
    back = PuzzleDataset.load(tmp_path / "x.npz")
    assert isinstance(back.inputs, MappedRows) and back.meta == meta
    np.testing.assert_array_equal(np.asarray(back.inputs), dense)
    np.testing.assert_array_equal(np.asarray(back.labels), dense)
    part = subset(back, np.array([5, 1]))
    np.testing.assert_array_equal(part.inputs[:], dense[[5, 1]])
    np.testing.assert_array_equal(part.aux["r"], [5.0, 1.0])
