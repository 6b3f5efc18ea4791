"""The model zoo: HRM, TRM (attention / MLP), the direct-prediction transformer, the looped
transformer, listed in models/registry.py. `build_model(cfg, meta)` picks one by `cfg.arch` and
wraps it in the shared deep supervision / ACT wrapper (models/act.py), which implements the engine
contract:

    initial_carry(batch) -> flat dict of tensors (every row halted)
    forward(carry, batch, generator=None) -> (carry, loss, metrics, outputs)   one segment
    predict(batch) -> (preds [B, L], q_halt_logits [B])                        all segments, no_grad
        (test time: predict(batch, steps=S, noise=LatentNoise(...), residuals=[]); harness/testtime.py)
    num_parameters(), puzzle_embedding_shape(), effective_depth(), flops_per_example("train" | "eval")
    puzzle_emb_step(lr, weight_decay)                                         after optimizer.step
"""

from __future__ import annotations

from benchmarks.dataset import DatasetMeta
from models.act import ACTModel, Core, CoreConfig
from models.registry import ARCH_NAMES, ARCHS, RECURSIVE_ARCHS, ModelConfig


def resolve_config(cfg, meta: DatasetMeta):
    """The config the model is actually built with (e.g. transformer parameter matching applied)."""
    resolve = ARCHS[cfg.arch].resolve
    return resolve(cfg, meta) if resolve is not None else cfg


def build_model(cfg, meta: DatasetMeta) -> ACTModel:
    """Build the model named by `cfg.arch` for a dataset with `meta` (seq_len, vocab, identifiers).

    Build under `with torch.device("meta"):` to count parameters / FLOPs without allocating.
    """
    cfg = resolve_config(cfg, meta)
    core = ARCHS[cfg.arch].core(cfg, meta)
    # HRM's Q-learning continue head (the only config with `act_continue`)
    return ACTModel(cfg, core, q_continue=getattr(cfg, "act_continue", False))


__all__ = [
    "ARCHS",
    "ARCH_NAMES",
    "RECURSIVE_ARCHS",
    "ACTModel",
    "Core",
    "CoreConfig",
    "ModelConfig",
    "build_model",
    "resolve_config",
]
