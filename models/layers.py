"""Shared building blocks of HRM, TRM and the transformer baselines.

Everything follows the reference recipe: post-norm blocks, RMSNorm without a learned scale (fp32),
bias-free linears with truncated-normal init (actual std 1/sqrt(fan_in), cut at +-2 sigma of the
corrected std, see `trunc_normal_`), fused QKV,
non-causal scaled_dot_product_attention with rotary embeddings, SwiGLU whose inner size is
round(expansion * hidden * 2/3) rounded up to a multiple of 256.

Shapes: B batch, S = P + L sequence (P puzzle-embedding prefix positions, L task tokens),
d hidden, h heads, hd = d / h head size, I SwiGLU inner size.

FLOP accounting lives next to each module as `macs(...)`: multiply-accumulates of the matmuls in one
forward call per example (2 FLOPs per MAC forward, 6 with the backward). Norms, rotary, activations
and embedding look-ups are not matmuls and are not counted.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _truncated_std(a: float) -> float:
    """Standard deviation of a standard normal truncated to [-a, a]: sqrt(1 - 2a phi(a) / Z),
    Z = P(|x| < a) = erf(a / sqrt 2). For a = 2: 0.8796."""
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    return math.sqrt(1 - 2 * a * phi / math.erf(a / math.sqrt(2)))


TRUNC_STD_2 = _truncated_std(2.0)


def trunc_normal_(t: torch.Tensor, std: float) -> torch.Tensor:
    """Truncated normal (in place) whose drawn values have standard deviation `std`.

    As JAX/Flax's `truncated_normal` and the reference: draw N(0, s) cut at +-2s with the corrected
    s = std / 0.8796, because cutting at 2 sigma shrinks the spread; plain
    `nn.init.trunc_normal_(std=std)` gives 0.88 * std. Works on the meta device (nothing to fill).
    """
    if t.device.type == "meta":
        return t
    s = std / TRUNC_STD_2
    return nn.init.trunc_normal_(t, mean=0.0, std=s, a=-2 * s, b=2 * s)


def round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


def swiglu_inner(width: int, expansion: float, multiple: int = 256) -> int:
    """Inner size of a SwiGLU: hidden 512, expansion 4 -> round(1365.3)=1365 -> 1536."""
    return round_up(round(expansion * width * 2 / 3), multiple)


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm without a learned scale, computed in fp32 (bf16 variance is too coarse)."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return x.to(dtype)


class Linear(nn.Module):
    """y = x W^T (+ b). Bias-free by default; weight [out, in], std 1/sqrt(in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(
            trunc_normal_(torch.empty(out_features, in_features), std=1.0 / math.sqrt(in_features))
        )
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def macs(self, tokens: int) -> int:
        return tokens * self.in_features * self.out_features


class Embedding(nn.Module):
    """Token embedding with std `init_std` (1/sqrt(d): the caller multiplies by sqrt(d))."""

    def __init__(self, num: int, dim: int, init_std: float):
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_(torch.empty(num, dim), std=init_std))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class Rotary(nn.Module):
    """Rotary position embedding tables for S positions (prefix positions included).

    Non-persistent buffers: recomputed at build, never checkpointed.
    """

    def __init__(self, head_dim: int, seq_len: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        t = torch.arange(seq_len, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)  # [S, hd/2]
        emb = torch.cat((freqs, freqs), dim=-1)  # [S, hd]
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, h, S, hd]; cos/sin [S, hd]. Rotate-half convention."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class Attention(nn.Module):
    """Non-causal multi-head self-attention with a fused QKV projection and optional RoPE."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.hidden, self.heads, self.head_dim = hidden, heads, hidden // heads
        self.qkv_proj = Linear(hidden, 3 * hidden)
        self.o_proj = Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        B, S, _ = x.shape
        qkv = self.qkv_proj(x).view(B, S, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, h, S, hd]
        if rotary is not None:
            q = apply_rotary(q, rotary.cos, rotary.sin)
            k = apply_rotary(k, rotary.cos, rotary.sin)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=False)  # [B, h, S, hd]
        return self.o_proj(o.transpose(1, 2).reshape(B, S, self.hidden))

    def macs(self, seq: int) -> int:
        # projections 4 S d^2, plus Q K^T and A V: 2 S^2 d (the sequence-length term)
        return self.qkv_proj.macs(seq) + self.o_proj.macs(seq) + 2 * seq * seq * self.hidden


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)) with gate and up fused into one projection."""

    def __init__(self, width: int, expansion: float, multiple: int = 256):
        super().__init__()
        self.inner = swiglu_inner(width, expansion, multiple)
        self.gate_up_proj = Linear(width, 2 * self.inner)
        self.down_proj = Linear(self.inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)

    def macs(self, tokens: int) -> int:
        return self.gate_up_proj.macs(tokens) + self.down_proj.macs(tokens)


