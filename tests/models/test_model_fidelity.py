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
    h = seen[0]  # [B, S, d]
    assert h.shape == (3, META.seq_len + 3, 32)
    rms_over_S = h.float().square().mean(1).sqrt()  # [B, d]
    torch.testing.assert_close(rms_over_S, torch.ones_like(rms_over_S), atol=1e-3, rtol=0)
    rms_over_d = h.float().square().mean(2).sqrt()  # [B, S]: not normalised
    assert (rms_over_d - 1).abs().max() > 0.05


def test_trm_mlp_sudoku_count_is_unchanged():
    with torch.device("meta"):
        model = build_model(TRMConfig(mlp_t=True, n=6), SUDOKU)
    assert model.num_parameters() == 5_028_866


def _std_and_bound(x: torch.Tensor, nominal: float) -> tuple[float, float]:
    x = x.detach().double().flatten()
    return x.std().item() / nominal, x.abs().max().item() / nominal


def test_truncated_normal_init_has_the_nominal_std():
    """Linears (std 1/sqrt(fan_in)), embeddings (std 1/sqrt(d)) and the fixed initial latents
    (std 1): the drawn values' std is within 1% of nominal; values stay within 2 corrected sigmas."""
    from models.act import Core
    from models.layers import Embedding, Linear

    bound = 2 / 0.87962566  # +-2 sigma of the corrected std
    torch.manual_seed(0)
    lin = Linear(1024, 768)
    ratio, top = _std_and_bound(lin.weight, 1 / 1024**0.5)
    assert abs(ratio - 1) < 0.01 and top <= bound + 1e-6, (ratio, top)
    emb = Embedding(1024, 512, init_std=1 / 512**0.5)
    ratio, top = _std_and_bound(emb.weight, 1 / 512**0.5)
    assert abs(ratio - 1) < 0.01 and top <= bound + 1e-6, (ratio, top)

    class Latents(Core):  # only the shared ends + TRM's latents
        latent_names = ("y", "z")

    cfg = tiny_cfg("trm", hidden=8192, heads=2)
    draws = []
    for seed in range(8):
        torch.manual_seed(seed)
        core = Latents(cfg, META)
        draws += [core.y_init, core.z_init]
        assert not core.y_init.requires_grad and "y_init" in dict(core.named_buffers())
    ratio, top = _std_and_bound(torch.cat(draws), 1.0)
    assert abs(ratio - 1) < 0.01 and top <= bound + 1e-6, (ratio, top)


def test_learned_positions_are_added_and_the_sum_scaled_by_one_over_sqrt2():
    import math

    from models.transformer import transformer_params

    model = tiny_model("transformer", puzzle_emb_len=2, pos_encoding="learned")
    core = model.core
    assert core.rotary is None and core.embed_pos.weight.shape == (META.seq_len + 2, 32)
    batch = make_batch(2)
    x = core.embed(batch)  # [B, S, d]
    tok = core.embed_tokens.weight[batch["inputs"]]  # [B, L, d]
    prefix = torch.cat(
        (core.puzzle_emb.weights[batch["puzzle_identifiers"]].unsqueeze(1), torch.zeros(2, 1, 32)), 1
    )  # [B, P, d]
    want = math.sqrt(32) * (torch.cat((prefix, tok), 1) + core.embed_pos.weight) / math.sqrt(2)
    torch.testing.assert_close(x, want)
    # the table is trained like every other parameter, and the exact count includes it
    rope = tiny_model("transformer", puzzle_emb_len=2)
    assert model.num_parameters() - rope.num_parameters() == (META.seq_len + 2) * 32
    assert model.num_parameters() == transformer_params(
        32, 2, META.vocab_size, 4.0, 32, learned_positions=META.seq_len + 2
    )
    loss = model(model.initial_carry(batch), batch)[1]
    loss.backward()
    assert core.embed_pos.weight.grad is not None and core.embed_pos.weight.grad.abs().sum() > 0
