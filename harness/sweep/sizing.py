"""Parameter counts without training, for `model.match_params: {family: F}` and for the achieved
ratio a matched trial records. The model is built on torch's meta device (nothing allocated) for
the task's shape from the registry (no data built)."""

from __future__ import annotations

from functools import lru_cache

from harness.config import ExperimentConfig


def count_parameters(cfg: ExperimentConfig) -> int:
    """The parameter count of the model `cfg` builds (puzzle embeddings excluded, as reported)."""
    return _count(cfg.model.model_dump_json(), cfg.task.model_dump_json())


@lru_cache(maxsize=256)
def _count(model_json: str, task_json: str) -> int:
    import torch

    from benchmarks.registry import resolve
    from harness.config import ExperimentConfig
    from models import build_model

    cfg = ExperimentConfig.model_validate({"model": _loads(model_json), "task": _loads(task_json)})
    meta = resolve(cfg.task).meta
    with torch.device("meta"):
        return int(build_model(cfg.model, meta).num_parameters())


def _loads(text: str):
    import json

    return json.loads(text)


def match_ratio(cfg: ExperimentConfig) -> float | None:
    """Achieved parameters / match_params of a transformer sized by match_params (None
    otherwise): about match_multiple when the sizing rule hit its target."""
    target = getattr(cfg.model, "match_params", None)
    if target is None:
        return None
    return count_parameters(cfg) / target
