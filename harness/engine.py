"""The training engine: one run of one config, as a plain function.

    train(cfg, run_dir) ->  data -> model -> DeepSpeed engine -> deep-supervision loop -> eval -> checkpoints

It knows nothing of Ray or MLflow: callers observe it through `Hooks`. If torch.distributed is already
initialised (a Ray Train worker) it joins that process group; otherwise it makes a one-process group.
Rank 0 writes config.yaml and provenance.json (commit, packages, command) into the run folder.

Deep supervision: a carry (latents, segment count, halted flag, current example) lives across
optimizer steps. Every step runs ONE supervision segment for the whole batch and one optimizer step;
rows that halted take a fresh example from the step's batch (the model does the swap). Evaluation
runs all `halt_max_steps` segments (no early halt).
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.dataset import PuzzleDataset, holdout, subset
from harness import checkpoint as ckpt
from harness.config import ExperimentConfig
from harness.device import Runtime, local_device, resolve_runtime
from harness.ema import EMA, master_weights
from harness.errors import ConfigError
from harness.optim import build_optimizer
from harness.preflight import check_layout
from harness.progress import Progress
from harness.provenance import write_provenance
from harness.seeding import seed_everything, step_generator


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. Raised on every rank at the same step."""

    def __init__(self, step: int, loss: float):
        self.step, self.loss = step, loss
        super().__init__(f"training diverged at step {step}: loss is {loss}")


@dataclass
class Hooks:
    on_log: Callable[[int, dict[str, float]], None] | None = None  # rank 0
    on_eval: Callable[[int, dict[str, float]], None] | None = None  # rank 0
    on_checkpoint: Callable[[int, Path, dict[str, float]], None] | None = None  # every rank
    should_stop: Callable[[], bool] | None = None  # checked after each step


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    metrics: dict[str, float]  # final evaluation
    flops: float  # cumulative training FLOPs (all workers)
    checkpoint_dir: Path | None
    num_parameters: int
    effective_depth: int
    history: list[dict] = field(default_factory=list)  # eval metrics per evaluation (rank 0)
    puzzle_embedding_entries: int = 0  # size of the puzzle-embedding table (not in num_parameters)


# ---------------------------------------------------------------------------------------------
# Set-up stages


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def import_deepspeed(device: str | None = None):
    """`import deepspeed` (for `device`: "cpu" pins its CPU accelerator), minus the eager
    `import mlflow` in its autotuner.

    DeepSpeed's autotuner (unused here) imports MLflow at import time: ~1.7 s of start-up on the
    training process, while `rbench run` does its MLflow work in a helper process. Hiding the name
    for the length of the import makes the autotuner see MLflow as absent. (No other thread of
    this process may import MLflow meanwhile; rbench never does so in a thread.)
    """
    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before DeepSpeed picks an accelerator
    if "deepspeed" not in sys.modules and "mlflow" not in sys.modules:
        sys.modules["mlflow"] = None  # `import mlflow` now raises ImportError
        try:
            import deepspeed  # noqa: F401
        finally:
            if sys.modules.get("mlflow", 0) is None:
                del sys.modules["mlflow"]
    import deepspeed

    return deepspeed


def init_distributed(rt: Runtime) -> tuple[int, int]:
    """Join the existing process group, or create a single-process one (no launcher needed)."""
    deepspeed = import_deepspeed(rt.device)
    import torch.distributed as dist

    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:
            # Alone: a fresh port, never one inherited from a parent process (a test runner, a
            # raylet) whose own one-process group may still be listening on it.
            os.environ.update(
                RANK="0",
                WORLD_SIZE="1",
                LOCAL_RANK="0",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(_free_port()),
            )
            if rt.device == "cpu":
                # DeepSpeed's CPU backend JIT-compiles a shared-memory all-reduce op on first use
                # (30 s to 5 minutes on 2 cores on a fresh machine) that a single process never calls.
                deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        deepspeed.init_distributed(dist_backend=rt.backend, verbose=False)
    return dist.get_rank(), dist.get_world_size()


