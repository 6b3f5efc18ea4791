"""Benchmarks: the task registry, generators and loaders, the cache, the sampler and scoring.

spec = benchmarks.registry.resolve(cfg.task)     # validated; shape facts without building
data = benchmarks.build(spec, runs_dir / "data")  # {"train": PuzzleDataset, "test": ...}
benchmarks.sampler.GroupSampler(data["train"], batch_size, rank, world_size, seed)
benchmarks.scoring.score(spec, data["test"], preds, q_halt)
"""

from __future__ import annotations

from pathlib import Path


def build(spec, cache_root: Path):
    """All splits of a resolved task, cached under `cache_root` (see benchmarks.cache)."""
    from benchmarks.cache import build as _build

    return _build(spec, Path(cache_root))
