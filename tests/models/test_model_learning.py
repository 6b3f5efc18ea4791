"""Real learning, seeded, with a plain AdamW loop through the ACT wrapper (no DeepSpeed).

1. HRM and TRM learn a per-puzzle substitution cipher: the same inputs map to different outputs
   depending on the puzzle identifier, which the model sees ONLY through its puzzle embedding. So
   this exercises the whole path: prefix, sign-SGD on the embedding table, ACT halting and data
   replacement, losses, predict.
2. Depth: at equal parameters, TRM with n=4 beats TRM with n=1 on prefix parity (length 12, 512
   held-out inputs never trained on), one supervision segment, T=1 — so the only difference is
   the number of latent updates (effective depth 5 vs 2 blocks). Checked at each of three seeds.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.dataset import DatasetMeta
from harness.model_config import HRMConfig, TRMConfig
from models import build_model
from modelkit import exact_accuracy, train

pytestmark = pytest.mark.slow

K, L = 4, 8  # puzzles, tokens per sequence; symbols are tokens 2..7
PERMS = torch.stack([torch.randperm(6, generator=torch.Generator().manual_seed(100 + k)) for k in range(K)])
CIPHER = DatasetMeta("cipher", seq_len=L, vocab_size=8, num_puzzle_identifiers=K + 1)


def cipher(g: torch.Generator, B: int) -> dict[str, torch.Tensor]:
    ids = torch.randint(0, K, (B,), generator=g)
    x = torch.randint(0, 6, (B, L), generator=g)
    return {"inputs": x + 2, "labels": torch.gather(PERMS[ids], 1, x) + 2, "puzzle_identifiers": ids + 1}


SMALL = dict(hidden=32, heads=2, ffn_multiple=32, halt_max_steps=2)


@pytest.mark.parametrize(
    "cfg",
    [
        HRMConfig(H_layers=1, L_layers=1, H_cycles=2, L_cycles=2, **SMALL),
        TRMConfig(layers=1, T=2, n=2, puzzle_emb_len=2, **SMALL),
    ],
    ids=["hrm", "trm"],
)
def test_learns_a_per_puzzle_cipher(cfg):
    torch.manual_seed(0)
    model = build_model(cfg, CIPHER)
    test = cipher(torch.Generator().manual_seed(7), 1000)
    assert exact_accuracy(model, test) < 0.05
    train(model, cipher, 300, batch_size=32, lr=3e-3)
    assert exact_accuracy(model, test) >= 0.95
    # the identifier matters: the same inputs under a wrong identifier are not solved
    wrong = dict(test, puzzle_identifiers=(test["puzzle_identifiers"] % K) + 1)
    assert exact_accuracy(model, wrong) < 0.2


PARITY_L = 12
_codes = torch.arange(2**PARITY_L)
_bits = (_codes.unsqueeze(1) >> torch.arange(PARITY_L)) & 1  # all 4096 inputs
_perm = torch.randperm(2**PARITY_L, generator=torch.Generator().manual_seed(1234))
_test_rows, _train_rows = _perm[:512], _perm[512:]
PARITY = DatasetMeta("parity", seq_len=PARITY_L, vocab_size=4, num_puzzle_identifiers=1)


def _parity_batch(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "inputs": x + 2,
        "labels": torch.cumsum(x, 1) % 2 + 2,
        "puzzle_identifiers": torch.zeros(len(x), dtype=torch.long),
    }


def parity(g: torch.Generator, B: int) -> dict[str, torch.Tensor]:
    return _parity_batch(_bits[_train_rows[torch.randint(0, len(_train_rows), (B,), generator=g)]])


SEEDS = (0, 1, 2)


def test_more_latent_updates_beat_fewer_at_equal_parameters_at_every_seed():
    """Stated over seeds, not one lucky seed: for each seed (weights and data order both drawn
    from it) n=4 beats n=1 at equal parameters and steps, and by a wide margin on average. How
    much depends on when n=4 takes off (measured, seed: n=1 vs n=4 exact: 0: 3.5% vs 92.2%,
    1: 2.1% vs 19.3%, 2: 25.8% vs 47.3%), so the per-seed bar is low and the mean bar high."""
    test = _parity_batch(_bits[_test_rows])
    gaps = []
    for seed in SEEDS:
        acc, params = {}, {}
        for n in (1, 4):
            torch.manual_seed(seed)
            model = build_model(
                TRMConfig(
                    hidden=32,
                    heads=2,
                    ffn_multiple=32,
                    layers=1,
                    T=1,
                    n=n,
                    halt_max_steps=1,
                    act=False,
                    puzzle_emb_len=0,
                ),
                PARITY,
            )
            params[n] = model.num_parameters()
            train(model, parity, 800, batch_size=64, lr=3e-3, seed=seed)
            acc[n] = exact_accuracy(model, test)
        assert params[1] == params[4]
        assert acc[4] >= acc[1] + 0.05, (seed, acc)  # four latent updates always do better
        gaps.append((acc[1], acc[4]))
    assert sum(a1 for a1, _ in gaps) / len(gaps) < 0.3, gaps  # one cannot do it ...
    assert sum(a4 - a1 for a1, a4 in gaps) / len(gaps) >= 0.15, gaps  # ... and the gap is wide
