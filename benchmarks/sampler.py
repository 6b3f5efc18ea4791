"""One sampler for every task: one augmented variant per group per epoch, sharded over ranks.

A *group* is the set of examples that are variants of one original (all augmentations of one sudoku;
one ARC demonstration pair under every dihedral x colour variant). Each epoch draws one member per
group and shuffles the groups, both from (seed, epoch) only, so any rank can recompute any epoch.

The epochs form one endless stream: epoch 0's G examples, then epoch 1's, ... Global batch b is
stream positions [b*B*W, (b+1)*B*W) (B = per-rank batch, W = world size) and rank r takes the r-th
slice of B. So within an epoch every drawn example goes to exactly one rank exactly once: nothing is
dropped, duplicated or padded. The batch that straddles an epoch boundary is completed from the next
epoch (so it may hold two variants of one group, one from each epoch). Skipping to batch `start`
(resume) is index arithmetic plus one O(G) permutation of the current epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from benchmarks.dataset import PuzzleDataset


class GroupSampler:
    def __init__(
        self,
        dataset: PuzzleDataset | np.ndarray,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ):
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"bad sampler shape: batch_size={batch_size} rank={rank} world_size={world_size}"
            )
        group_ids = np.asarray(dataset.group_ids if isinstance(dataset, PuzzleDataset) else dataset)
        if len(group_ids) == 0:
            raise ValueError("cannot sample from an empty dataset")
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        # Members of each group as CSR: `order` lists example indices grouped, `starts`/`counts`
        # locate each group's run. A stable sort keeps members in index order (determinism).
        self._order = np.argsort(group_ids, kind="stable")
        _, self._starts, self._counts = np.unique(
            group_ids[self._order], return_index=True, return_counts=True
        )
        self._epoch_cache: tuple[int, np.ndarray] | None = None

    @property
    def num_groups(self) -> int:
        return len(self._starts)

    @property
    def steps_per_epoch(self) -> float:
        """Optimizer steps (global batches) per epoch; fractional when G is not a multiple."""
        return self.num_groups / (self.batch_size * self.world_size)

    def epoch(self, e: int) -> np.ndarray:
        """The epoch's example indices, in order ([G] int64): one member per group, shuffled."""
        if self._epoch_cache is not None and self._epoch_cache[0] == e:
            return self._epoch_cache[1]
        rng = np.random.default_rng([self.seed, e, 0x5A3])
        pick = self._starts + (rng.random(self.num_groups) * self._counts).astype(np.int64)
        out = self._order[pick][rng.permutation(self.num_groups)].astype(np.int64)
        self._epoch_cache = (e, out)
        return out

    def batch(self, b: int) -> np.ndarray:
        """This rank's indices of global batch `b` ([batch_size] int64)."""
        G = self.num_groups
        pos = b * self.batch_size * self.world_size + self.rank * self.batch_size
        out = np.empty(self.batch_size, np.int64)
        filled = 0
        while filled < self.batch_size:
            e, off = divmod(pos + filled, G)
            take = min(self.batch_size - filled, G - off)
            out[filled : filled + take] = self.epoch(e)[off : off + take]
            filled += take
        return out

    def batches(self, start: int = 0) -> Iterator[np.ndarray]:
        """Endless iterator of this rank's batches, beginning at global batch `start`."""
        b = start
        while True:
            yield self.batch(b)
            b += 1
