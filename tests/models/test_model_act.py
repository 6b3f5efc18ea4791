"""The shared deep-supervision / ACT wrapper: carry, data replacement, halting, losses, predict."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from benchmarks.dataset import IGNORE_LABEL_ID
from models.losses import stablemax_cross_entropy
from modelkit import make_batch, tiny_model

ARCHS = ["transformer", "trm", "trm-mlp", "hrm", "looped"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("arch", ARCHS)
def test_initial_carry_is_flat_all_halted_and_checkpointable(arch):
    model = tiny_model(arch)
    batch = make_batch(4)
    carry = model.initial_carry(batch)
    assert all(isinstance(v, torch.Tensor) for v in carry.values())
    assert carry["halted"].all()
    carry, loss, metrics, _ = model(carry, batch, generator=gen(0))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert {"lm_loss", "token_accuracy", "exact_accuracy", "steps"} <= set(metrics)
    assert all(m.dim() == 0 for m in metrics.values())
    assert not any(v.requires_grad for v in carry.values())
    buf = io.BytesIO()
    torch.save(carry, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=True)
    assert back.keys() == carry.keys() and all(torch.equal(back[k], carry[k]) for k in carry)


@pytest.mark.parametrize("arch", ["trm", "hrm"])
def test_halted_rows_take_fresh_data_and_reset_latents(arch):
    model = tiny_model(arch)
    first, second = make_batch(4, seed=1), make_batch(4, seed=2)
    carry, _, _, _ = model(model.initial_carry(first), first, generator=gen(0))
    assert torch.equal(carry["inputs"], first["inputs"]) and (carry["steps"] == 1).all()
    carry["halted"] = torch.tensor([True, False, True, False])
    new, _, _, out = model(carry, second, generator=gen(1))
    assert torch.equal(new["inputs"][[0, 2]], second["inputs"][[0, 2]])
    assert torch.equal(new["inputs"][[1, 3]], first["inputs"][[1, 3]])
    assert new["steps"].tolist() == [1, 2, 1, 2]
    # a reset row computes exactly what a fresh carry computes on that example
    fresh, _, _, fresh_out = model(model.initial_carry(second), second, generator=gen(1))
    for name in model.core.latent_names:
        assert torch.allclose(new[name][[0, 2]], fresh[name][[0, 2]], atol=1e-6)
        assert not torch.allclose(new[name][[1, 3]], fresh[name][[1, 3]], atol=1e-3)


def _always_halt(model):
    with torch.no_grad():
        model.core.q_head.bias[0] = 10.0  # q_halt >> 0 (TRM rule) ...
        model.core.q_head.bias[1] = -10.0  # ... and q_halt > q_continue (HRM rule)


@pytest.mark.parametrize("arch", ["trm", "hrm"])
def test_train_mode_halts_early_eval_mode_never(arch):
    model = tiny_model(arch, halt_max_steps=4, halt_exploration_prob=0.0)
    _always_halt(model)
    batch = make_batch(4)
    carry, _, m, _ = model(model.initial_carry(batch), batch, generator=gen(0))
    assert carry["halted"].all() and m["halt_rate"] == 1
    model.eval()
    carry = model.initial_carry(batch)
    for step in range(1, 5):
        carry, _, _, _ = model(carry, batch, generator=gen(step))
        assert carry["halted"].all() == (step == 4)


def test_act_false_runs_every_segment_without_q_loss():
    model = tiny_model("trm", act=False, halt_max_steps=3)
    _always_halt(model)
    batch = make_batch(4)
    carry = model.initial_carry(batch)
    for step in range(1, 4):
        carry, loss, m, _ = model(carry, batch, generator=gen(step))
        assert carry["halted"].all() == (step == 3)
        assert torch.allclose(loss, m["lm_loss"])
    loss.backward()
    assert model.core.q_head.weight.grad is None  # the halting head is not trained


def test_exploration_draws_a_minimum_from_the_generator():
    model = tiny_model("trm", halt_max_steps=8, halt_exploration_prob=1.0)
    _always_halt(model)
    batch = make_batch(64)

    def halting_steps(seed):
        carry, out = model.initial_carry(batch), torch.zeros(64, dtype=torch.int32)
        for step in range(8):
            carry, _, _, _ = model(carry, batch, generator=gen(seed * 100 + step))
            out = torch.where(carry["halted"] & (out == 0), carry["steps"], out)  # first halt
            if (out != 0).all():
                break
        return out

    a, b, c = halting_steps(1), halting_steps(1), halting_steps(2)
    assert torch.equal(a, b)  # reproducible from the generator alone
    assert not torch.equal(a, c)
    assert a.min() >= 2 and a.max() <= 8  # the forced minimum is in 2..halt_max_steps
    assert len(set(a.tolist())) >= 4


def test_lm_loss_is_a_per_sequence_mean_and_trm_adds_half_halt_bce():
    model = tiny_model("trm")
    batch = make_batch(3)
    latents = model.core.init_latents(3)
    _, logits, q = model.core(latents, batch)
    tok = stablemax_cross_entropy(logits, batch["labels"])
    mask = batch["labels"] != IGNORE_LABEL_ID
    lm = torch.stack([tok[i][mask[i]].mean() for i in range(3)]).mean()
    correct = ((logits.argmax(-1) == batch["labels"]) | ~mask).all(-1).float()
    halt = F.binary_cross_entropy_with_logits(q[:, 0], correct)
    _, loss, m, _ = model(model.initial_carry(batch), batch, generator=gen(0))
    assert torch.allclose(m["lm_loss"].double(), lm)
    assert torch.allclose(loss.double(), lm + 0.5 * halt, atol=1e-6)


def test_hrm_adds_the_q_continue_target_from_an_extra_pass():
    model = tiny_model("hrm", halt_max_steps=4)
    with torch.no_grad():  # make q informative
        model.core.q_head.weight.normal_(0, 0.3)
    batch = make_batch(3)
    carry, loss, m, _ = model(model.initial_carry(batch), batch, generator=gen(0))
    latents = {n: carry[n] for n in model.core.latent_names}
    _, _, q_next = model.core(latents, batch, need_logits=False)
    _, _, q = model.core(model.core.init_latents(3), batch)
    target = torch.sigmoid(torch.maximum(q_next[:, 0], q_next[:, 1]))  # step 1 < 4: not last
    cont = F.binary_cross_entropy_with_logits(q[:, 1], target)
    assert torch.allclose(m["q_continue_loss"], cont, atol=1e-6)
    assert torch.allclose(loss, m["lm_loss"] + 0.5 * (m["q_halt_loss"] + cont), atol=1e-5)


@pytest.mark.parametrize("arch", ["trm", "hrm", "looped"])
def test_predict_runs_all_segments_like_eval_forward(arch):
    model = tiny_model(arch, halt_max_steps=3)
    batch = make_batch(4)
    preds, q_halt = model.predict(batch)
    assert preds.shape == batch["inputs"].shape and q_halt.shape == (4,)
    model.eval()
    carry = model.initial_carry(batch)
    for step in range(3):
        carry, _, _, out = model(carry, batch, generator=gen(step))
    assert torch.equal(out["preds"], preds)
    assert torch.allclose(out["q_halt_logits"], q_halt, atol=1e-6)


def test_training_is_deterministic_given_the_generator():
    results = []
    for _ in range(2):
        model = tiny_model("hrm", seed=3)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        carry = None
        for step in range(3):
            batch = make_batch(4, seed=step)
            carry = carry if carry is not None else model.initial_carry(batch)
            carry, loss, _, _ = model(carry, batch, generator=gen(step))
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.puzzle_emb_step(1e-2, 0.1)
        results.append((loss.item(), carry["z_H"].clone()))
    assert results[0][0] == results[1][0] and torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("arch", ["trm", "hrm"])
def test_bf16_parameters_with_fp32_buffers(arch):
    """DeepSpeed's bf16 mode casts parameters but not buffers: the latents follow the parameters."""
    model = tiny_model(arch)
    for p in model.parameters():
        p.data = p.data.bfloat16()
    batch = make_batch(4)
    carry = model.initial_carry(batch)
    carry, loss, _, _ = model(carry, batch, generator=gen(0))
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(carry[n].dtype == torch.bfloat16 for n in model.core.latent_names)
    assert model.core.puzzle_emb.weights.dtype == torch.float32
    preds, q = model.predict(batch)
    assert preds.shape == batch["labels"].shape and q.dtype == torch.float32


