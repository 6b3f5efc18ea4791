"""EMA through DeepSpeed with bf16 compute (on CPU): an fp32 average of the fp32 master weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness import checkpoint
from harness.engine import Hooks, train
from test_engine import make_cfg

DECAY, STEPS = 0.99, 12


def bf16_cfg(runs_dir, **over):
    return make_cfg(
        runs_dir,
        engine={"precision": "bf16", "device": "cpu"},
        train__ema_decay=DECAY,
        train__lr=1e-3,
        **over,
    )


def masters_at(path, zero_stage: int = 0, names: list[str] | None = None) -> list[torch.Tensor]:
    """The weights DeepSpeed wrote into a checkpoint: at ZeRO stage 0 its bf16 optimizer's fp32
    master weights; under ZeRO 1/2 (masters in flat partitions) the module's bf16 weights, which
    are those masters rounded (so the comparison below still holds to bf16 rounding)."""
    state = torch.load(
        path / checkpoint.DS_TAG / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False
    )
    if zero_stage == 0:
        return [t.float().clone() for group in state["optimizer"]["fp32_groups"] for t in group]
    return [state["module"][n].float().clone() for n in names]


def initial_weights(cfg) -> dict[str, torch.Tensor]:
    """The fp32 weights the engine builds (same seed, same task shape) before DeepSpeed casts."""
    from benchmarks import build
    from benchmarks.registry import resolve
    from harness.seeding import seed_everything
    from models import build_model

    meta = build(resolve(cfg.task), Path(cfg.runs_dir) / "data")["train"].meta
    seed_everything(cfg.seed)
    return {n: p.detach().clone() for n, p in build_model(cfg.model, meta).named_parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [0, 1, 2])
def test_bf16_ema_equals_an_fp32_ema_of_the_master_weights(runs_dir, zero_stage):
    cfg = bf16_cfg(runs_dir, train__steps=STEPS, train__checkpoint_every=1, train__keep_checkpoints=100)
    cfg = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"zero_stage": zero_stage})})
    init_named = initial_weights(cfg)
    init = list(init_named.values())
    seen: dict[int, list[torch.Tensor]] = {}
    result = train(
        cfg,
        runs_dir / "bf16",
        progress=False,
        hooks=Hooks(
            on_checkpoint=lambda step, path, _: seen.setdefault(
                step, masters_at(path, zero_stage, list(init_named))
            )
        ),
    )
    assert sorted(seen) == list(range(1, STEPS + 1))
    ref = [w.clone() for w in init]
    for step in range(1, STEPS + 1):  # the fp32 EMA computed alongside
        for r, w in zip(ref, seen[step]):
            r.mul_(DECAY).add_(w, alpha=1 - DECAY)
    ema = checkpoint.load_tensors(result.checkpoint_dir / "ema.pt", torch.device("cpu"))
    names = [n for n in ema if n != "n_averaged"]
    assert len(names) == len(ref)
    along = moved_ref = 0.0
    for name, r, w0 in zip(names, ref, init):
        e = ema[name]
        assert e.dtype == torch.float32, name
        # within bf16 rounding of the result
        torch.testing.assert_close(e, r, rtol=2**-8, atol=1e-6, msg=name)
        along += ((e - w0) * (r - w0)).sum().item()
        moved_ref += (r - w0).square().sum().item()
    # how far the EMA moved from the initial weights along the reference's path, as a fraction of
    # the reference's distance (a projection: bf16 rounding noise of a stuck shadow does not count)
    assert moved_ref > 0
    assert along / moved_ref > 0.5, along / moved_ref


@pytest.mark.slow
def test_bf16_ema_is_restored_exactly_on_resume(runs_dir):
    k = 3
    straight = train(bf16_cfg(runs_dir, train__steps=2 * k), runs_dir / "straight", progress=False)
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] == k

    train(
        bf16_cfg(runs_dir, train__steps=2 * k),
        runs_dir / "split",
        hooks=Hooks(should_stop=stop),
        progress=False,
    )
    resumed = train(
        bf16_cfg(runs_dir, train__steps=2 * k),
        runs_dir / "split",
        progress=False,
        resume_from=checkpoint.latest(runs_dir / "split"),
    )
    a = checkpoint.load_tensors(straight.checkpoint_dir / "ema.pt", torch.device("cpu"))
    b = checkpoint.load_tensors(resumed.checkpoint_dir / "ema.pt", torch.device("cpu"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert resumed.metrics == pytest.approx(straight.metrics)


def test_ema_shares_buffers_instead_of_copying_them():
    """The puzzle-embedding table (a buffer, GBs for ARC) is never copied into the shadow or the
    bf16 evaluation copy: evaluation sees the trained module's current table."""
    from benchmarks.dataset import DatasetMeta
    from harness.ema import EMA
    from harness.model_config import TRMConfig
    from models import build_model

    torch.manual_seed(0)
    model = build_model(
        TRMConfig(hidden=16, heads=2, layers=1, T=1, n=1, ffn_multiple=16, puzzle_emb_len=2),
        DatasetMeta("t", seq_len=4, vocab_size=5, num_puzzle_identifiers=1000),
    )
    ema = EMA(model, 0.9)
    table = model.core.puzzle_emb.weights
    for dtype in (torch.float32, torch.bfloat16):
        ev = ema.eval_model(dtype)
        assert ev.core.puzzle_emb.weights.data_ptr() == table.data_ptr()
        assert next(ev.parameters()).dtype == dtype
    table[3] += 1.0  # a sign-SGD step on the live table
    assert ema.eval_model(torch.bfloat16).core.puzzle_emb.weights[3].eq(1.0).all()
    assert all(p.dtype == torch.float32 for p in ema.shadow.parameters())
