"""Analytic FLOPs of every model against FlopCounterMode (matmul FLOPs, MATH attention backend).

One training step = one supervision segment through the ACT wrapper (HRM's extra no-grad target
pass included) + loss.backward(); one eval step = one segment of `predict`. Both per example.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.dataset import DatasetMeta
from harness.flops import counting
from harness.model_config import TRMConfig
from models import build_model
from modelkit import META, SUDOKU, make_batch, tiny_model

CASES = [
    ("transformer", {}),
    ("trm", {}),
    ("trm", {"act": False}),
    ("trm-mlp", {}),
    ("hrm", {}),
    ("hrm", {"act_continue": False}),
    ("hrm", {"puzzle_emb_len": 0, "H_cycles": 3, "L_cycles": 1}),
    ("looped", {}),
    ("looped", {"act": False}),
]


def counted(model, batch, generator=None) -> tuple[int, int]:
    """FlopCounterMode's integer totals for the whole batch: (one training step, one `predict`)."""
    model.train()
    carry = model.initial_carry(batch)
    with counting() as c:
        _, loss, _, _ = model(carry, batch, generator=generator)
        loss.backward()
    train = c.get_total_flops()
    model.eval()
    with counting() as c:
        model.predict(batch)
    return train, c.get_total_flops()


def assert_exact(model, B: int = 3, meta=META) -> tuple[int, int]:
    """Analytic per-example FLOPs x batch == the counter's integer total, with no tolerance."""
    train, predict = counted(model, make_batch(B, meta), torch.Generator().manual_seed(0))
    a_train, a_eval = model.flops_per_example("train"), model.flops_per_example("eval")
    assert a_train == int(a_train) and a_eval == int(a_eval)  # whole numbers, exact in a float
    assert int(a_train) * B == train, (int(a_train) * B, train)
    assert int(a_eval) * B * model.cfg.halt_max_steps == predict, (int(a_eval) * B, predict)
    return train, predict


@pytest.mark.parametrize("arch,kw", CASES)
def test_analytic_flops_equal_the_flop_counter_exactly(arch, kw):
    train, predict = assert_exact(tiny_model(arch, **kw))
    assert train > 0 and predict > 0


# A large vocabulary over a short sequence: the output heads are a fifth of a training step and
# HRM's no-grad Q-target pass a quarter, so a wrong head or target count cannot hide in rounding.
WIDE_VOCAB = DatasetMeta(task="wide", seq_len=4, vocab_size=300, num_puzzle_identifiers=5)


@pytest.mark.parametrize(
    "arch,kw",
    [("hrm", {"puzzle_emb_len": 0}), ("hrm", {"puzzle_emb_len": 2}), ("trm", {}), ("transformer", {})],
)
def test_exact_flops_where_heads_and_the_q_target_pass_are_large(arch, kw):
    model = tiny_model(arch, meta=WIDE_VOCAB, hidden=16, heads=1, ffn_multiple=8, **kw)
    core, total = model.core, model.flops_per_example("train")
    heads = core._heads_flops(True, model.cfg.act, True)
    assert heads > 0.02 * total, heads / total
    if arch == "hrm":
        target = core.segment_flops(grad=False, need_logits=False)  # the extra Q-target forward
        assert model.q_continue and target > 0.02 * total, target / total
    assert_exact(model, B=3, meta=WIDE_VOCAB)


def test_hrm_extra_target_pass_is_counted():
    with_pass = tiny_model("hrm")
    without = tiny_model("hrm", act_continue=False)
    extra = with_pass.flops_per_example("train") - without.flops_per_example("train")
    assert extra > 0.9 * with_pass.flops_per_example("eval") - 1  # ~ one forward, no lm_head


def test_trm_paper_recipe_is_70N_per_token():
    """T=3, n=6: 14 no-grad calls (2N) + 7 calls with backward (6N) = 70N, not 6N * 21."""
    with torch.device("meta"):
        core = build_model(TRMConfig(), SUDOKU).core
    heads_train = core._heads_flops(True, True, True)
    heads_eval = core._heads_flops(False, False, True)
    body_train = core.segment_flops(grad=True) - heads_train
    body_eval = core.segment_flops(grad=False) - heads_eval  # 21 calls forward = 42N
    assert body_train / body_eval == pytest.approx(70 / 42, rel=1e-12)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        tiny_model("trm").flops_per_example("inference")
