"""The model zoo: HRM, TRM (attention / MLP), the direct-prediction transformer, the looped
transformer. `build_model(cfg, meta)` picks one by `cfg.arch` and wraps it in the shared deep
supervision / ACT wrapper (models/act.py), which implements the engine contract:

    initial_carry(batch) -> flat dict of tensors (every row halted)
    forward(carry, batch, generator=None) -> (carry, loss, metrics, outputs)   one segment
    predict(batch) -> (preds [B, L], q_halt_logits [B])                        all segments, no_grad
    num_parameters(), effective_depth(), flops_per_example("train" | "eval")
    puzzle_emb_step(lr, weight_decay)                                         after optimizer.step
"""
from __future__ import annotations

from benchmarks.dataset import DatasetMeta
from models.act import ACTModel, Core
from models.hrm import HRM
from models.looped import Looped
from models.transformer import Transformer, resolve_size
from models.trm import TRM

ARCHS = {"transformer": Transformer, "trm": TRM, "hrm": HRM, "looped": Looped}


def resolve_config(cfg, meta: DatasetMeta):
    """The config the model is actually built with (transformer parameter matching applied)."""
    if cfg.arch == "transformer":
        return resolve_size(cfg, meta)
    return cfg


def build_model(cfg, meta: DatasetMeta) -> ACTModel:
    """Build the model named by `cfg.arch` for a dataset with `meta` (seq_len, vocab, identifiers).

    Build under `with torch.device("meta"):` to count parameters / FLOPs without allocating.
    """
    cfg = resolve_config(cfg, meta)
    core = ARCHS[cfg.arch](cfg, meta)
    return ACTModel(cfg, core, q_continue=(cfg.arch == "hrm" and cfg.act_continue))


__all__ = ["ARCHS", "ACTModel", "Core", "build_model", "resolve_config"]
