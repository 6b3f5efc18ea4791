"""Parameter counts of the paper configurations, built on the meta device (nothing allocated),
effective depth, and the transformer baseline's parameter-matching rule."""

from __future__ import annotations

import pytest
import torch

from harness.errors import ConfigError
from harness.model_config import HRMConfig, LoopedConfig, TransformerConfig, TRMConfig
from models import build_model
from models.transformer import transformer_params
from modelkit import ARC, META, SUDOKU, tiny_model


def _meta_build(cfg, meta):
    with torch.device("meta"):
        return build_model(cfg, meta)


@pytest.mark.parametrize(
    "name,cfg,meta,expected",
    [
        ("HRM Sudoku", HRMConfig(), SUDOKU, 27_275_266),
        ("TRM-Att Sudoku", TRMConfig(), SUDOKU, 6_828_034),
        ("TRM-MLP Sudoku", TRMConfig(mlp_t=True, n=6), SUDOKU, 5_028_866),  # seq 81 + 16 prefix
        ("HRM ARC", HRMConfig(), ARC, 27_276_290),
        ("TRM-Att ARC", TRMConfig(), ARC, 6_829_058),
    ],
)
def test_paper_parameter_counts(name, cfg, meta, expected):
    model = _meta_build(cfg, meta)
    assert model.num_parameters() == expected, name


def test_puzzle_embeddings_are_a_buffer_not_counted():
    model = tiny_model("trm")
    table = model.core.puzzle_emb.weights
    assert table.shape == (META.num_puzzle_identifiers, 32)
    assert all(p is not table for p in model.parameters())
    assert "core.puzzle_emb.weights" in model.state_dict()  # but checkpointed
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())
    no_prefix = tiny_model("trm", puzzle_emb_len=0)
    assert no_prefix.core.puzzle_emb is None
    assert no_prefix.num_parameters() == model.num_parameters()  # attention: S does not matter


def test_effective_depth_per_supervision_step():
    assert _meta_build(TRMConfig(), SUDOKU).effective_depth() == 42  # 3 * 7 * 2
    assert _meta_build(HRMConfig(), SUDOKU).effective_depth() == 24  # 2 * (2*4 + 4)
    assert _meta_build(TransformerConfig(layers=8), SUDOKU).effective_depth() == 8
    assert _meta_build(LoopedConfig(layers=2, loops=5), SUDOKU).effective_depth() == 10


@pytest.mark.parametrize("hidden,layers", [(512, 8), (64, 3), (96, 1)])
def test_transformer_param_formula_is_exact(hidden, layers):
    cfg = TransformerConfig(hidden=hidden, heads=8, layers=layers)
    built = _meta_build(cfg, SUDOKU).num_parameters()
    assert built == transformer_params(hidden, layers, SUDOKU.vocab_size, 4.0, 256)


@pytest.mark.parametrize("multiple,layers", [(1, 2), (4, 8), (16, 32)])
def test_match_params_by_layers(multiple, layers):
    trm = 6_828_034
    cfg = TransformerConfig(match_params=trm, match_multiple=multiple)
    model = _meta_build(cfg, SUDOKU)
    assert model.core.cfg.layers == layers
    assert model.effective_depth() == layers
    target = trm * multiple
    got = model.num_parameters()
    for other in (layers - 1, layers + 1):  # the chosen depth is the closest one
        alt = transformer_params(512, other, 11, 4.0, 256)
        assert abs(alt - target) >= abs(got - target)


def test_match_params_by_hidden_is_closest_multiple_of_heads():
    target = 6_828_034 * 4
    cfg = TransformerConfig(match_params=6_828_034, match_multiple=4, size_by="hidden", layers=4)
    model = _meta_build(cfg, SUDOKU)
    h = model.core.cfg.hidden
    assert h % 16 == 0 and model.core.cfg.layers == 4  # even head size for rotary
    got = model.num_parameters()
    assert abs(got - target) / target < 0.05
    for other in (h - 16, h + 16):
        assert abs(transformer_params(other, 4, 11, 4.0, 256) - target) >= abs(got - target)


def test_match_params_impossible_target_is_a_config_error():
    with pytest.raises(ConfigError, match="model.match_params"):
        _meta_build(TransformerConfig(match_params=1000), SUDOKU)


def test_rotary_needs_an_even_head_size():
    with pytest.raises(ValueError, match="even head size"):
        TRMConfig(hidden=24, heads=8)
    TRMConfig(hidden=24, heads=8, pos_encoding="none")
