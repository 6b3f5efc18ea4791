"""The engine end to end: DeepSpeed on CPU (gloo), deep supervision, evaluation, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import checkpoint
from harness.config import validate
from harness.engine import Hooks, TrainingDiverged, train


def make_cfg(runs_dir, **over):
    data = {
        "name": "engine-test",
        "seed": 1,
        "runs_dir": str(runs_dir),
        "model": {
            "arch": "trm",
            "hidden": 32,
            "heads": 2,
            "T": 2,
            "n": 2,
            "halt_max_steps": 3,
            "puzzle_emb_len": 0,
        },
        "task": {"name": "sudoku-4x4", "train_size": 256, "test_size": 64},
        "train": {"steps": 8, "batch_size": 16, "lr": 1e-3, "log_every": 2, "eval_examples": 32},
        "tracking": {"enabled": False},
    }
    for key, value in over.items():
        section, _, name = key.partition("__")
        if name:
            data.setdefault(section, {})[name] = value
        else:
            data[section] = value
    return validate(data, "test")


def params_of(run_dir, step, dtype=torch.float32):
    """The module weights stored in a checkpoint (DeepSpeed's model states file), as `dtype`."""
    path = checkpoint.step_dir(run_dir, step) / checkpoint.DS_TAG / "mp_rank_00_model_states.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)["module"]
    return {k: v.to(dtype) for k, v in state.items()}


def stored_weight_dtypes(run_dir, step) -> set:
    """dtypes of the stored layer weights (parameters; buffers such as rotary tables stay fp32)."""
    path = checkpoint.step_dir(run_dir, step) / checkpoint.DS_TAG / "mp_rank_00_model_states.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)["module"]
    return {v.dtype for k, v in state.items() if k.endswith(".weight")}


@pytest.mark.slow
@pytest.mark.parametrize(
    "zero_stage,precision", [(0, "fp32"), (1, "fp32"), (2, "fp32"), (0, "bf16"), (2, "bf16")]
)
def test_resume_gives_same_parameters_as_uninterrupted(runs_dir, zero_stage, precision):
    """k steps, stop, resume to 2k == 2k straight: carry, sampler position, ACT exploration,
    optimizer (ZeRO-partitioned or not; bf16's fp32 master weights), LR schedule and EMA are all
    restored exactly."""
    k = 4
    over = dict(
        train__steps=2 * k,
        train__lr_schedule="cosine",
        train__lr_warmup_steps=2,
        train__ema_decay=0.9,
        engine__zero_stage=zero_stage,
        engine__precision=precision,
    )
    from harness.engine import lr_factor

    factors = [lr_factor(make_cfg(runs_dir, **over), s, 2 * k) for s in range(2 * k)]
    assert factors[k - 1] > factors[k] > factors[k + 1] > 0  # the split lies inside the decay
    straight = train(make_cfg(runs_dir, **over), runs_dir / "straight", progress=False)
    stop_at = {"n": 0}

    def should_stop():
        stop_at["n"] += 1
        return stop_at["n"] == k

    first = train(
        make_cfg(runs_dir, **over), runs_dir / "split", hooks=Hooks(should_stop=should_stop), progress=False
    )
    assert first.step == k and checkpoint.latest(runs_dir / "split").name == f"step_{k:08d}"
    resumed = train(
        make_cfg(runs_dir, **over),
        runs_dir / "split",
        resume_from=checkpoint.latest(runs_dir / "split"),
        progress=False,
    )
    assert resumed.step == 2 * k
    a, b = params_of(runs_dir / "straight", 2 * k), params_of(runs_dir / "split", 2 * k)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    # and the run did move: weights after 2k steps differ from those after k
    mid = params_of(runs_dir / "split", k) if checkpoint.step_dir(runs_dir / "split", k).exists() else None
    if mid is not None:
        assert any(not torch.allclose(mid[n], b[n]) for n in b)
    assert resumed.metrics == pytest.approx(straight.metrics)
    assert resumed.flops == pytest.approx(straight.flops)


def test_flops_budget_sets_the_step_count(runs_dir):
    cfg = make_cfg(runs_dir, train__steps=1000)
    from models import build_model
    from benchmarks.registry import resolve
    from benchmarks import build

    data = build(resolve(cfg.task), runs_dir / "data")
    per_step = build_model(cfg.model, data["train"].meta).flops_per_example("train") * 16
    cfg = make_cfg(runs_dir, train__steps=1000, train__flops_budget=float(per_step * 3.5))
    result = train(cfg, runs_dir / "budget", progress=False)
    assert result.step == 3
    assert result.flops == pytest.approx(3 * per_step)


def test_divergence_raises_with_step(runs_dir):
    cfg = make_cfg(
        runs_dir,
        train__lr=1e30,
        train__steps=50,
        model={"arch": "transformer", "hidden": 32, "heads": 2, "layers": 1, "halt_max_steps": 2},
    )
    with pytest.raises(TrainingDiverged) as ei:
        train(cfg, runs_dir / "nan", progress=False)
    assert 0 <= ei.value.step < 50 and not np.isfinite(ei.value.loss)


def test_checkpoints_are_pruned_and_marked_complete(runs_dir):
    cfg = make_cfg(runs_dir, train__steps=6, train__checkpoint_every=2, train__keep_checkpoints=2)
    result = train(cfg, runs_dir / "ck", progress=False)
    names = sorted(p.name for p in (runs_dir / "ck" / "checkpoints").iterdir())
    assert names == ["step_00000004", "step_00000006"]
    assert result.checkpoint_dir.name == "step_00000006" and checkpoint.is_complete(result.checkpoint_dir)
    state = checkpoint.read_state(result.checkpoint_dir)
    assert state["step"] == 6 and "exact_accuracy" in state["metrics"]
    # an interrupted save (no state.json) is never picked for resume
    (runs_dir / "ck" / "checkpoints" / "step_00000008").mkdir()
    assert checkpoint.latest(runs_dir / "ck").name == "step_00000006"


@pytest.mark.slow
def test_baseline_learns_4x4_sudoku(runs_dir):
    """The direct-prediction transformer, trained through the real engine (DeepSpeed, deep
    supervision), solves a stated share of held-out 4x4 puzzles within a fixed budget.
    Measured: 33% exact after 600 steps (seed 0); an untrained model solves 0%."""
    cfg = make_cfg(
        runs_dir,
        model={
            "arch": "transformer",
            "hidden": 64,
            "heads": 4,
            "layers": 2,
            "halt_max_steps": 2,
            "act": False,
        },
        task={"name": "sudoku-4x4", "clues": 10},
        train={
            "steps": 600,
            "batch_size": 64,
            "lr": 3e-3,
            "lr_warmup_steps": 20,
            "lr_schedule": "cosine",
            "lr_min_ratio": 0.1,
            "log_every": 100,
            "eval_every": 100,
            "eval_examples": 500,
        },
        seed=0,
    )
    result = train(cfg, runs_dir / "learn", progress=False)
    accs = [h["exact_accuracy"] for h in result.history]
    assert accs[0] < 0.05, accs  # it starts unable to solve puzzles
    assert result.metrics["exact_accuracy"] >= 0.20, accs
    assert result.metrics["token_accuracy"] >= 0.85, result.metrics


BARE_MODEL = {"arch": "transformer", "hidden": 32, "heads": 2, "layers": 2, "halt_max_steps": 2, "act": False}


@pytest.mark.parametrize(
    "zero_stage,grad_clip,optimizer",
    [(0, None, "adamw"), (0, 0.05, "adamw"), (1, None, "adamw"), (2, 0.05, "adamw"), (0, None, "adam_atan2")],
)
def test_engine_trains_exactly_like_a_bare_pytorch_loop(runs_dir, zero_stage, grad_clip, optimizer):
    """DeepSpeed adds no hidden maths: after a few steps the engine's weights equal those of the
    plain loop in the overhead benchmark (same data order, AdamW, schedule and clipping), with
    ZeRO 1 and 2 (flattened, partitioned optimizer; the clipping norm taken over partitions) as
    without. This is what caught DeepSpeed's default clipping at 1.0 when `train.grad_clip` is null."""
    from benchmarks import build
    from benchmarks.registry import resolve
    from harness.bench.engine_overhead import bare_loop

    steps = 6
    cfg = make_cfg(
        runs_dir,
        model=BARE_MODEL,
        train__steps=steps,
        train__lr=3e-3,
        train__grad_clip=grad_clip,
        train__optimizer=optimizer,
        train__lr_schedule="cosine",
        train__lr_warmup_steps=2,
        engine__zero_stage=zero_stage,
    )
    train(cfg, runs_dir / "engine", progress=False)
    _, model = bare_loop(cfg, build(resolve(cfg.task), runs_dir / "data"), steps)
    ours, bare = params_of(runs_dir / "engine", steps), model.state_dict()
    assert ours.keys() == bare.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], bare[name].float(), rtol=1e-5, atol=1e-6, msg=name)


