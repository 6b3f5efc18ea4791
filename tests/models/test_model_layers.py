"""Shared blocks: SwiGLU sizing, RMSNorm, losses, init, input scaling, attention/positions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.layers import Linear, rms_norm, swiglu_inner
from models.losses import log_stablemax, softmax_cross_entropy, stablemax_cross_entropy
from modelkit import META, make_batch, tiny_model


def test_swiglu_inner_size_rounds_to_256():
    assert swiglu_inner(512, 4) == 1536
    assert swiglu_inner(97, 4) == 512  # TRM-MLP token mixing over 81 + 16 positions
    assert swiglu_inner(32, 4, multiple=32) == 96


def test_rms_norm_has_no_scale_and_runs_in_fp32():
    x = torch.randn(3, 5, 16) * 7 + 2
    y = rms_norm(x, 1e-5)
    assert torch.allclose(y.square().mean(-1), torch.ones(3, 5), atol=1e-4)
    yb = rms_norm(x.bfloat16(), 1e-5)
    assert yb.dtype == torch.bfloat16
    assert torch.allclose(yb.float(), y, atol=2e-2)


def test_stablemax_matches_its_definition():
    x = torch.tensor([[-2.0, 0.0, 0.5, 3.0]])
    s = torch.tensor([1 / 3, 1.0, 1.5, 4.0])
    assert torch.allclose(log_stablemax(x).exp(), (s / s.sum()).unsqueeze(0), atol=1e-6)
    logits = x.view(1, 1, 4).repeat(1, 3, 1)
    labels = torch.tensor([[3, -100, 0]])
    loss = stablemax_cross_entropy(logits, labels)
    assert loss.dtype == torch.float64
    assert loss[0, 1] == 0
    total = 1 / 3 + 1.0 + 1.5 + 4.0
    assert math.isclose(loss[0, 0].item(), -math.log(4 / total), rel_tol=1e-6)
    assert math.isclose(loss[0, 2].item(), -math.log((1 / 3) / total), rel_tol=1e-6)


def test_stablemax_gradient_is_finite_at_the_branch_points():
    x = torch.tensor([[[1.0, 0.0, -1.0, 2.0]]], requires_grad=True)
    stablemax_cross_entropy(x, torch.tensor([[0]])).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_softmax_cross_entropy_ignores_unlabelled_tokens():
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[1, -100, 4], [0, 2, -100]])
    loss = softmax_cross_entropy(logits, labels)
    assert loss[0, 1] == 0 and loss[1, 2] == 0
    assert torch.allclose(loss[0, 0], F.cross_entropy(logits[0, 0:1], labels[0, 0:1]))


def test_init_follows_the_recipe():
    torch.manual_seed(0)
    lin = Linear(400, 300)
    w = lin.weight.detach()
    std = 1 / math.sqrt(400)
    assert w.abs().max() <= 2 * std / 0.87962566 + 1e-7  # cut at 2 corrected sigmas
    assert 0.99 * std < w.std() < 1.01 * std  # the corrected std: actual = nominal
    model = tiny_model("trm")
    core = model.core
    assert torch.all(core.q_head.weight == 0) and torch.all(core.q_head.bias == -5)
    assert core.lm_head.bias is None and core.q_head.bias is not None
    assert not any(p.requires_grad is False for p in model.parameters())
    assert "y_init" in dict(core.named_buffers()) and "z_init" in dict(core.named_buffers())
    a = core.init_latents(2)
    b = core.init_latents(3)
    assert torch.equal(a["y"][0, 0], b["y"][2, 5])  # one fixed vector everywhere


def test_inputs_are_scaled_to_unit_size():
    torch.manual_seed(0)
    model = tiny_model("transformer", hidden=256, heads=4)
    x = model.core.embed(make_batch(64))
    assert 0.8 < x.std().item() < 1.0  # std 1/sqrt(d) * sqrt(d), truncated


def _logits(model, batch):
    model.eval()
    _, logits, _ = model.core(model.core.init_latents(batch["inputs"].shape[0]), batch)
    return logits


def test_attention_is_non_causal():
    model = tiny_model("transformer", puzzle_emb_len=0)
    batch = make_batch(2)
    other = {k: v.clone() for k, v in batch.items()}
    other["inputs"][:, -1] = (other["inputs"][:, -1] % 6) + 1  # change only the last token
    diff = (_logits(model, batch) - _logits(model, other)).abs()
    assert diff[:, 0].max() > 1e-4  # the first position sees it


@pytest.mark.parametrize("pos,equivariant", [("none", True), ("rope", False)])
def test_rotary_gives_positions(pos, equivariant):
    model = tiny_model("transformer", puzzle_emb_len=0, pos_encoding=pos)
    batch = make_batch(2)
    perm = torch.randperm(META.seq_len, generator=torch.Generator().manual_seed(1))
    permuted = dict(batch, inputs=batch["inputs"][:, perm])
    same = torch.allclose(_logits(model, batch)[:, perm], _logits(model, permuted), atol=1e-5)
    assert same is equivariant


def test_trm_mlp_mixes_tokens_without_rotary():
    model = tiny_model("trm-mlp")
    assert model.core.rotary is None
    block = model.core.net.layers[0]
    assert type(block.mixer).__name__ == "TokenMixer"
    assert block.mixer.mlp.gate_up_proj.in_features == META.seq_len + 3  # S = L + P