def build_data(cfg: ExperimentConfig, rank: int) -> tuple[object, dict[str, PuzzleDataset]]:
    """Rank 0 builds (or finds) the cached dataset first; the others then read the cache."""
    import torch.distributed as dist

    from benchmarks import build
    from benchmarks.registry import resolve

    spec = resolve(cfg.task)
    cache_root = Path(cfg.runs_dir) / "data"
    if rank == 0:
        data = build(spec, cache_root)
    dist.barrier()
    if rank != 0:
        data = build(spec, cache_root)
    return spec, data


def total_steps(cfg: ExperimentConfig, flops_per_step: float) -> int:
    """`train.steps`, or fewer when `train.flops_budget` runs out first (equal-compute studies)."""
    if cfg.train.flops_budget is None:
        return cfg.train.steps
    return max(1, min(cfg.train.steps, int(cfg.train.flops_budget // flops_per_step)))


def lr_factor(cfg: ExperimentConfig, step: int, steps: int) -> float:
    """Learning-rate multiplier of optimizer step `step` (0-based) of `steps`.

    Linear warm-up over lr_warmup_steps ((step + 1) / W), then constant, or cosine from 1 down to
    lr_min_ratio (default 0), reached exactly at the last step: progress = (step + 1 - W) / (steps - W).
    (The reference's "cosine with lr_min_ratio 1.0" is `constant`; the config refuses the former.)
    """
    t = cfg.train
    if t.lr_warmup_steps and step < t.lr_warmup_steps:
        return (step + 1) / t.lr_warmup_steps
    if t.lr_schedule == "constant":
        return 1.0
    floor = t.lr_min_ratio or 0.0
    progress = (step + 1 - t.lr_warmup_steps) / max(1, steps - t.lr_warmup_steps)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def deepspeed_config(cfg: ExperimentConfig, rt: Runtime, per_rank_batch: int) -> dict:
    ds = {
        "train_micro_batch_size_per_gpu": per_rank_batch,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": cfg.engine.zero_stage},
        "bf16": {"enabled": rt.precision == "bf16"},
        "steps_per_print": 2**62,
        "wall_clock_breakdown": False,
        # DeepSpeed clips at 1.0 unless told otherwise; `train.grad_clip: null` means no clipping.
        "gradient_clipping": cfg.train.grad_clip or 0.0,
    }
    if cfg.train.optimizer != "adamw":
        ds["zero_allow_untested_optimizer"] = True  # ZeRO only wraps the torch optimizer's step
    return ds


def undo_init_step(optimizer) -> None:
    """DeepSpeed's FP16_UnfusedOptimizer (what bf16 gets at ZeRO 0) creates Adam's state with one
    zero-gradient `step()`: Adam's step count starts at 1 (every later bias correction is off by
    one: the first real update is 0.73 lr instead of lr) and AdamW decays the fp32 masters once.
    Undo both, so the first real step is step 1 of the recipe (tests/harness/test_engine.py)."""
    from deepspeed.runtime.fp16.unfused_optimizer import FP16_UnfusedOptimizer

    if not isinstance(optimizer, FP16_UnfusedOptimizer):
        return
    optimizer.optimizer.state.clear()  # re-created lazily, from step 0, at the first step
    with torch.no_grad():
        for masters, params in zip(optimizer.fp32_groups, optimizer.fp16_groups):
            for m, p in zip(masters, params):
                m.copy_(p.float())


def to_batch(ds: PuzzleDataset, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    return {
        "inputs": torch.from_numpy(ds.inputs[idx]).long().to(device),
        "labels": torch.from_numpy(ds.labels[idx]).long().to(device),
        "puzzle_identifiers": torch.from_numpy(ds.puzzle_identifiers[idx]).long().to(device),
    }


# ---------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    spec,
    test: PuzzleDataset,
    cfg: ExperimentConfig,
    device: torch.device,
    rank: int,
    world: int,
    *,
    limit: int | None = None,
    family_metrics: bool = True,
    batch_size: int | None = None,
    predict: Callable | None = None,
) -> tuple[dict[str, float], np.ndarray | None]:
    """Every rank predicts a contiguous shard; rank 0 scores the whole set; all ranks get metrics.

    -> (metrics, correct): `correct` [n] bool is each example's exact correctness (rank 0; None
    elsewhere). `limit` caps the examples (default `train.eval_examples`); `family_metrics=False`
    scores exact/token accuracy only (a validation split cut from training rows). `predict`
    (batch -> (preds [B, L], q_halt [B]); default `model.predict`) is how test-time compute
    (harness/testtime.py) runs through this same code path. With one worker no process group is
    needed.
    """
    import torch.distributed as dist

    from benchmarks import scoring

    n = min(len(test), limit or cfg.train.eval_examples or len(test))
    shard = np.array_split(np.arange(n), world)[rank]
    bs = batch_size or cfg.train.eval_batch_size or max(1, cfg.train.batch_size // world)
    predict = predict or model.predict
    was_training = model.training
    model.eval()
    preds, q_halt = [], []
    for start in range(0, len(shard), bs):
        p, q = predict(to_batch(test, shard[start : start + bs], device))
        preds.append(p.cpu().numpy())
        q_halt.append(q.float().cpu().numpy())
    model.train(was_training)
    L = test.meta.seq_len
    local = (
        np.concatenate(preds) if preds else np.zeros((0, L), np.int64),
        np.concatenate(q_halt) if q_halt else np.zeros((0,), np.float32),
    )
    gathered = [local]
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, local)
    metrics, correct = None, None
    if rank == 0:
        all_p = np.concatenate([g[0] for g in gathered])
        all_q = np.concatenate([g[1] for g in gathered])
        part = subset(test, np.arange(n))
        labels = np.asarray(part.labels)
        correct = ((all_p == labels) | (labels == scoring.IGNORE_LABEL_ID)).all(axis=1)
        scored = (
            scoring.score(spec, part, all_p, all_q) if family_metrics else scoring.accuracy(labels, all_p)
        )
        metrics = {k: float(v) for k, v in scored.items()}
        metrics["eval_examples"] = float(n)
    if world == 1:
        return metrics, correct
    box = [metrics]
    dist.broadcast_object_list(box, src=0)
    return box[0], correct


def evaluate_splits(
    model,
    spec,
    test: PuzzleDataset,
    val: PuzzleDataset | None,
    cfg: ExperimentConfig,
    device,
    rank: int,
    world: int,
    run_dir: Path,
    step: int,
) -> dict[str, float]:
    """Test split (and the validation split as `val_*` keys), plus the compute it costs per
    example; rank 0 appends every example's exact correctness to the run's correctness file."""
    from harness import correctness

    metrics, correct = evaluate(model, spec, test, cfg, device, rank, world)
    splits = {"test": (correct, test.group_ids[: len(correct)])} if rank == 0 else {}
    if val is not None:
        vm, vc = evaluate(model, spec, val, cfg, device, rank, world, limit=len(val), family_metrics=False)
        metrics.update({f"val_{k}": v for k, v in vm.items()})
        if rank == 0:
            splits["val"] = (vc, val.group_ids)
    segments = getattr(getattr(model, "cfg", None), "halt_max_steps", 1)
    metrics["inference_flops_per_example"] = float(model.flops_per_example("eval")) * segments
    table = getattr(getattr(model, "core", None), "puzzle_emb", None)  # a buffer: not in num_parameters
    metrics["puzzle_emb_parameters"] = float(table.weights.numel()) if table is not None else 0.0
    if rank == 0:
        correctness.record(run_dir, step, splits)
    return metrics


# ---------------------------------------------------------------------------------------------
# The loop


def train(
    cfg: ExperimentConfig,
    run_dir: Path,
    *,
    resume_from: Path | None = None,
    hooks: Hooks | None = None,
    progress: bool = True,
) -> TrainResult:
    import torch.distributed as dist

    from benchmarks.sampler import GroupSampler
    from models import build_model

    hooks = hooks or Hooks()
    run_dir = Path(run_dir)
    rt = resolve_runtime(cfg.engine)
    rank, world = init_distributed(rt)
    device = local_device(rt)
    check_layout(cfg, world)
    if resume_from is not None:
        ckpt.verify_safe(resume_from)  # before DeepSpeed's weights_only=False torch.load sees a file
    per_rank = cfg.train.batch_size // world
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
        write_provenance(run_dir)  # tracking on or off (harness/provenance.py)

    # data -> model -> engine
    spec, data = build_data(cfg, rank)
    train_ds, test_ds, val_ds = data["train"], data["test"], None
    if cfg.train.val_examples:
        try:
            train_ds, val_ds = holdout(train_ds, cfg.train.val_examples)
        except ValueError as e:
            raise ConfigError("train.val_examples", str(e)) from None
    seed_everything(cfg.seed)  # identical initial weights on every rank
    model = build_model(cfg.model, train_ds.meta)
    flops_per_step = float(model.flops_per_example("train")) * cfg.train.batch_size
    steps = total_steps(cfg, flops_per_step)
    params = [p for p in model.parameters() if p.requires_grad]
    # the EMA shadow is copied before DeepSpeed casts the module: fp32, from the fp32 init
    ema = EMA(model, cfg.train.ema_decay, device) if cfg.train.ema_decay else None
    optimizer = build_optimizer(cfg.train, params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(cfg, s, steps))
    engine, optimizer, _, scheduler = import_deepspeed().initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=deepspeed_config(cfg, rt, per_rank),
        dist_init_required=False,
    )
    undo_init_step(optimizer)
    module = engine.module
    if world == 1 and cfg.engine.zero_stage == 0:
        engine.enable_backward_allreduce = False  # nothing to reduce; saves a flatten+copy per step
    sampler = GroupSampler(train_ds, per_rank, rank=rank, world_size=world, seed=cfg.seed)

    # state that a checkpoint restores
    step, flops, carry = 0, 0.0, None
    history: list[dict] = []
    last_eval: dict[str, float] = {}
    if resume_from is not None:
        resume_from = Path(resume_from)
        state = ckpt.read_state(resume_from)
        if int(state.get("world_size", world)) != world:
            raise ConfigError(
                "--workers",
                f"the checkpoint {resume_from} was written by "
                f"{state['world_size']} workers; resume with the same number (got {world})",
            )
        engine.load_checkpoint(str(resume_from), tag=ckpt.DS_TAG, load_module_strict=True)
        step, flops = int(state["step"]), float(state["flops"])
        history, last_eval = state.get("history", []), state.get("metrics", {})
        carry = ckpt.load_tensors(resume_from / f"carry_rank{rank}.pt", device)
        if ema is not None:
            ema.load_state_dict(ckpt.load_tensors(resume_from / "ema.pt", device))

    batches = sampler.batches(start=step)
    bar = Progress(steps, start=step, enabled=progress and rank == 0)
    sums: dict[str, torch.Tensor] = {}
    n_sum, t_log, last_ckpt = 0, time.perf_counter(), None

    def eval_model():
        return ema.eval_model(rt.dtype) if ema is not None else module

    def save(at_step: int, metrics: dict[str, float]) -> Path:
        path = ckpt.step_dir(run_dir, at_step)
        path.mkdir(parents=True, exist_ok=True)
        engine.save_checkpoint(str(path), tag=ckpt.DS_TAG)
        ckpt.save_tensors(path / f"carry_rank{rank}.pt", carry)
        if ema is not None and rank == 0:
            ckpt.save_tensors(path / "ema.pt", ema.state_dict())
        dist.barrier()
        if rank == 0:
            ckpt.write_state(
                path,
                {
                    "step": at_step,
                    "flops": flops,
                    "metrics": metrics,
                    "history": history,
                    "world_size": world,
                },
            )
            ckpt.prune(run_dir, cfg.train.keep_checkpoints)
        dist.barrier()
        if hooks.on_checkpoint:
            hooks.on_checkpoint(at_step, path, metrics)
        return path

    engine.train()
    stopped = False
    while step < steps:
        batch = to_batch(train_ds, next(batches), device)
        if carry is None:
            carry = module.initial_carry(batch)
        carry, loss, metrics, _ = engine(carry, batch, generator=step_generator(cfg.seed, rank, step))
        bad = torch.tensor([0.0 if torch.isfinite(loss).item() else 1.0])
        if world > 1:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        if bad.item():
            raise TrainingDiverged(step, float(loss.detach()))
        engine.backward(loss)
        engine.step()
        if hasattr(module, "puzzle_emb_step"):
            module.puzzle_emb_step(
                cfg.train.puzzle_emb_lr * lr_factor(cfg, step, steps), cfg.train.puzzle_emb_weight_decay
            )
        if ema is not None:
            ema.update(master_weights(engine.optimizer, params))
        step += 1
        flops += flops_per_step

        metrics = {"loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}}
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + v.float()
        n_sum += 1
        if step % cfg.train.log_every == 0 or step == steps:
            keys = sorted(sums)
            vec = torch.stack([torch.as_tensor(sums[k], dtype=torch.float32).cpu() for k in keys]) / n_sum
            if world > 1:
                dist.all_reduce(vec)
                vec /= world
            now = time.perf_counter()
            logged = {k: float(v) for k, v in zip(keys, vec)}
            logged.update(
                lr=cfg.train.lr * lr_factor(cfg, step - 1, steps),
                flops_cumulative=flops,
                examples_per_s=n_sum * cfg.train.batch_size / max(now - t_log, 1e-9),
            )
            sums, n_sum, t_log = {}, 0, now
            if rank == 0:
                bar.update(step, logged)
                if hooks.on_log:
                    hooks.on_log(step, logged)
        stopped = bool(hooks.should_stop and hooks.should_stop())
        if cfg.train.eval_every and step % cfg.train.eval_every == 0 and step < steps:
            last_eval = evaluate_splits(
                eval_model(), spec, test_ds, val_ds, cfg, device, rank, world, run_dir, step
            )
            last_eval["flops_cumulative"] = flops
            history.append({"step": step, **last_eval})
            if rank == 0:
                bar.message(f"eval @ {step}: " + " ".join(f"{k}={v:.4g}" for k, v in last_eval.items()))
                if hooks.on_eval:
                    hooks.on_eval(step, last_eval)
        periodic = cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0
        if (periodic and step < steps) or stopped:
            last_ckpt = save(step, last_eval)
        if stopped:
            break

    if not stopped:
        last_eval = evaluate_splits(
            eval_model(), spec, test_ds, val_ds, cfg, device, rank, world, run_dir, step
        )
        last_eval["flops_cumulative"] = flops
        history.append({"step": step, **last_eval})
        if rank == 0 and hooks.on_eval:
            hooks.on_eval(step, last_eval)
        last_ckpt = save(step, last_eval)
    bar.close()
    return TrainResult(
        run_dir=run_dir,
        step=step,
        metrics=last_eval,
        flops=flops,
        checkpoint_dir=last_ckpt,
        num_parameters=int(module.num_parameters()),
        effective_depth=int(module.effective_depth()),
        history=history,
        puzzle_embedding_entries=int(module.puzzle_embedding_entries()),
    )
