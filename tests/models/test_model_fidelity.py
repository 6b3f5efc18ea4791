"""Agreement with the published HRM/TRM code on the points the spec spells out exactly
(../shared/spec/models.md): TRM-MLP's norm axis, the corrected truncated-normal init."""
from __future__ import annotations

import torch

from modelkit import META, SUDOKU, make_batch, tiny_cfg, tiny_model
from harness.model_config import TRMConfig
from models import build_model


def test_trm_mlp_token_mixing_is_normalised_over_the_sequence_axis():
    """After the token-mixing sublayer (the input of the channel SwiGLU), the RMS over S is 1 for
    every (row, channel): the reference normalises while the tensor is still [B, d, S]."""
    model = tiny_model("trm-mlp").eval()
    block = model.core.net.layers[0]
    seen = []
    block.mlp.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    batch = make_batch(3)
    with torch.no_grad():
        model.core(model.core.init_latents(3), batch)
    h = seen[0]                                                   # [B, S, d]
    assert h.shape == (3, META.seq_len + 3, 32)
    rms_over_S = h.float().square().mean(1).sqrt()                # [B, d]
    torch.testing.assert_close(rms_over_S, torch.ones_like(rms_over_S), atol=1e-3, rtol=0)
    rms_over_d = h.float().square().mean(2).sqrt()                # [B, S]: not normalised
    assert (rms_over_d - 1).abs().max() > 0.05


def test_trm_mlp_sudoku_count_is_unchanged():
    with torch.device("meta"):
        model = build_model(TRMConfig(mlp_t=True, n=6), SUDOKU)
    assert model.num_parameters() == 5_028_866
