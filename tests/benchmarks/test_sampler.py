"""GroupSampler: one variant per group per epoch, disjoint complete shards, cheap resume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks.sampler import GroupSampler


def groups_of(sizes):
    return np.repeat(np.arange(len(sizes)), sizes)


@pytest.mark.parametrize("world,batch", [(1, 4), (2, 3), (3, 5), (4, 64)])
def test_each_epoch_covers_every_group_once_across_ranks(world, batch):
    rng = np.random.default_rng(0)
    g = groups_of(rng.integers(1, 6, 37))
    rng.shuffle(g)  # members need not be contiguous
    G = 37
    samplers = [GroupSampler(g, batch, rank=r, world_size=world, seed=3) for r in range(world)]
    steps = 4 * G // (batch * world) + 3
    per_rank = [list(itertools.islice(s.batches(), steps)) for s in samplers]
    # The stream in global order: batch b = rank 0's slice, then rank 1's, ...
    stream = np.concatenate([np.concatenate([per_rank[r][b] for r in range(world)]) for b in range(steps)])
    for e in range(3):
        epoch = stream[e * G : (e + 1) * G]
        assert sorted(g[epoch].tolist()) == list(range(G))  # each group exactly once
    # ranks never share an example within a global batch, except one straddling an epoch
    # boundary, whose two epochs may each hold the same example
    for b in range(steps):
        lo, hi = b * batch * world, (b + 1) * batch * world
        parts = [per_rank[r][b].tolist() for r in range(world)]
        flat = sum(parts, [])
        if lo // G == (hi - 1) // G:
            assert len(set(flat)) == len(flat)


def test_variants_change_between_epochs_and_follow_the_seed():
    g = groups_of([50] * 20)
    s = GroupSampler(g, 20, seed=0)
    e0, e1 = s.epoch(0), s.epoch(1)
    assert not np.array_equal(np.sort(e0), np.sort(e1))  # other variants drawn
    np.testing.assert_array_equal(GroupSampler(g, 20, seed=0).epoch(1), e1)
    assert not np.array_equal(GroupSampler(g, 20, seed=1).epoch(0), e0)
    # one variant of each group per epoch, uniform over the group's variants: 200 epochs give
    # each of the 50 variants of a group Poisson-like counts around 4 (chi-square test, p > 0.001)
    from scipy.stats import chisquare

    picks = np.concatenate([s.epoch(e) for e in range(200)])
    counts = np.bincount(picks, minlength=1000).reshape(20, 50)
    assert (counts.sum(1) == 200).all()
    assert chisquare(counts.ravel()).pvalue > 1e-3


def test_start_skips_without_changing_the_sequence():
    g = groups_of([3] * 101)
    full = list(itertools.islice(GroupSampler(g, 8, rank=1, world_size=2, seed=5).batches(), 60))
    resumed = list(itertools.islice(GroupSampler(g, 8, rank=1, world_size=2, seed=5).batches(37), 23))
    for a, b in zip(full[37:], resumed):
        np.testing.assert_array_equal(a, b)
    assert resumed[0].dtype == np.int64 and resumed[0].shape == (8,)


def test_far_resume_is_cheap():
    import time

    g = groups_of([1000] * 1000)  # 1M examples
    s = GroupSampler(g, 768, seed=0)
    t = time.perf_counter()
    next(s.batches(start=10**9))
    assert time.perf_counter() - t < 1.0


def test_batch_larger_than_the_dataset():
    g = groups_of([2, 1, 3])
    b = next(GroupSampler(g, 10).batches())
    assert len(b) == 10 and set(g[b[:3]].tolist()) == {0, 1, 2}
