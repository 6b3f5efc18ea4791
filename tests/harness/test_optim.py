"""AdamATan2 (harness/optim.py): the reference rule exactly, and it trains a model."""

from __future__ import annotations

import math

import pytest
import torch

from harness.optim import AdamATan2

# Hand computation (betas 0.9 / 0.95, lr 0.1, weight decay 0.5), e.g. step 1 of the first entry:
#   g = 0.5: m = 0.05, v = 0.0125, bc1 = 0.1, bc2 = 0.05, sqrt(v)/sqrt(bc2) = 0.5
#   p = 1.0 * (1 - 0.1 * 0.5) - (0.1 / 0.1) * atan2(0.05, 0.5) = 0.95 - 0.0996687 = 0.8503313
GRADS = [(0.5, -1.0), (-0.3, 4.0), (0.2, 0.0)]
EXPECTED = [
    (0.8503313475088379, -1.8003313475088378),
    (0.7885592498423875, -1.765452357391733),
    (0.7140041445501876, -1.7203134396057234),
]


def test_adam_atan2_matches_the_reference_rule_by_hand():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = AdamATan2([p], lr=0.1, betas=(0.9, 0.95), weight_decay=0.5)
    for g, want in zip(GRADS, EXPECTED):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        torch.testing.assert_close(p.detach(), torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-7)
    # each step is bounded by lr * pi/2 / bc1, whatever the gradient (no epsilon needed)
    q = torch.nn.Parameter(torch.zeros(3))
    opt = AdamATan2([q], lr=0.01)
    q.grad = torch.tensor([1e30, -1e-30, 0.0])
    opt.step()
    assert q.abs().max() <= 0.01 * math.pi / 2 / 0.1 + 1e-6 and q[2] == 0


@pytest.mark.slow
def test_adam_atan2_trains_a_tiny_model():
    """A 1-layer transformer learns a substitution cipher (labels = perm[x], 6 tokens a row) with
    AdamATan2 to 100% exact; untrained it solves nothing. ~3 s."""
    from benchmarks.dataset import DatasetMeta
    from harness.model_config import TransformerConfig
    from models import build_model

    L, V = 6, 6
    meta = DatasetMeta("subst", seq_len=L, vocab_size=V + 2, num_puzzle_identifiers=1)
    perm = torch.randperm(V, generator=torch.Generator().manual_seed(0))

    def batch(g, B):
        x = torch.randint(0, V, (B, L), generator=g)
        return {
            "inputs": x + 2,
            "labels": perm[x] + 2,
            "puzzle_identifiers": torch.zeros(B, dtype=torch.long),
        }

    torch.manual_seed(0)
    model = build_model(
        TransformerConfig(
            hidden=32, heads=2, ffn_multiple=32, layers=1, halt_max_steps=1, act=False, puzzle_emb_len=0
        ),
        meta,
    )
    test = batch(torch.Generator().manual_seed(99), 512)

    def accuracy():
        model.eval()
        preds, _ = model.predict(test)
        model.train()
        return (preds == test["labels"]).all(-1).float().mean().item()

    assert accuracy() < 0.05
    opt = AdamATan2(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    carry = None
    for _ in range(300):
        b = batch(g, 64)
        carry = model.initial_carry(b) if carry is None else carry
        carry, loss, _, _ = model(carry, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert accuracy() >= 0.99