def bare_bf16_loop(cfg, data, steps: int):
    """The bare loop of the overhead benchmark in bf16 as DeepSpeed does it: bf16 parameters for
    forward and backward, fp32 master weights that AdamW updates, copied back rounded to bf16."""
    from benchmarks.sampler import GroupSampler
    from harness.engine import lr_factor, to_batch
    from harness.seeding import seed_everything, step_generator
    from models import build_model

    train_ds = data["train"]
    seed_everything(cfg.seed)
    model = build_model(cfg.model, train_ds.meta)
    params = [p for p in model.parameters() if p.requires_grad]
    master = [p.detach().bfloat16().float().requires_grad_(True) for p in params]
    for p in model.parameters():  # DeepSpeed casts every parameter (not the buffers)
        p.data = p.data.bfloat16()
    opt = torch.optim.AdamW(
        master, lr=cfg.train.lr, betas=cfg.train.betas, weight_decay=cfg.train.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s, steps))
    batches = GroupSampler(train_ds, cfg.train.batch_size, seed=cfg.seed).batches()
    carry = None
    model.train()
    for step in range(steps):
        batch = to_batch(train_ds, next(batches), torch.device("cpu"))
        carry = model.initial_carry(batch) if carry is None else carry
        carry, loss, _, _ = model(carry, batch, generator=step_generator(cfg.seed, 0, step))
        for p in params:
            p.grad = None
        loss.backward()
        for m, p in zip(master, params):
            m.grad = None if p.grad is None else p.grad.float()
        opt.step()
        sched.step()
        with torch.no_grad():
            for m, p in zip(master, params):
                p.copy_(m)
    return model


