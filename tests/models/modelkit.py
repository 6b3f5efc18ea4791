"""Small helpers shared by the tests in tests/models (tiny configs, batches, a plain training loop)."""

from __future__ import annotations

import math

import torch

from benchmarks.dataset import IGNORE_LABEL_ID, DatasetMeta
from harness.model_config import HRMConfig, LoopedConfig, TransformerConfig, TRMConfig
from models import build_model

META = DatasetMeta(task="tiny", seq_len=10, vocab_size=7, num_puzzle_identifiers=5)
SUDOKU = DatasetMeta(task="sudoku", seq_len=81, vocab_size=11, num_puzzle_identifiers=1)
ARC = DatasetMeta(task="arc", seq_len=900, vocab_size=12, num_puzzle_identifiers=1000)

_SMALL = dict(hidden=32, heads=2, ffn_multiple=32, halt_max_steps=3)
_ARCH = {
    "transformer": (TransformerConfig, dict(layers=2)),
    "trm": (TRMConfig, dict(layers=2, T=2, n=2, puzzle_emb_len=3)),
    "trm-mlp": (TRMConfig, dict(layers=2, T=2, n=2, puzzle_emb_len=3, mlp_t=True)),
    "hrm": (HRMConfig, dict(H_layers=1, L_layers=1, puzzle_emb_len=1)),
    "looped": (LoopedConfig, dict(layers=1, loops=3)),
}


def tiny_cfg(arch: str, **kw):
    cls, defaults = _ARCH[arch]
    return cls(**{**_SMALL, **defaults, **kw})


def tiny_model(arch: str, meta: DatasetMeta = META, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_model(tiny_cfg(arch, **kw), meta)


def make_batch(B: int, meta: DatasetMeta = META, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tokens; row 0 has only two labelled tokens (per-sequence loss averaging matters)."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(1, meta.vocab_size, (B, meta.seq_len), generator=g)
    labels = torch.randint(1, meta.vocab_size, (B, meta.seq_len), generator=g)
    labels[0, 2:] = IGNORE_LABEL_ID
    ids = torch.randint(0, meta.num_puzzle_identifiers, (B,), generator=g)
    return {"inputs": inputs, "labels": labels, "puzzle_identifiers": ids}


def train(
    model,
    sample,
    steps: int,
    *,
    batch_size: int,
    lr: float,
    seed: int = 0,
    warmup: int = 50,
    weight_decay: float = 0.1,
) -> None:
    """Plain AdamW loop through the ACT wrapper, one supervision segment per optimizer step
    (what the engine does, without DeepSpeed): linear warm-up then cosine to zero."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    model.train()
    carry = None
    for step in range(steps):
        batch = sample(g, batch_size)
        if carry is None:
            carry = model.initial_carry(batch)
        carry, loss, _, _ = model(carry, batch, generator=torch.Generator().manual_seed(seed * 100003 + step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        model.puzzle_emb_step(1e-2 * sched.get_last_lr()[0] / lr, 0.1)


def exact_accuracy(model, batch: dict[str, torch.Tensor]) -> float:
    model.eval()
    preds, _ = model.predict(batch)
    model.train()
    mask = batch["labels"] != IGNORE_LABEL_ID
    return ((preds == batch["labels"]) | ~mask).all(-1).float().mean().item()
