"""The in-memory form of a built task split: what `benchmarks` hands to the engine.

Every task family, however it is generated or loaded, ends as one `PuzzleDataset` per split:
fixed-length integer sequences, labels aligned with them, a puzzle identifier per example (for
puzzle embeddings) and a group id per example (all augmented variants of one original puzzle share
a group; the sampler draws one variant per group per epoch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

PAD_ID = 0
IGNORE_LABEL_ID = -100  # labels equal to this are not scored and carry no loss


@dataclass(frozen=True)
class DatasetMeta:
    task: str  # registry name, e.g. "sudoku-4x4"
    seq_len: int  # tokens per example, without puzzle-embedding prefix positions
    vocab_size: int  # token ids are 0..vocab_size-1, 0 = pad
    num_puzzle_identifiers: int  # identifiers are 0..n-1; 0 = "no identifier" (blank)
    extra: dict = field(default_factory=dict)  # family-specific facts (grid size, ...), JSON-safe


class MappedRows:
    """A compact [N, L] token array: row i = maps[map_id[i]][base[base_id[i]]].

    Augmented datasets repeat a few base rows under many token maps (ARC: every demonstration under
    hundreds of dihedral x colour variants). Storing the base rows once plus one small map per variant
    keeps ARC-AGI-1 x 1000 augmentations at tens of MB instead of tens of GB. Indexing with an int,
    slice or index array returns a plain int32 ndarray, so code that reads `ds.inputs[idx]` works
    unchanged; `np.asarray(rows)` materialises everything.
    """

    ndim = 2

    def __init__(self, base: np.ndarray, base_id: np.ndarray, maps: np.ndarray, map_id: np.ndarray):
        assert base.ndim == 2 and maps.ndim == 2 and base_id.shape == map_id.shape
        self.base, self.base_id, self.maps, self.map_id = base, base_id, maps, map_id

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.base_id), self.base.shape[1])

    @property
    def dtype(self):
        return np.dtype(np.int32)

    def __len__(self) -> int:
        return len(self.base_id)

    def __getitem__(self, idx):
        if isinstance(idx, tuple):  # rows first, then the column part on the result
            first, rest = self[idx[0]], idx[1:]
            return first[rest] if first.ndim == 1 else first[(slice(None),) + rest]
        rows = self.base[self.base_id[idx]]
        maps = self.maps[self.map_id[idx]].astype(np.int32, copy=False)
        if rows.ndim == 1:
            return maps[rows]
        return np.take_along_axis(maps, rows.astype(np.intp), axis=1)

    def __array__(self, dtype=None, copy=None):
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)

    @classmethod
    def pack(cls, tokens: np.ndarray) -> MappedRows:
        """An [N, L] array of tokens in 0..255 stored as uint8 under one identity map: a quarter of
        the int32 size (used for large augmented splits, e.g. Sudoku x 1000 augmentations)."""
        assert tokens.min() >= 0 and tokens.max() < 256
        n = len(tokens)
        return cls(
            tokens.astype(np.uint8),
            np.arange(n, dtype=np.int32),
            np.arange(int(tokens.max()) + 1, dtype=np.int32)[None],
            np.zeros(n, np.int32),
        )

    def take(self, index: np.ndarray) -> MappedRows:
        """The rows at `index`, still compact."""
        return MappedRows(self.base, self.base_id[index], self.maps, self.map_id[index])

    def parts(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{k}": getattr(self, k) for k in ("base", "base_id", "maps", "map_id")}

    @classmethod
    def from_parts(cls, z, prefix: str) -> MappedRows:
        return cls(*(z[f"{prefix}.{k}"] for k in ("base", "base_id", "maps", "map_id")))


def _rows_parts(name: str, rows) -> dict[str, np.ndarray]:
    return rows.parts(name) if isinstance(rows, MappedRows) else {name: rows}


def _rows_load(z, name: str):
    return z[name] if name in z.files else MappedRows.from_parts(z, name)


@dataclass
class PuzzleDataset:
    inputs: np.ndarray  # [N, seq_len] int32 (or MappedRows: indexes like one)
    labels: np.ndarray  # [N, seq_len] int32, IGNORE_LABEL_ID where not scored (idem)
    puzzle_identifiers: np.ndarray  # [N] int32
    group_ids: np.ndarray  # [N] int64
    meta: DatasetMeta
    # Per-example side arrays ([N, ...], any numeric dtype) that scoring or export needs but the
    # model never sees: e.g. ARC's (task, test input, augmentation) per row, a sudoku's rating.
    aux: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, L = self.inputs.shape
        assert self.labels.shape == (n, L), (self.labels.shape, self.inputs.shape)
        assert self.puzzle_identifiers.shape == (n,) and self.group_ids.shape == (n,)
        assert L == self.meta.seq_len, (L, self.meta.seq_len)
        for k, v in self.aux.items():
            assert v.shape[:1] == (n,), (k, v.shape, n)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def save(self, path: Path) -> None:
        """Write to `path` (.npz). Callers write to a temporary name and rename (see cache)."""
        np.savez(
            path,
            **_rows_parts("inputs", self.inputs),
            **_rows_parts("labels", self.labels),
            puzzle_identifiers=self.puzzle_identifiers,
            group_ids=self.group_ids,
            meta=np.array(__import__("json").dumps(asdict(self.meta))),
            **{f"aux.{k}": v for k, v in self.aux.items()},
        )

    @classmethod
    def load(cls, path: Path) -> PuzzleDataset:
        import json

        with np.load(path, allow_pickle=False) as z:
            meta = DatasetMeta(**json.loads(str(z["meta"])))
            aux = {k[4:]: z[k] for k in z.files if k.startswith("aux.")}
            return cls(
                _rows_load(z, "inputs"),
                _rows_load(z, "labels"),
                z["puzzle_identifiers"],
                z["group_ids"],
                meta,
                aux,
            )


def subset(ds: PuzzleDataset, index: np.ndarray) -> PuzzleDataset:
    """The examples at `index` (in that order), same meta. Used to cap or shard evaluation."""

    def rows(x):
        return x.take(index) if isinstance(x, MappedRows) else x[index]

    return PuzzleDataset(
        rows(ds.inputs),
        rows(ds.labels),
        ds.puzzle_identifiers[index],
        ds.group_ids[index],
        ds.meta,
        {k: v[index] for k, v in ds.aux.items()},
    )


def holdout(ds: PuzzleDataset, n: int, seed: int = 0) -> tuple[PuzzleDataset, PuzzleDataset]:
    """Split off whole groups (all variants of an original puzzle) totalling at least `n` examples:
    -> (rest, held_out). The choice depends on `seed` and the group ids only, so every seed of a
    configuration holds out the same puzzles. Raises ValueError if nothing would be left to train on."""
    groups = np.unique(ds.group_ids)
    order = np.random.default_rng(seed).permutation(groups)
    sizes = np.bincount(np.searchsorted(groups, ds.group_ids), minlength=len(groups))[
        np.searchsorted(groups, order)
    ]
    k = int(np.searchsorted(np.cumsum(sizes), n) + 1)
    if k >= len(groups):
        raise ValueError(
            f"holding out {n} examples would leave no training data "
            f"({len(ds)} examples in {len(groups)} groups)"
        )
    held = np.isin(ds.group_ids, order[:k])
    return subset(ds, np.flatnonzero(~held)), subset(ds, np.flatnonzero(held))