@pytest.mark.parametrize("zero_stage", [0, 1, 2])
def test_bf16_on_cpu_trains_like_a_bare_bf16_loop(runs_dir, zero_stage):
    """`engine.precision: bf16` on CPU: DeepSpeed keeps bf16 weights (what the checkpoint stores)
    and fp32 master weights; after a few steps they equal a bare bf16 loop with fp32 masters (to
    one bf16 rounding), and differ from the fp32 run by more than that. At ZeRO 0 this caught
    DeepSpeed's zero-gradient Adam step at optimizer set-up (see engine.undo_init_step)."""
    from benchmarks import build
    from benchmarks.registry import resolve

    steps = 6
    over = dict(
        model=BARE_MODEL,
        train__steps=steps,
        train__lr=3e-3,
        train__lr_schedule="cosine",
        train__lr_warmup_steps=2,
        engine__zero_stage=zero_stage,
    )
    train(make_cfg(runs_dir, **over, engine__precision="bf16"), runs_dir / "bf16", progress=False)
    train(make_cfg(runs_dir, **over, engine__precision="fp32"), runs_dir / "fp32", progress=False)
    assert stored_weight_dtypes(runs_dir / "bf16", steps) == {torch.bfloat16}
    assert stored_weight_dtypes(runs_dir / "fp32", steps) == {torch.float32}
    cfg = make_cfg(runs_dir, **over)
    bare = {
        k: v.float()
        for k, v in bare_bf16_loop(cfg, build(resolve(cfg.task), runs_dir / "data"), steps)
        .state_dict()
        .items()
    }
    ours, fp32 = params_of(runs_dir / "bf16", steps), params_of(runs_dir / "fp32", steps)
    assert ours.keys() == bare.keys()
    for name in ours:  # one bf16 ulp is 2**-8 relative
        torch.testing.assert_close(ours[name], bare[name], rtol=2**-7, atol=1e-5, msg=name)
    off = [float((ours[n] - bare[n]).abs().max()) for n in ours]
    gap = [float((ours[n] - fp32[n]).abs().max()) for n in ours]
    assert max(gap) > 4 * max(max(off), 1e-6), (max(gap), max(off))


def test_ema_with_zero3_is_refused_and_runs_at_stage_2(runs_dir):
    """ZeRO-3 shards the parameters, so EMA (whole weights on every worker) is refused before any
    work, with one line naming the key; the same config at stage 2 runs, and stage 3 without EMA."""
    from harness.errors import ConfigError

    cfg = make_cfg(runs_dir, train__steps=1, engine__zero_stage=3, train__ema_decay=0.9)
    with pytest.raises(ConfigError) as ei:
        train(cfg, runs_dir / "refused", progress=False)
    assert ei.value.key == "train.ema_decay" and "zero_stage" in str(ei.value)
    assert "\n" not in str(ei.value) and not (runs_dir / "refused").exists()
    ok = make_cfg(runs_dir, train__steps=1, engine__zero_stage=2, train__ema_decay=0.9)
    assert train(ok, runs_dir / "stage2", progress=False).step == 1
    assert (
        train(
            make_cfg(runs_dir, train__steps=1, engine__zero_stage=3), runs_dir / "stage3", progress=False
        ).step
        == 1
    )


def test_deepspeed_is_imported_without_mlflow_and_mlflow_still_imports():
    """`rbench run` keeps MLflow out of the training process (it lives in the tracking process)."""
    import subprocess
    import sys

    code = (
        "import sys; from harness.engine import import_deepspeed; ds = import_deepspeed('cpu'); "
        "assert 'mlflow' not in sys.modules, 'mlflow imported'; assert hasattr(ds, 'initialize'); "
        "import mlflow; from mlflow.tracking import MlflowClient; print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


@pytest.mark.slow
def test_a_one_process_cpu_run_compiles_no_deepspeed_op(tmp_path, experiment_file):
    """DeepSpeed would JIT-compile its shared-memory all-reduce (minutes on a fresh machine) for a
    single process that never calls it; the engine marks it incompatible instead."""
    import os
    import subprocess
    import sys

    exts = tmp_path / "torch_extensions"
    exts.mkdir()
    cfg = experiment_file(
        tmp_path / "exp.yaml", tmp_path / "runs", train={"steps": 4}, tracking={"enabled": False}
    )
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(exts))
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not list(exts.rglob("*")), sorted(p.name for p in exts.rglob("*"))
