"""Typed configuration of every model architecture, selected by `model.arch`.

Kept apart from harness/config.py so the model zoo owns its own knobs; the experiment config embeds
`ModelConfig` (a union discriminated by `arch`), so an unknown key or a key that belongs to another
architecture fails at load time with the dotted path.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Common(_Strict):
    hidden: PositiveInt = 512
    heads: PositiveInt = 8
    expansion: float = Field(4.0, gt=0)
    ffn_multiple: PositiveInt = 256            # SwiGLU inner size rounded up to a multiple of this
    rope_theta: float = Field(10000.0, gt=0)
    norm_eps: float = Field(1e-5, gt=0)
    pos_encoding: Literal["rope", "learned", "none"] = "rope"   # learned: added, sum / sqrt(2)
    puzzle_emb_len: int = Field(0, ge=0)       # prefix positions holding the puzzle embedding
    halt_max_steps: PositiveInt = 16           # supervision segments per example
    halt_exploration_prob: float = Field(0.1, ge=0, le=1)
    act: bool = True                           # learn to halt early in training (Q head);
                                               # false: always halt_max_steps segments, no Q loss
    loss: Literal["stablemax", "softmax"] = "stablemax"

    @model_validator(mode="after")
    def _heads_divide_hidden(self):
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.pos_encoding == "rope" and (self.hidden // self.heads) % 2:
            raise ValueError(f"rotary embeddings need an even head size (hidden / heads = "
                             f"{self.hidden // self.heads})")
        return self


class TransformerConfig(_Common):
    """Direct-prediction baseline: the same blocks, no inner recursion.

    With `match_params` set, the depth (size_by: layers) or the width (size_by: hidden, a multiple
    of `heads`, of 2 * heads with rope) is chosen at build time so the parameter count is the one closest to
    match_params * match_multiple (ties: the smaller model); `layers`/`hidden` then are ignored.
    `rbench model summary` shows the resolved size.
    """
    arch: Literal["transformer"] = "transformer"
    layers: PositiveInt = 8
    match_params: PositiveInt | None = None
    match_multiple: float = Field(1.0, gt=0)
    size_by: Literal["layers", "hidden"] = "layers"


class TRMConfig(_Common):
    arch: Literal["trm"] = "trm"
    layers: PositiveInt = 2
    T: PositiveInt = 3          # recursions per supervision step (T-1 without gradient)
    n: PositiveInt = 6          # latent updates per recursion
    mlp_t: bool = False         # TRM-MLP: token-mixing SwiGLU instead of attention
    puzzle_emb_len: int = Field(16, ge=0)


class HRMConfig(_Common):
    arch: Literal["hrm"] = "hrm"
    H_layers: PositiveInt = 4
    L_layers: PositiveInt = 4
    H_cycles: PositiveInt = 2
    L_cycles: PositiveInt = 2
    act_continue: bool = True   # Q-learning continue head + its extra no-grad target pass
    puzzle_emb_len: int = Field(1, ge=0)


class LoopedConfig(_Common):
    """Universal / looped transformer: one weight-tied stack applied `loops` times."""
    arch: Literal["looped"] = "looped"
    layers: PositiveInt = 2
    loops: PositiveInt = 4


ModelConfig = Annotated[
    Union[TransformerConfig, TRMConfig, HRMConfig, LoopedConfig], Field(discriminator="arch")
]
