"""Direct-prediction transformer baseline: the same blocks as HRM/TRM, no inner recursion.

One supervision segment applies the stack once, with the same additive input injection and carried
state as the recursive models, so deep supervision means the same thing for every architecture:

    z = f(z + x)                      z [B, S, d], x = embedded input [B, S, d]
    logits = lm_head(z[:, P:])        [B, L, V];   q = q_head(z[:, 0])  [B, 2]

With halt_max_steps = 1 this is plain direct prediction (z starts from the fixed initial state).
Full backprop through all `layers` blocks.

Sizing: `match_params` (x `match_multiple`) picks `layers` or `hidden` at build time; the rule is in
`resolve_size` and `rbench model summary` shows the result.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from benchmarks.dataset import DatasetMeta
from benchmarks.errors import ConfigError
from models.act import CoreConfig
from models.layers import swiglu_inner
from models.looped import Looped


class TransformerConfig(CoreConfig):
    """Direct-prediction baseline: the same blocks, no inner recursion.

    With `match_params` set, the depth (size_by: layers) or the width (size_by: hidden, a multiple
    of `heads`, of 2 * heads with rope) is chosen at build time so the parameter count is the one
    closest to match_params * match_multiple (ties: the smaller model); `layers`/`hidden` then are
    ignored. `rbench model summary` shows the resolved size.
    """

    arch: Literal["transformer"] = "transformer"
    layers: PositiveInt = 8
    match_params: PositiveInt | None = None
    match_multiple: float = Field(1.0, gt=0)
    size_by: Literal["layers", "hidden"] = "layers"

    def shape(self) -> str:
        return f"layers={self.layers}"


class Transformer(Looped):
    """The looped stack applied once per segment: z = f(z + x), full backprop."""

    def __init__(self, cfg, meta: DatasetMeta):
        super().__init__(cfg, meta, loops=1)


# ---------------------------------------------------------------------------------------------
# Parameter matching


def transformer_params(
    hidden: int, layers: int, vocab: int, expansion: float, multiple: int, learned_positions: int = 0
) -> int:
    """Exact parameter count of `Transformer` (attention blocks): blocks + embedding + heads
    (+ a learned position table of `learned_positions` rows)."""
    inner = swiglu_inner(hidden, expansion, multiple)
    block = 4 * hidden * hidden + 3 * hidden * inner  # qkv + o, gate_up + down
    return layers * block + (2 * vocab + learned_positions) * hidden + 2 * hidden + 2


def resolve_size(cfg: TransformerConfig, meta: DatasetMeta) -> TransformerConfig:
    """Deterministic sizing rule. target = round(match_params * match_multiple).

    size_by layers: layers in 1.. with the parameter count closest to target (ties: fewer layers).
    size_by hidden: hidden in step * {1, 2, ...} with step = heads (2 * heads with rope, for an even
    head size), closest count (ties: narrower). Fails if the closest achievable count is more than
    25% away from the target.
    """
    if cfg.match_params is None:
        return cfg
    target = round(cfg.match_params * cfg.match_multiple)
    V, e, m = meta.vocab_size, cfg.expansion, cfg.ffn_multiple
    pos = cfg.puzzle_emb_len + meta.seq_len if cfg.pos_encoding == "learned" else 0

    def count(hidden: int, layers: int) -> int:
        return transformer_params(hidden, layers, V, e, m, pos)

    candidates: list[tuple[int, int, int]] = []  # (|diff|, size, params)
    if cfg.size_by == "layers":
        layers = 1
        while True:
            p = count(cfg.hidden, layers)
            candidates.append((abs(p - target), layers, p))
            if p >= target:
                break
            layers += 1
        best = min(candidates)
        update = {"layers": best[1]}
    else:
        step = cfg.heads * (2 if cfg.pos_encoding == "rope" else 1)  # rotary: even head size
        hidden = step
        while True:
            p = count(hidden, cfg.layers)
            candidates.append((abs(p - target), hidden, p))
            if p >= target:
                break
            hidden += step
        best = min(candidates)
        update = {"hidden": best[1]}
    if best[0] > 0.25 * target:
        raise ConfigError(
            "model.match_params",
            f"no {cfg.size_by} value gives about {target:,} parameters "
            f"(closest: {best[2]:,} with {cfg.size_by}={best[1]})",
        )
    return cfg.model_copy(update=update)