def _informative_q(model, halt_bias: float = -2.0, continue_bias: float = 2.0):
    """Random q-head weights, and q_continue above q_halt on average (so max(q_halt, q_continue)
    differs from q_halt, and HRM's rule q_halt > q_continue does not halt early)."""
    with torch.no_grad():
        model.core.q_head.weight.normal_(0, 0.1, generator=gen(7))
        model.core.q_head.bias.copy_(torch.tensor([halt_bias, continue_bias]))


def test_hrm_q_target_on_the_last_step_is_the_next_q_halt():
    """Rows whose segment is the last (steps == halt_max_steps) take target sigmoid(next q_halt);
    the others sigmoid(max(next q_halt, next q_continue)) (HRM paper, eq. for G_continue)."""
    model = tiny_model("hrm", halt_max_steps=4, halt_exploration_prob=0.0)
    _informative_q(model)
    batch = make_batch(4)
    carry, _, _, _ = model(model.initial_carry(batch), batch, generator=gen(0))
    assert not carry["halted"].any()
    carry["steps"] = torch.tensor([3, 3, 1, 2], dtype=torch.int32)  # rows 0, 1 now run step 4
    before = {n: carry[n].clone() for n in model.core.latent_names}
    new, _, m, _ = model(carry, batch, generator=gen(1))
    assert new["steps"].tolist() == [4, 4, 2, 3] and new["halted"].tolist()[:2] == [True, True]

    with torch.no_grad():
        _, _, q = model.core(before, batch)  # this segment's q
        _, _, q_next = model.core({n: new[n] for n in model.core.latent_names}, batch, need_logits=False)
    is_last = torch.tensor([True, True, False, False])
    target = torch.where(is_last, q_next[:, 0], torch.maximum(q_next[:, 0], q_next[:, 1]))
    expected = F.binary_cross_entropy_with_logits(q[:, 1], torch.sigmoid(target))
    torch.testing.assert_close(m["q_continue_loss"], expected, rtol=1e-5, atol=1e-6)
    # and the branch matters here: the max-everywhere target gives a different loss
    assert (q_next[:2, 1] > q_next[:2, 0]).all()
    wrong = F.binary_cross_entropy_with_logits(
        q[:, 1], torch.sigmoid(torch.maximum(q_next[:, 0], q_next[:, 1]))
    )
    assert abs(float(wrong - expected)) > 1e-3


