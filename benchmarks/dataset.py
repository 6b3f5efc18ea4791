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
    task: str                      # registry name, e.g. "sudoku-4x4"
    seq_len: int                   # tokens per example, without puzzle-embedding prefix positions
    vocab_size: int                # token ids are 0..vocab_size-1, 0 = pad
    num_puzzle_identifiers: int    # identifiers are 0..n-1; 0 = "no identifier" (blank)
    extra: dict = field(default_factory=dict)  # family-specific facts (grid size, ...), JSON-safe


@dataclass
class PuzzleDataset:
    inputs: np.ndarray              # [N, seq_len] int32
    labels: np.ndarray              # [N, seq_len] int32, IGNORE_LABEL_ID where not scored
    puzzle_identifiers: np.ndarray  # [N] int32
    group_ids: np.ndarray           # [N] int64
    meta: DatasetMeta

    def __post_init__(self) -> None:
        n, L = self.inputs.shape
        assert self.labels.shape == (n, L), (self.labels.shape, self.inputs.shape)
        assert self.puzzle_identifiers.shape == (n,) and self.group_ids.shape == (n,)
        assert L == self.meta.seq_len, (L, self.meta.seq_len)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def save(self, path: Path) -> None:
        """Write to `path` (.npz). Callers write to a temporary name and rename (see cache)."""
        np.savez(path, inputs=self.inputs, labels=self.labels,
                 puzzle_identifiers=self.puzzle_identifiers, group_ids=self.group_ids,
                 meta=np.array(__import__("json").dumps(asdict(self.meta))))

    @classmethod
    def load(cls, path: Path) -> "PuzzleDataset":
        import json
        with np.load(path, allow_pickle=False) as z:
            meta = DatasetMeta(**json.loads(str(z["meta"])))
            return cls(z["inputs"], z["labels"], z["puzzle_identifiers"], z["group_ids"], meta)


def subset(ds: PuzzleDataset, index: np.ndarray) -> PuzzleDataset:
    """The examples at `index` (in that order), same meta. Used to cap or shard evaluation."""
    return PuzzleDataset(ds.inputs[index], ds.labels[index], ds.puzzle_identifiers[index],
                         ds.group_ids[index], ds.meta)
