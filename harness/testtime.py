"""Test-time compute on a trained checkpoint: depth (supervision steps) x breadth (K samples).

    run_test_time(cfg, checkpoint_dir, grid) -> TestTimeResult

For every point (steps, samples) of the grid the checkpoint's model (EMA weights when the run has
them, in the training run's compute dtype) re-evaluates the test split through the engine's own
`evaluate` (one evaluation code path), with a predictor that

  - depth: runs `steps` supervision segments instead of the trained `halt_max_steps`;
  - breadth: runs K = `samples` copies of each puzzle as one batch of B*K rows; copies 1..K-1 get
    Gaussian noise on the reasoning latent at every recursion (`models.act.LatentNoise`: std =
    noise x the state's RMS), copy 0 stays the unperturbed trajectory (so K = 1 is always the
    trained model, and breadth only adds candidates); one answer is kept per puzzle: the copy with
    the highest halting logit (`select: q`) or the most frequent answer (`select: vote`, ties to
    the highest logit).

At the trained steps with K = 1 and no noise the predictor is exactly `model.predict`, so the point
reproduces the training run's final evaluation. Measured per point: exact and token accuracy (and
the task family's metrics), inference FLOPs per puzzle = flops_per_example("eval") x steps x
samples (analytic; noise adds no matmuls), and the mean fixed-point residual ||y_k - y_{k-1}|| of
the answer latent at each segment k (mean over all rows, samples included).
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from harness import checkpoint as ckpt
from harness.config import ExperimentConfig
from harness.errors import ConfigError, UserError

SCHEMA_VERSION = 1
MODULE_STATES = Path(ckpt.DS_TAG) / "mp_rank_00_model_states.pt"


@dataclass(frozen=True)
class Grid:
    """The points to evaluate: every (steps, samples) pair."""

    steps: tuple[int, ...]
    samples: tuple[int, ...] = (1,)
    noise: float = 0.0  # std relative to the latent's RMS (samples 1..K-1)
    select: Literal["q", "vote"] = "q"
    examples: int | None = None  # default: train.eval_examples (as in training)
    batch_size: int | None = None  # puzzles per batch (rows = batch x samples)
    seed: int | None = None  # noise seed (default: the run's seed)

    def __post_init__(self):
        for name in ("steps", "samples"):
            values = getattr(self, name)
            if not values or any(int(v) < 1 for v in values):
                raise UserError(f"test time: {name} must be positive integers, got {list(values)}")
        if not (self.noise >= 0 and math.isfinite(self.noise)):
            raise UserError(f"test time: noise must be a finite number >= 0, got {self.noise}")
        if self.select not in ("q", "vote"):
            raise UserError(f"test time: select must be 'q' or 'vote', got {self.select!r}")


class TestTimeSpec(BaseModel):
    """The `test_time:` section a sweep spec may end each trial with (YAML), before the trained
    steps are known: `steps` omitted = `default_steps(halt_max_steps)` of each trial."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[PositiveInt] | None = Field(None, min_length=1)
    samples: list[PositiveInt] = Field(default_factory=lambda: [1], min_length=1)
    noise: float = Field(0.0, ge=0, allow_inf_nan=False)
    select: Literal["q", "vote"] = "q"
    examples: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    seed: int | None = None

    def grid(self, cfg: ExperimentConfig) -> Grid:
        steps = self.steps or default_steps(cfg.model.halt_max_steps)
        return Grid(
            steps=tuple(dict.fromkeys(steps)),
            samples=tuple(dict.fromkeys(self.samples)),
            noise=self.noise,
            select=self.select,
            examples=self.examples,
            batch_size=self.batch_size,
            seed=self.seed,
        )


def parse_spec(data, source: str | None = None, key: str = "test_time") -> TestTimeSpec:
    """Validate a `test_time:` mapping; a bad value raises ConfigError naming `source` and the
    dotted key (e.g. `sweep.yaml: test_time.samples.1: ...`)."""
    try:
        return TestTimeSpec.model_validate(data if data is not None else {})
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in (key, *err["loc"]))
        raise ConfigError(loc, err["msg"], source) from None