def test_hrm_q_target_is_detached():
    """Gradients of the model's loss equal those of the same loss built by hand with the target
    explicitly `.detach()`ed, and differ from the loss whose target keeps its graph."""
    model = tiny_model("hrm", halt_max_steps=4, halt_exploration_prob=0.0, puzzle_emb_len=0)
    _informative_q(model)
    batch = make_batch(3)
    params = [p for p in model.parameters() if p.requires_grad]

    def grads(loss):
        model.zero_grad(set_to_none=True)
        loss.backward()
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]

    _, loss, _, _ = model(model.initial_carry(batch), batch, generator=gen(0))
    g_model = grads(loss)

    def hand_loss(detach: bool):
        core = model.core
        latents, logits, q = core(core.init_latents(3), batch)
        mask = batch["labels"] != IGNORE_LABEL_ID
        tok = stablemax_cross_entropy(logits, batch["labels"])
        lm = torch.stack([tok[i][mask[i]].mean() for i in range(3)]).mean()
        correct = ((logits.argmax(-1) == batch["labels"]) | ~mask).all(-1).float()
        halt = F.binary_cross_entropy_with_logits(q[:, 0], correct)
        _, _, q_next = core(latents, batch, need_logits=False)  # step 1 of 4: the max branch
        target = torch.maximum(q_next[:, 0], q_next[:, 1])
        target = target.detach() if detach else target
        cont = F.binary_cross_entropy_with_logits(q[:, 1], torch.sigmoid(target))
        return lm.float() + 0.5 * (halt + cont)

    g_detached, g_attached = grads(hand_loss(True)), grads(hand_loss(False))
    for _p, a, b in zip(params, g_model, g_detached):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    diff = max(float((a - b).abs().max()) for a, b in zip(g_model, g_attached))
    assert diff > 1e-4, diff  # a target that kept its graph would train the next step's q too