class TokenMixer(nn.Module):
    """TRM-MLP's replacement for attention: a SwiGLU across the sequence axis (MLP-Mixer style).

    Works on the transposed tensor hT [B, d, S]: mix(hT) = SwiGLU over S -> [B, d, S]. The block
    adds the residual and normalises while the tensor is still [B, d, S], so that post-norm is an
    RMS over the *sequence* axis (as the reference does), then transposes back. Needs a fixed S; no
    positions are encoded (the weights are position-specific already).
    """

    def __init__(self, seq_len: int, hidden: int, expansion: float, multiple: int = 256):
        super().__init__()
        self.hidden = hidden
        self.mlp = SwiGLU(seq_len, expansion, multiple)

    def forward(self, hT: torch.Tensor) -> torch.Tensor:
        return self.mlp(hT)  # [B, d, S] -> [B, d, S]

    def macs(self, seq: int) -> int:
        return self.mlp.macs(self.hidden)  # d "tokens" of width S


class Block(nn.Module):
    """Post-norm block: h = norm(h + mix(h)); h = norm(h + swiglu(h)).

    With attention both norms are over hidden. With TRM-MLP's token mixer the first one is over the
    sequence axis: hT = h^T [B, d, S];  h = (norm_S(hT + mix(hT)))^T;  then the channel SwiGLU.
    """

    def __init__(
        self,
        hidden: int,
        heads: int,
        expansion: float,
        eps: float,
        multiple: int = 256,
        token_mixer_seq: int | None = None,
    ):
        super().__init__()
        self.eps = eps
        if token_mixer_seq is None:
            self.mixer: nn.Module = Attention(hidden, heads)
        else:
            self.mixer = TokenMixer(token_mixer_seq, hidden, expansion, multiple)
        self.mlp = SwiGLU(hidden, expansion, multiple)

    def forward(self, h: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        if isinstance(self.mixer, TokenMixer):
            hT = h.transpose(1, 2)  # [B, d, S]
            h = rms_norm(hT + self.mixer(hT), self.eps).transpose(1, 2)  # RMS over S -> [B, S, d]
        else:
            h = rms_norm(h + self.mixer(h, rotary), self.eps)  # RMS over d
        return rms_norm(h + self.mlp(h), self.eps)

    def macs(self, seq: int) -> int:
        return self.mixer.macs(seq) + self.mlp.macs(seq)


class Stack(nn.Module):
    """A stack of blocks with additive input injection: f(h, inj) = blocks(h + inj).

    This is HRM's f_L / f_H, TRM's single `net`, and the baselines' transformer.
    """

    def __init__(self, layers: int, **block_kw):
        super().__init__()
        self.layers = nn.ModuleList(Block(**block_kw) for _ in range(layers))

    def forward(self, h: torch.Tensor, injection: torch.Tensor | None, rotary: Rotary | None):
        if injection is not None:
            h = h + injection
        for block in self.layers:
            h = block(h, rotary)
        return h

    def macs(self, seq: int) -> int:
        return sum(b.macs(seq) for b in self.layers)