@dataclass
class Point:
    steps: int
    samples: int
    exact_accuracy: float
    token_accuracy: float
    inference_flops_per_example: float
    residual: list[float]  # mean ||y_k - y_{k-1}|| per segment k = 1..steps
    metrics: dict[str, float] = field(default_factory=dict)  # everything `evaluate` scored


@dataclass
class TestTimeResult:
    run_dir: str
    checkpoint_dir: str
    checkpoint_step: int
    arch: str
    trained_steps: int  # halt_max_steps the model trained with
    weights: str  # "ema" or "module"
    noise: float
    select: str
    seed: int
    eval_examples: int
    flops_per_segment: float  # analytic eval FLOPs per example per segment
    reference: dict[str, float]  # the training run's final metrics (checkpoint state)
    points: list[Point]
    version: int = SCHEMA_VERSION
    # per-example exact correctness [P, N] bool (order of `points`) and the puzzle (group) id of
    # each example [N]: written beside the JSON as .npz (for the report's bootstrap), not in it
    correct: np.ndarray | None = field(default=None, repr=False)
    puzzle_ids: np.ndarray | None = field(default=None, repr=False)

    def point(self, steps: int, samples: int) -> Point:
        return next(p for p in self.points if p.steps == steps and p.samples == samples)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("correct"), out.pop("puzzle_ids")
        return out


# ---------------------------------------------------------------------------------------------
# Choosing one answer of K


def select_by_q(q: torch.Tensor) -> torch.Tensor:
    """q [B, K] halting logits -> index [B] of the most confident sample."""
    return q.argmax(dim=1)


