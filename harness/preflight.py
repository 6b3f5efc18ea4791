"""Find every user mistake that can be found before training, before anything is written.

`rbench run` calls `preflight` before it creates a run folder or an MLflow run, so a config that
could never train leaves nothing behind: one line naming the file and the key, exit 2. What it
checks, in the order training would trip over it:

    engine.device / precision      the device exists (harness.device.resolve_runtime)
    task.*                         the task and its parameters (benchmarks.registry.resolve)
    the task's data files          built (or found in the cache under <runs_dir>/data): a
                                   malformed CSV is reported with its path and line
    model.*                        the model builds for the task's shape, on torch's "meta" device
                                   (no memory): sizing such as model.match_params out of range
    train.batch_size, ema_decay    fit the number of workers and the ZeRO stage

The data it builds is the data training uses (the cache is keyed by the task's parameters), so
nothing is done twice. The engine keeps its own checks as a backstop for callers that skip this.
"""

from __future__ import annotations

from pathlib import Path

from harness.config import ExperimentConfig
from harness.errors import ConfigError


def preflight(cfg: ExperimentConfig, source: str, *, workers: int = 1) -> None:
    """Raise a UserError (ConfigError naming `source` and the key, or DataError naming the data
    file) for anything that would stop training of `cfg` on `workers` workers."""
    try:
        _check(cfg, workers)
    except ConfigError as e:
        raise e.with_source(source) from None


def _check(cfg: ExperimentConfig, workers: int) -> None:
    import torch

    from benchmarks import build
    from benchmarks.registry import resolve
    from harness.device import resolve_runtime
    from models import build_model

    resolve_runtime(cfg.engine)
    spec = resolve(cfg.task)
    data = build(spec, Path(cfg.runs_dir) / "data")
    with torch.device("meta"):
        build_model(cfg.model, data["train"].meta)
    check_layout(cfg, workers)


def check_layout(cfg: ExperimentConfig, workers: int) -> None:
    """The batch and the EMA fit `workers` data-parallel workers and the ZeRO stage (also checked
    by the engine itself, for callers that skip preflight)."""
    if cfg.train.batch_size % workers:
        raise ConfigError(
            "train.batch_size",
            f"must be divisible by the number of workers ({workers}), got {cfg.train.batch_size}",
        )
    if cfg.train.ema_decay and cfg.engine.zero_stage == 3:
        raise ConfigError(
            "train.ema_decay", "EMA needs whole parameters on each worker: use engine.zero_stage <= 2"
        )
