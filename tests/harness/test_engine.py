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
        "name": "engine-test", "seed": 1, "runs_dir": str(runs_dir),
        "model": {"arch": "trm", "hidden": 32, "heads": 2, "T": 2, "n": 2, "halt_max_steps": 3,
                  "puzzle_emb_len": 0},
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


def params_of(run_dir, step):
    """The fp32 module weights stored in a checkpoint (DeepSpeed's model states file)."""
    path = checkpoint.step_dir(run_dir, step) / checkpoint.DS_TAG / "mp_rank_00_model_states.pt"
    state = torch.load(path, map_location="cpu", weights_only=False)["module"]
    return {k: v.float() for k, v in state.items()}


@pytest.mark.slow
def test_resume_gives_same_parameters_as_uninterrupted(runs_dir):
    """k steps, stop, resume to 2k == 2k straight: carry, sampler position, ACT exploration,
    optimizer, LR schedule and EMA are all restored exactly."""
    k = 4
    over = dict(train__steps=2 * k, train__lr_schedule="cosine", train__lr_warmup_steps=2,
                train__ema_decay=0.9)
    from harness.engine import lr_factor
    factors = [lr_factor(make_cfg(runs_dir, **over), s, 2 * k) for s in range(2 * k)]
    assert factors[k - 1] > factors[k] > factors[k + 1] > 0     # the split lies inside the decay
    straight = train(make_cfg(runs_dir, **over), runs_dir / "straight", progress=False)
    stop_at = {"n": 0}

    def should_stop():
        stop_at["n"] += 1
        return stop_at["n"] == k

    first = train(make_cfg(runs_dir, **over), runs_dir / "split", hooks=Hooks(should_stop=should_stop),
                  progress=False)
    assert first.step == k and checkpoint.latest(runs_dir / "split").name == f"step_{k:08d}"
    resumed = train(make_cfg(runs_dir, **over), runs_dir / "split",
                    resume_from=checkpoint.latest(runs_dir / "split"), progress=False)
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
    cfg = make_cfg(runs_dir, train__lr=1e30, train__steps=50, model={"arch": "transformer", "hidden": 32,
                   "heads": 2, "layers": 1, "halt_max_steps": 2})
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
        model={"arch": "transformer", "hidden": 64, "heads": 4, "layers": 2, "halt_max_steps": 2,
               "act": False},
        task={"name": "sudoku-4x4", "clues": 10},
        train={"steps": 600, "batch_size": 64, "lr": 3e-3, "lr_warmup_steps": 20,
               "lr_schedule": "cosine", "lr_min_ratio": 0.1, "log_every": 100, "eval_every": 100,
               "eval_examples": 500},
        seed=0)
    result = train(cfg, runs_dir / "learn", progress=False)
    accs = [h["exact_accuracy"] for h in result.history]
    assert accs[0] < 0.05, accs                      # it starts unable to solve puzzles
    assert result.metrics["exact_accuracy"] >= 0.20, accs
    assert result.metrics["token_accuracy"] >= 0.85, result.metrics


@pytest.mark.parametrize("grad_clip,optimizer", [(None, "adamw"), (0.05, "adamw"), (None, "adam_atan2")])
def test_engine_trains_exactly_like_a_bare_pytorch_loop(runs_dir, grad_clip, optimizer):
    """DeepSpeed adds no hidden maths: after a few steps the engine's weights equal those of the
    plain loop in the overhead benchmark (same data order, AdamW, schedule and clipping). This is
    what caught DeepSpeed's default clipping at 1.0 when `train.grad_clip` is null."""
    from benchmarks import build
    from benchmarks.registry import resolve
    from harness.bench.engine_overhead import bare_loop

    steps = 6
    cfg = make_cfg(runs_dir, model={"arch": "transformer", "hidden": 32, "heads": 2, "layers": 2,
                                    "halt_max_steps": 2, "act": False},
                   train__steps=steps, train__lr=3e-3, train__grad_clip=grad_clip,
                   train__optimizer=optimizer,
                   train__lr_schedule="cosine", train__lr_warmup_steps=2)
    train(cfg, runs_dir / "engine", progress=False)
    _, model = bare_loop(cfg, build(resolve(cfg.task), runs_dir / "data"), steps)
    ours, bare = params_of(runs_dir / "engine", steps), model.state_dict()
    assert ours.keys() == bare.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], bare[name].float(), rtol=1e-5, atol=1e-6, msg=name)


def test_deepspeed_is_imported_without_mlflow_and_mlflow_still_imports():
    """`rbench run` keeps MLflow out of the training process (it lives in the tracking process)."""
    import subprocess
    import sys
    code = ("import sys; from harness.engine import import_deepspeed; ds = import_deepspeed('cpu'); "
            "assert 'mlflow' not in sys.modules, 'mlflow imported'; assert hasattr(ds, 'initialize'); "
            "import mlflow; from mlflow.tracking import MlflowClient; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
