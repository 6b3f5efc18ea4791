"""Analytic FLOPs of every model against FlopCounterMode (matmul FLOPs, MATH attention backend).

One training step = one supervision segment through the ACT wrapper (HRM's extra no-grad target
pass included) + loss.backward(); one eval step = one segment of `predict`. Both per example.
"""
from __future__ import annotations

import pytest
import torch

from harness.flops import check_flops
from harness.model_config import TRMConfig
from models import build_model
from modelkit import SUDOKU, make_batch, tiny_model

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


@pytest.mark.parametrize("arch,kw", CASES)
def test_analytic_flops_match_flop_counter(arch, kw):
    model = tiny_model(arch, **kw)
    out = check_flops(model, make_batch(3), torch.Generator().manual_seed(0), rel_tol=0.02)
    assert out["train_measured"] > out["eval_measured"] > 0


def test_hrm_extra_target_pass_is_counted():
    with_pass = tiny_model("hrm")
    without = tiny_model("hrm", act_continue=False)
    extra = with_pass.flops_per_example("train") - without.flops_per_example("train")
    assert extra > 0.9 * with_pass.flops_per_example("eval") - 1   # ~ one forward, no lm_head


def test_trm_paper_recipe_is_70N_per_token():
    """T=3, n=6: 14 no-grad calls (2N) + 7 calls with backward (6N) = 70N, not 6N * 21."""
    with torch.device("meta"):
        core = build_model(TRMConfig(), SUDOKU).core
    heads_train = core._heads_flops(True, True, True)
    heads_eval = core._heads_flops(False, False, True)
    body_train = core.segment_flops(grad=True) - heads_train
    body_eval = core.segment_flops(grad=False) - heads_eval      # 21 calls forward = 42N
    assert body_train / body_eval == pytest.approx(70 / 42, rel=1e-12)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        tiny_model("trm").flops_per_example("inference")