def select_by_vote(preds: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """preds [B, K, L], q [B, K] -> index [B] of a sample holding the most frequent whole answer;
    among equally frequent answers, the one whose sample has the highest halting logit."""
    same = (preds[:, :, None, :] == preds[:, None, :, :]).all(-1)  # [B, K, K]
    votes = same.sum(-1)  # [B, K]
    top = votes == votes.max(dim=1, keepdim=True).values
    return torch.where(top, q.float(), torch.tensor(float("-inf"), device=q.device)).argmax(dim=1)


class Predictor:
    """batch -> (preds [B, L], q_halt [B]) with `steps` segments and `samples` noisy copies per
    puzzle; accumulates the mean residual curve over the batches it sees."""

    def __init__(
        self,
        model,
        steps: int,
        samples: int,
        noise: float = 0.0,
        select: str = "q",
        generator: torch.Generator | None = None,
    ):
        from models.act import LatentNoise

        self.model, self.steps, self.samples, self.select = model, steps, samples, select
        self.noise = LatentNoise(noise, generator) if noise > 0 and samples > 1 else None
        self._sum = torch.zeros(steps, dtype=torch.float64)
        self._rows = 0
        self.last_samples: tuple[torch.Tensor, torch.Tensor] | None = None  # [B, K, L], [B, K]

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        from models.act import DATA_KEYS

        B, K = batch["inputs"].shape[0], self.samples
        rows = batch if K == 1 else {k: batch[k].repeat_interleave(K, dim=0) for k in DATA_KEYS}
        if self.noise is not None:  # sample 0 of each puzzle is the unperturbed trajectory
            self.noise.rows = torch.arange(B * K, device=batch["inputs"].device) % K != 0
        res: list[torch.Tensor] = []
        preds, q = self.model.predict(rows, steps=self.steps, noise=self.noise, residuals=res)
        self._sum += torch.stack([r.double().sum() for r in res]).cpu()
        self._rows += B * K
        preds, q = preds.view(B, K, -1), q.view(B, K)  # row b*K + j = sample j of puzzle b
        self.last_samples = (preds, q)
        idx = select_by_q(q) if self.select == "q" else select_by_vote(preds, q)
        arange = torch.arange(B, device=idx.device)
        return preds[arange, idx], q[arange, idx]

    def residual_curve(self) -> list[float]:
        return (self._sum / max(self._rows, 1)).tolist()


# ---------------------------------------------------------------------------------------------
# Loading a trained run


def resolve_target(path: Path) -> tuple[Path, Path]:
    """RUN_OR_CHECKPOINT -> (run_dir, checkpoint_dir): a complete checkpoint directory, or a run
    folder (its newest complete checkpoint)."""
    path = Path(path)
    if ckpt.is_complete(path):
        return path.parent.parent, path
    if not path.is_dir():
        raise UserError(f"{path}: no such run folder or checkpoint directory")
    latest = ckpt.latest(path)
    if latest is None:
        raise UserError(
            f"{path}: expected a run folder with a complete checkpoint under "
            f"checkpoints/ (one holding {ckpt.STATE_FILE}), or such a checkpoint directory"
        )
    return path, latest


def load_run_config(run_dir: Path) -> ExperimentConfig:
    from harness.config import load_experiment

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{path}: missing (every training run writes its config there)")
    return load_experiment(path)


def load_model(
    cfg: ExperimentConfig,
    checkpoint_dir: Path,
    meta,
    device: torch.device,
    dtype: torch.dtype,
    use_ema: bool = True,
):
    """The checkpoint's model as the training run evaluated it: module weights (and buffers, e.g.
    the puzzle-embedding table) from DeepSpeed's model states, parameters replaced by the fp32
    EMA average when the run kept one, then parameters (not buffers) cast to the compute dtype.
    -> (model, "ema" | "module")."""
    from models import build_model

    if cfg.engine.zero_stage == 3:
        raise UserError(
            f"{checkpoint_dir}: engine.zero_stage 3 checkpoints hold sharded weights; "
            "test-time evaluation needs zero_stage <= 2"
        )
    path = Path(checkpoint_dir) / MODULE_STATES
    if not path.is_file():
        raise UserError(f"{path}: missing (expected DeepSpeed's model states in the checkpoint)")
    model = build_model(cfg.model, meta)
    state = torch.load(path, map_location="cpu", weights_only=True)["module"]
    model.load_state_dict(state, strict=True)
    weights = "module"
    ema_path = Path(checkpoint_dir) / "ema.pt"
    if use_ema and cfg.train.ema_decay and ema_path.is_file():
        shadow = ckpt.load_tensors(ema_path, torch.device("cpu"))
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(shadow[name])
        weights = "ema"
    model.to(device)
    for p in model.parameters():
        p.data = p.data.to(dtype)
    return model.eval().requires_grad_(False), weights


def data_root(cfg: ExperimentConfig, checkpoint_dir: Path) -> Path:
    """The dataset cache the run used: `runs_dir/data` as configured (relative to where training
    ran), else the one beside the run folder (`<runs_dir>/<run>/checkpoints/step_N`)."""
    configured = Path(cfg.runs_dir) / "data"
    beside = Path(checkpoint_dir).resolve().parents[2] / "data"
    return beside if not configured.is_dir() and beside.is_dir() else configured


def default_steps(trained: int) -> tuple[int, ...]:
    """Powers of two up to twice the trained steps, and the trained steps themselves."""
    out, s = {trained}, 1
    while s <= 2 * trained:
        out.add(s)
        s *= 2
    return tuple(sorted(out))


# ---------------------------------------------------------------------------------------------
# The grid


def run_test_time(
    cfg: ExperimentConfig,
    checkpoint_dir: Path,
    grid: Grid,
    *,
    progress: bool = True,
    use_ema: bool = True,
    run_dir: Path | None = None,
) -> TestTimeResult:
    """Evaluate every (steps, samples) point of `grid` on the checkpoint's test split (in this
    process, one worker). The entry point for `rbench eval` and for a sweep trial's test-time grid.
    `run_dir`: where the results go (default: the run folder holding `checkpoint_dir`)."""
    from benchmarks import build
    from benchmarks.registry import resolve
    from harness.device import local_device, resolve_runtime
    from harness.engine import evaluate
    from harness.progress import Progress

    checkpoint_dir = Path(checkpoint_dir)
    rt = resolve_runtime(cfg.engine)
    device = local_device(rt)
    spec = resolve(cfg.task)
    test = build(spec, data_root(cfg, checkpoint_dir))["test"]
    model, weights = load_model(cfg, checkpoint_dir, test.meta, device, rt.dtype, use_ema)
    seed = cfg.seed if grid.seed is None else grid.seed
    per_segment = float(model.flops_per_example("eval"))
    n = min(len(test), grid.examples or cfg.train.eval_examples or len(test))
    points = [(s, k) for s in grid.steps for k in grid.samples]
    bar = Progress(len(points), enabled=progress)
    out: list[Point] = []
    bits: list[np.ndarray] = []
    for i, (steps, samples) in enumerate(points):
        gen = None
        if grid.noise > 0:
            gen = torch.Generator(device=device).manual_seed(seed)
        predictor = Predictor(model, steps, samples, grid.noise, grid.select, gen)
        metrics, correct = evaluate(
            model, spec, test, cfg, device, 0, 1, limit=n, batch_size=grid.batch_size, predict=predictor
        )
        bits.append(correct)
        out.append(
            Point(
                steps=steps,
                samples=samples,
                exact_accuracy=metrics["exact_accuracy"],
                token_accuracy=metrics["token_accuracy"],
                inference_flops_per_example=per_segment * steps * samples,
                residual=predictor.residual_curve(),
                metrics=metrics,
            )
        )
        bar.update(i + 1, {"exact_accuracy": metrics["exact_accuracy"]})
    bar.close()
    state = ckpt.read_state(checkpoint_dir)
    reference = {k: float(v) for k, v in state.get("metrics", {}).items() if isinstance(v, (int, float))}
    return TestTimeResult(
        run_dir=str(run_dir or checkpoint_dir.parent.parent),
        checkpoint_dir=str(checkpoint_dir),
        checkpoint_step=int(state["step"]),
        arch=cfg.model.arch,
        trained_steps=int(cfg.model.halt_max_steps),
        weights=weights,
        noise=grid.noise,
        select=grid.select,
        seed=seed,
        eval_examples=n,
        flops_per_segment=per_segment,
        reference=reference,
        points=out,
        correct=np.stack(bits),
        puzzle_ids=np.asarray(test.group_ids[:n], np.int64),
    )


# ---------------------------------------------------------------------------------------------
# Output: a table, JSON + CSV in the run folder, an MLflow child run

CSV_COLUMNS = (
    "steps",
    "samples",
    "exact_accuracy",
    "token_accuracy",
    "inference_flops_per_example",
    "final_residual",
)


def table(result: TestTimeResult) -> str:
    head = f"{'steps':>6} {'samples':>7} {'exact':>8} {'token':>8} {'FLOPs/example':>14} {'residual':>10}"
    lines = [head]
    for p in result.points:
        mark = "  <- as trained" if (p.steps, p.samples) == (result.trained_steps, 1) else ""
        lines.append(
            f"{p.steps:>6} {p.samples:>7} {p.exact_accuracy:>8.4f} {p.token_accuracy:>8.4f} "
            f"{p.inference_flops_per_example:>14.4g} {p.residual[-1]:>10.4g}{mark}"
        )
    return "\n".join(lines)


def output_stem(result: TestTimeResult) -> Path:
    noise = f"{result.noise:g}".replace(".", "p")
    return (
        Path(result.run_dir) / "testtime" / f"step_{result.checkpoint_step:08d}-noise{noise}-{result.select}"
    )


def write(result: TestTimeResult) -> tuple[Path, Path]:
    """-> (json path, csv path) under <run_dir>/testtime/ (rewritten for the same settings), and
    the per-example correctness as .npz beside them (steps, samples [P]; correct [P, ceil(N/8)]
    np.packbits; n; puzzle_ids [N])."""
    stem = output_stem(result)
    stem.parent.mkdir(parents=True, exist_ok=True)
    js, cs = stem.with_suffix(".json"), stem.with_suffix(".csv")
    if result.correct is not None:
        tmp = stem.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            steps=np.array([p.steps for p in result.points]),
            samples=np.array([p.samples for p in result.points]),
            correct=np.packbits(result.correct, axis=1),
            n=np.array(result.correct.shape[1]),
            puzzle_ids=result.puzzle_ids,
        )
        tmp.replace(stem.with_suffix(".npz"))
    with open(cs, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for p in result.points:
            w.writerow(
                [
                    p.steps,
                    p.samples,
                    p.exact_accuracy,
                    p.token_accuracy,
                    p.inference_flops_per_example,
                    p.residual[-1],
                ]
            )
    tmp = js.with_suffix(".json.tmp")  # last: the JSON marks a complete set of files
    tmp.write_text(json.dumps(result.to_dict(), indent=2))
    tmp.replace(js)
    return js, cs


def read_correct(path: Path) -> dict[tuple[int, int], np.ndarray]:
    """The .npz beside a result's JSON -> {(steps, samples): correct [N] bool}."""
    with np.load(Path(path), allow_pickle=False) as z:
        bits = np.unpackbits(z["correct"], axis=1, count=int(z["n"])).astype(bool)
        return {(int(s), int(k)): b for s, k, b in zip(z["steps"], z["samples"], bits)}


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def mlflow_log(run_dir: Path, result: TestTimeResult, files: tuple[Path, ...]) -> str | None:
    """Log `result` as a child run of the training run (tag mlflow.parentRunId), in the parent's
    experiment. -> the child's run id, or None when the run folder has no MLflow run.

    The only MLflow code of test time (the client comes from harness.tracking)."""
    info = Path(run_dir) / "mlflow_run.json"
    if not info.is_file():
        return None
    from mlflow.entities import Metric, Param

    from harness.provenance import provenance
    from harness.tracking import client

    meta = json.loads(info.read_text())
    parent_id, c = meta["run_id"], client(meta["uri"])
    parent = c.get_run(parent_id)
    now = int(time.time() * 1000)
    metrics: list = []
    for p in result.points:
        key = f"testtime/s{p.steps}_k{p.samples}"
        metrics += [Metric(f"{key}/{m}", float(v), now, 0) for m, v in p.metrics.items()]
        metrics.append(Metric(f"{key}/inference_flops_per_example", p.inference_flops_per_example, now, 0))
        metrics += [Metric(f"{key}/residual", float(r), now, k + 1) for k, r in enumerate(p.residual)]
    params = {
        "test_time.steps": ",".join(sorted({str(p.steps) for p in result.points}, key=int)),
        "test_time.samples": ",".join(sorted({str(p.samples) for p in result.points}, key=int)),
        "test_time.noise": result.noise,
        "test_time.select": result.select,
        "test_time.seed": result.seed,
        "test_time.eval_examples": result.eval_examples,
        "test_time.weights": result.weights,
        "test_time.trained_steps": result.trained_steps,
        "test_time.checkpoint_step": result.checkpoint_step,
    }
    from harness.tracking import tags as T

    tags = {
        T.PARENT_TAG: parent_id,
        T.KIND_TAG: "test_time",
        "rbench.run_dir": str(Path(run_dir).resolve()),
        "rbench.checkpoint_dir": result.checkpoint_dir,
        "mlflow.source.git.commit": str(provenance()["git_commit"]),
    }
    run = c.create_run(
        parent.info.experiment_id,
        tags=tags,
        run_name=f"{parent.info.run_name}-testtime-step{result.checkpoint_step}",
    )
    try:
        c.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        for i in range(0, len(metrics), 1000):
            c.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])
        for f in files:
            c.log_artifact(run.info.run_id, str(f), "testtime")
    except BaseException:
        c.set_terminated(run.info.run_id, status="FAILED")
        raise
    c.set_terminated(run.info.run_id, status="FINISHED")
    return run.info.run_id


def run_and_record(
    cfg: ExperimentConfig, checkpoint_dir: Path, grid: Grid, *, run_dir: Path, progress: bool = False
) -> TestTimeResult:
    """`run_test_time`, then its files in `run_dir`/testtime and, when `run_dir` holds an MLflow
    run, a child run of it (what a sweep trial with a `test_time:` grid does when it finishes)."""
    result = run_test_time(cfg, checkpoint_dir, grid, progress=progress, run_dir=run_dir)
    files = write(result)
    mlflow_log(run_dir, result, (*files, files[0].with_suffix(".npz")))
    return result
