"""Data parallelism, checked on its maths: two gloo workers at global batch B train exactly like
one worker at batch B, hold identical weights, and evaluate a checkpoint exactly as one worker does.

The workers are two processes spawned here (torch.multiprocessing), each calling
`harness.engine.train` in a 2-process gloo group: the engine without Ray, as a Ray Train worker
runs it. ACT is off and exploration 0, so nothing in a step depends on the rank's random draws;
the sampler gives rank r the r-th half of the global batch a single worker would take.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from harness import checkpoint
from harness.config import validate

STEPS = 5


def make_cfg(runs_dir, zero_stage: int, **train):
    return validate(
        {
            "name": "dp-test",
            "seed": 3,
            "runs_dir": str(runs_dir),
            "model": {
                "arch": "trm",
                "hidden": 32,
                "heads": 2,
                "T": 2,
                "n": 1,
                "layers": 1,
                "halt_max_steps": 2,
                "act": False,
                "halt_exploration_prob": 0.0,
                "puzzle_emb_len": 2,
            },
            "task": {"name": "sudoku-4x4", "train_size": 128, "test_size": 40},
            "train": {
                "steps": STEPS,
                "batch_size": 16,
                "lr": 3e-3,
                "log_every": 1,
                "eval_examples": 33,
                "eval_batch_size": 5,
                "puzzle_emb_lr": 1e-2,
                **train,
            },
            "engine": {"zero_stage": zero_stage, "threads": 1},
            "tracking": {"enabled": False},
        },
        "test",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        DS_ACCELERATOR="cpu",
    )
    torch.set_num_threads(1)


def _capture_engine(store: dict) -> None:
    """Record the DeepSpeed engine `train` builds, to read this rank's weights afterwards."""
    import harness.engine as E

    real = E.import_deepspeed

    class Recording:
        def __init__(self, ds):
            self._ds = ds

        def __getattr__(self, name):
            return getattr(self._ds, name)

        def initialize(self, **kw):
            out = self._ds.initialize(**kw)
            store["engine"] = out[0]
            return out

    E.import_deepspeed = lambda device=None: Recording(real(device))


def _train_worker(
    rank: int, world: int, port: int, runs_dir: str, run_dir: str, zero_stage: int, out: str
) -> None:
    from harness.engine import train

    _join(rank, world, port)
    store: dict = {}
    _capture_engine(store)
    result = train(make_cfg(runs_dir, zero_stage), run_dir, progress=False)
    state = {k: v.detach().clone() for k, v in store["engine"].module.state_dict().items()}
    torch.save(
        {"state": state, "metrics": result.metrics, "step": result.step}, os.path.join(out, f"rank{rank}.pt")
    )


