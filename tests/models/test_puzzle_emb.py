"""Puzzle embeddings: a fp32 buffer trained by sparse sign-SGD with decoupled weight decay,
identical on every worker after a distributed step."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from modelkit import make_batch, tiny_model


def _step_once(model, batch, lr=0.1, wd=0.5):
    _, loss, _, _ = model(model.initial_carry(batch), batch, generator=torch.Generator().manual_seed(0))
    loss.backward()
    model.puzzle_emb_step(lr, wd)


def _randomize_table(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.core.puzzle_emb.weights.copy_(torch.randn(model.core.puzzle_emb.weights.shape, generator=g))


def _dense_table_grad(model, batch) -> torch.Tensor:
    """The gradient w.r.t. the whole table, computed by making it a dense Parameter (reference)."""
    pe = model.core.puzzle_emb
    table = pe.weights
    pe.weights = nn.Parameter(table.clone())  # replaces the buffer for this computation
    try:
        _, loss, _, _ = model(model.initial_carry(batch), batch, generator=torch.Generator().manual_seed(0))
        loss.backward()
        return pe.weights.grad.clone()
    finally:
        del pe.weights
        pe.register_buffer("weights", table)
        pe._pending.clear()
        model.zero_grad(set_to_none=True)


def test_sign_sgd_with_decoupled_decay_on_used_rows_only():
    model = tiny_model("trm")
    _randomize_table(model)
    batch = make_batch(6)
    batch["puzzle_identifiers"] = torch.tensor([1, 3, 3, 1, 3, 0])  # duplicates; 2 and 4 unused
    before = model.core.puzzle_emb.weights.clone()
    g = _dense_table_grad(model, batch)  # sums over duplicate rows
    lr, wd = 0.1, 0.5
    _step_once(model, batch, lr, wd)
    after = model.core.puzzle_emb.weights
    for i in (0, 1, 3):
        assert g[i].abs().sum() > 0
        assert torch.allclose(after[i], before[i] * (1 - lr * wd) - lr * torch.sign(g[i]), atol=1e-6)
    for i in (2, 4):
        assert torch.equal(after[i], before[i])  # no decay on unused rows
    assert after.dtype == torch.float32
    model.puzzle_emb_step(lr, wd)  # nothing pending: no-op
    assert torch.equal(model.core.puzzle_emb.weights, after)


def test_table_stays_fp32_under_bf16_and_is_not_optimized_densely():
    model = tiny_model("hrm").bfloat16()
    assert model.core.lm_head.weight.dtype == torch.bfloat16
    assert model.core.puzzle_emb.weights.dtype == torch.float32
    batch = make_batch(4)
    _step_once(model, batch)
    assert model.core.puzzle_emb.weights[batch["puzzle_identifiers"]].abs().sum() > 0
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())


def test_eval_and_no_grad_forwards_leave_nothing_pending():
    model = tiny_model("trm")
    model.predict(make_batch(4))
    with torch.no_grad():
        model(model.initial_carry(make_batch(4)), make_batch(4))
    assert model.core.puzzle_emb._pending == []


def test_no_prefix_without_puzzle_embedding_len():
    model = tiny_model("trm", puzzle_emb_len=0)
    assert model.core.S == model.core.L
    model.puzzle_emb_step(0.1, 0.1)  # harmless no-op


# --- two workers (gloo) ------------------------------------------------------------------------


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = tiny_model("trm")
        _randomize_table(model)
        both = make_batch(8, seed=5)
        both["puzzle_identifiers"] = torch.tensor([1, 2, 2, 0, 2, 3, 3, 4])
        half = {k: v[rank * 4 : (rank + 1) * 4] for k, v in both.items()}  # 1 only on rank 0, 4 on 1
        _step_once(model, half)
        torch.save(model.core.puzzle_emb.weights, os.path.join(out_dir, f"table{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_workers_apply_the_same_sparse_update(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    t0 = torch.load(tmp_path / "table0.pt", weights_only=True)
    t1 = torch.load(tmp_path / "table1.pt", weights_only=True)
    assert torch.equal(t0, t1)
    # single-process reference on the union: per-row losses are independent, and the sign of the
    # summed per-worker gradients equals the sign of the union batch's gradient
    model = tiny_model("trm")
    _randomize_table(model)
    both = make_batch(8, seed=5)
    both["puzzle_identifiers"] = torch.tensor([1, 2, 2, 0, 2, 3, 3, 4])
    before = model.core.puzzle_emb.weights.clone()
    _step_once(model, both)
    assert torch.allclose(t0, model.core.puzzle_emb.weights, atol=1e-6)
    assert not torch.equal(t0[1], before[1]) and not torch.equal(t0[4], before[4])