def _eval_worker(rank: int, world: int, port: int, runs_dir: str, ckpt_file: str, out: str) -> None:
    import torch.distributed as dist

    _join(rank, world, port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    metrics = _evaluate_checkpoint(runs_dir, ckpt_file, rank, world)
    torch.save(metrics, os.path.join(out, f"eval{rank}.pt"))
    dist.destroy_process_group()


def _evaluate_checkpoint(runs_dir, ckpt_file, rank, world) -> dict:
    from benchmarks import build
    from benchmarks.registry import resolve
    from harness.engine import evaluate
    from models import build_model

    cfg = make_cfg(runs_dir, 0)
    spec = resolve(cfg.task)
    data = build(spec, Path(cfg.runs_dir) / "data")
    model = build_model(cfg.model, data["train"].meta)
    model.load_state_dict(torch.load(ckpt_file, map_location="cpu", weights_only=True)["module"])
    metrics, _ = evaluate(model, spec, data["test"], cfg, torch.device("cpu"), rank, world)
    return metrics


def _train_here(runs_dir, run_dir, zero_stage: int, monkeypatch) -> dict:
    """The single worker, in this process (train joins or makes a 1-process group)."""
    import harness.engine as E

    monkeypatch.setattr(E, "import_deepspeed", E.import_deepspeed)  # undone after the test
    store: dict = {}
    _capture_engine(store)
    result = E.train(make_cfg(runs_dir, zero_stage), run_dir, progress=False)
    state = {k: v.detach().clone() for k, v in store["engine"].module.state_dict().items()}
    return {"state": state, "metrics": result.metrics, "step": result.step}


def _spawn(fn, world: int, *args) -> None:
    mp.start_processes(fn, args=(world, _free_port(), *args), nprocs=world, join=True, start_method="spawn")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """One dataset cache for every run here (built once, read by every worker)."""
    from benchmarks import build
    from benchmarks.registry import resolve

    runs = tmp_path_factory.mktemp("dp") / "runs"
    build(resolve(make_cfg(runs, 0).task), runs / "data")
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [0, 2])
def test_two_workers_train_like_one_worker_at_the_same_global_batch(
    data_root, tmp_path, zero_stage, monkeypatch
):
    one, two = tmp_path / "one", tmp_path / "two"
    two.mkdir()
    single = _train_here(data_root, one / "run", zero_stage, monkeypatch)
    _spawn(_train_worker, 2, str(data_root), str(two / "run"), zero_stage, str(two))
    r0, r1 = (torch.load(two / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert single["step"] == r0["step"] == r1["step"] == STEPS
    # both ranks hold identical weights (parameters and the puzzle-embedding table alike)
    assert r0["state"].keys() == r1["state"].keys() == single["state"].keys()
    for name in r0["state"]:
        assert torch.equal(r0["state"][name], r1["state"][name]), name
    # ... equal to the single worker's, to float rounding (the all-reduce sums in another order)
    moved = False
    init = _initial_state(data_root)
    for name, w in single["state"].items():
        torch.testing.assert_close(r0["state"][name], w, rtol=1e-4, atol=1e-5, msg=name)
        moved |= not torch.allclose(w, init[name])
    assert moved, "training did not change the weights"
    assert r0["metrics"] == r1["metrics"]
    assert r0["metrics"]["eval_examples"] == single["metrics"]["eval_examples"] == 33.0
    # the checkpoint records the world size it was written with
    assert checkpoint.read_state(checkpoint.latest(two / "run"))["world_size"] == 2


def _initial_state(runs_dir) -> dict:
    from benchmarks.registry import resolve
    from harness.seeding import seed_everything
    from models import build_model

    cfg = make_cfg(runs_dir, 0)
    seed_everything(cfg.seed)
    return build_model(cfg.model, resolve(cfg.task).meta).state_dict()


@pytest.mark.slow
def test_two_worker_evaluation_equals_one_worker_evaluation(data_root, tmp_path, monkeypatch):
    """The same checkpoint scored by 2 workers (33 examples: shards of 17 and 16, batches of 5)
    gives the 1-worker metrics exactly."""
    import torch.distributed as dist

    final = _train_here(data_root, tmp_path / "run", 0, monkeypatch)["metrics"]
    ckpt_file = checkpoint.latest(tmp_path / "run") / checkpoint.DS_TAG / "mp_rank_00_model_states.pt"
    assert dist.is_initialized() and dist.get_world_size() == 1  # the group train made here
    single = _evaluate_checkpoint(str(data_root), str(ckpt_file), 0, 1)
    _spawn(_eval_worker, 2, str(data_root), str(ckpt_file), str(tmp_path))
    e0, e1 = (torch.load(tmp_path / f"eval{r}.pt", weights_only=True) for r in (0, 1))
    assert e0 == e1 == single, (e0, e1, single)
    assert single["eval_examples"] == 33.0 and 0.0 < single["token_accuracy"] < 1.0
    # and the run's own final evaluation agrees with the re-evaluation
    assert {k: final[k] for k in single} == pytest.approx(single)
    assert np.isfinite(list(single.values())).all()
