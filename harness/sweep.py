"""Sweeps: a sweep spec -> an Optuna study -> Ray Tune trials -> one Ray Train job per trial.

    rbench sweep SPEC            driver: Tuner(OptunaSearch over a persisted study, ASHA on FLOPs)
      trial (Tune actor)         builds the trial's config, opens its MLflow child run, fits a
                                 TorchTrainer (harness.launch) whose reports reach Tune through
                                 Ray's TuneReportCallback
        workers (Ray Train)      harness.engine.train, checkpoints to <trial>/checkpoints

Where things live (all under <runs_dir>/sweeps/<name>/, the "sweep folder"):
    sweep.json            identity: sweep id (<name>-<8 hex>, also the Optuna study name), Optuna
                          storage URL, MLflow parent run id, spec hash, driver pid
    optuna.db             the Optuna study (default storage; any RDB URL via `storage:`)
    tune/                 Ray Tune's experiment state (trial table, searcher and stopper state)
    trials/trial_NNNNN/   one folder per Optuna trial number: Ray Train storage + worker scratch

Who owns which truth:
- Optuna owns the trials' parameters and outcomes (COMPLETE / PRUNED = stopped early / FAIL with
  `failure_reason`). The study is the record `rbench sweep status` reads.
- Ray Tune owns scheduling and resume: `--resume` restores Tune's experiment (finished trials are
  not rerun; unfinished ones rerun, and their TorchTrainer finds its own checkpoints in
  trials/trial_NNNNN/checkpoints, so they continue from there). The searcher's state (Tune trial
  id -> Optuna trial) is restored with it.
- A trial is identified everywhere by its Optuna trial number: folder, MLflow child run tags,
  Ray Train run. A trial the Optuna study shows as RUNNING but that Tune's last saved state does
  not know (the driver died between asking Optuna and saving) is "adopted": the next suggestion
  hands out that same Optuna trial again instead of asking a new one, so nothing is lost or
  duplicated in Optuna or MLflow.

Seeds per point: the grid sampler enumerates (point x seed). TPE / NSGA-II suggest a point; its other
seeds are queued at once as Optuna "enqueued" trials with the same parameters (stored in the study,
so they survive a restart), each its own trial and MLflow run.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PositiveInt, StrictBool, StrictFloat, StrictInt,
                      StrictStr, ValidationError, field_validator, model_validator)

from harness.config import ExperimentConfig, apply_overrides, load_experiment, read_yaml, validate
from harness.errors import ConfigError, UserError

TRIAL_KEY = "_rbench"          # trial config entry holding the Optuna trial's number and id
TUNE_NAME = "tune"             # Tune experiment folder inside the sweep folder
STATE_FILE = "sweep.json"


# ---------------------------------------------------------------------------------------------
# The spec

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Choice = Union[StrictBool, StrictInt, StrictFloat, StrictStr, None]   # what Optuna can store


class Categorical(_Strict):
    type: Literal["categorical"]
    values: list[Choice] = Field(min_length=1)

    def grid(self) -> list[Any]:
        return list(self.values)


class IntRange(_Strict):
    type: Literal["int"]
    low: StrictInt
    high: StrictInt
    step: PositiveInt = 1
    log: bool = False

    @model_validator(mode="after")
    def _check(self):
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log scale needs low >= 1 and step 1")
        return self

    def grid(self) -> list[Any]:
        if self.log:   # a log grid has no single natural spacing: ask for the values
            raise ValueError("a grid cannot enumerate a log-scale int range: list the values "
                             "with type: categorical")
        return list(range(self.low, self.high + 1, self.step))


class FloatRange(_Strict):
    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _check(self):
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("log scale needs low > 0 and no step")
        return self

    def grid(self) -> list[Any]:
        if self.step is None:
            raise ValueError("a grid needs finitely many values: give step, or list the values "
                             "with type: categorical")
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]


Dimension = Annotated[Union[Categorical, IntRange, FloatRange], Field(discriminator="type")]


class Objective(_Strict):
    metric: str = "exact_accuracy"      # a key of the trial's final report (eval metrics, flops, ...)
    mode: Literal["max", "min"] = "max"


class SamplerSpec(_Strict):
    type: Literal["grid", "tpe", "nsga2", "random"] = "grid"
    seed: int | None = 0                # the sampler's own seed (reproducible suggestions)
    population_size: PositiveInt | None = None   # nsga2


def _seconds(v: Any) -> Any:
    """3600, "3600", "90s", "30m", "2h" -> seconds."""
    if isinstance(v, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", v)
        if not m:
            raise ValueError("expected seconds, or a number with unit s, m or h (e.g. 30m)")
        return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    return v


class Budget(_Strict):
    trials: PositiveInt | None = None   # Tune trials (each seed of a point is one trial)
    flops: float | None = Field(None, gt=0)        # total training FLOPs over all trials
    wall_time: float | None = Field(None, gt=0)    # seconds of driver time (survives --resume)

    _w = field_validator("wall_time", mode="before")(_seconds)


class SchedulerSpec(_Strict):
    type: Literal["fifo", "asha"] = "fifo"
    time_attr: str = "flops_cumulative"  # ASHA's clock: training FLOPs, so depth is compared at equal compute
    max_t: float | None = Field(None, gt=0)         # a trial's budget on that clock
    grace_period: float | None = Field(None, gt=0)  # first rung
    reduction_factor: float = Field(3.0, gt=1)
    metric: str | None = None           # default: the first objective

    @model_validator(mode="after")
    def _asha_needs_clock(self):
        if self.type == "asha" and (self.max_t is None or self.grace_period is None):
            raise ValueError("asha needs max_t and grace_period (in units of time_attr, "
                             "training FLOPs by default)")
        if self.type == "asha" and self.grace_period > self.max_t:
            raise ValueError("grace_period must not exceed max_t")
        return self


class Resources(_Strict):
    workers: PositiveInt = 1            # data-parallel Ray Train workers per trial
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)
    max_failures: int = Field(2, ge=-1)  # worker-group restarts per trial (from its last checkpoint)
    # Ray resources of each trial's driver (the Tune actor that starts and watches the Train job;
    # it computes nothing). Ray advises pinning these to safe nodes with a custom resource, e.g.
    # {driver_slot: 1} where only the head node offers driver_slot.
    trial_driver: dict[str, float] = Field(default_factory=lambda: {"cpu": 0.01})

    @field_validator("trial_driver")
    @classmethod
    def _some_resource(cls, v):
        if not any(x > 0 for x in v.values()) or any(x < 0 for x in v.values()):
            raise ValueError("expected at least one positive resource amount and none negative")
        return v


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")   # the sweep id
    experiment: str                     # base experiment YAML (relative to this file)
    overrides: list[str] = Field(default_factory=list)   # applied to the base before the space
    space: dict[str, Dimension] = Field(min_length=1)
    seeds: list[StrictInt] | PositiveInt = Field(default_factory=lambda: [0])
    sampler: SamplerSpec = SamplerSpec()
    objectives: list[Objective] = Field(default_factory=lambda: [Objective()], min_length=1,
                                        max_length=2)
    budget: Budget = Budget()
    scheduler: SchedulerSpec = SchedulerSpec()
    max_concurrency: PositiveInt = 1
    resources: Resources = Resources()
    storage: str | None = None          # Optuna RDB URL; default sqlite:///<sweep folder>/optuna.db
    runs_dir: str | None = None         # default: the base experiment's runs_dir

    @field_validator("space")
    @classmethod
    def _no_seed_key(cls, space):
        if "seed" in space:
            raise ValueError("'seed' is not searched: list seeds under `seeds`")
        return space

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def grid_points(self) -> int:
        return math.prod(len(d.grid()) for d in self.space.values())


def _describe(err: dict) -> str:
    kind, msg, got = err.get("type", ""), err.get("msg", "invalid value"), err.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = msg.removeprefix("Value error, ")
    shown = "a mapping" if isinstance(got, dict) else repr(got)
    return f"{msg[0].lower() + msg[1:] if msg else msg} (got {shown})"


def _dotted(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    # Unions insert the chosen member's tag into the location (space.model.T.int.low): drop it.
    return ".".join(p for p in parts if p not in ("categorical", "int", "float")
                    and not p.startswith(("list[", "constrained-")))


@dataclass
class LoadedSweep:
    spec: SweepSpec
    path: Path
    base: ExperimentConfig             # base experiment with the spec's overrides, absolute paths
    base_data: dict[str, Any]          # the same as a plain mapping (trial configs start from it)
    text: str                          # the spec file's contents (logged to MLflow)

    @property
    def sweep_dir(self) -> Path:
        return Path(self.base.runs_dir) / "sweeps" / self.spec.name

    @property
    def storage_url(self) -> str:
        return self.spec.storage or f"sqlite:///{self.sweep_dir / 'optuna.db'}"

    @property
    def num_trials(self) -> int:
        """Tune trials to run: budget.trials, else the whole grid, else unbounded (-1)."""
        if self.spec.budget.trials:
            return self.spec.budget.trials
        if self.spec.sampler.type == "grid":
            return self.spec.grid_points() * len(self.spec.seed_list)
        return -1

    @property
    def fingerprint(self) -> str:
        """What a resume must not change: the whole spec (Tune restores its trial count, scheduler
        and stoppers from its own saved state, so an edited spec would silently not apply)."""
        data = self.spec.model_dump(mode="json")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_spec(path: str | Path) -> LoadedSweep:
    """Read and validate a sweep spec, its base experiment and every searched key against it.
    Any mistake is a ConfigError naming the file, the dotted key and what was expected."""
    from harness.launch import absolute_config

    path = Path(path)
    source = str(path)
    data = read_yaml(path)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(_dotted(first["loc"]) or None, _describe(first), source=source) from None

    exp_path = Path(spec.experiment)
    if not exp_path.is_absolute():
        exp_path = path.parent / exp_path
    if not exp_path.is_file():
        raise ConfigError("experiment", f"base experiment file not found: {exp_path}", source=source)
    overrides = list(spec.overrides)
    if spec.runs_dir:   # the spec's runs folder replaces the experiment's (data, MLflow, sweeps)
        overrides.append(f"runs_dir={json.dumps(str(Path(spec.runs_dir).resolve()))}")
    try:
        base = load_experiment(exp_path, overrides)
    except ConfigError as e:
        raise ConfigError(e.key, e.expected,
                          source=f"{e.source} (base experiment of {source})") from None
    base = absolute_config(base)
    base_data = base.to_dict()

    if spec.sampler.type == "grid":
        for key, dim in spec.space.items():
            try:
                dim.grid()
            except ValueError as e:
                raise ConfigError(f"space.{key}", str(e), source=source) from None
        if spec.budget.trials and spec.budget.trials > spec.grid_points() * len(spec.seed_list):
            raise ConfigError("budget.trials", f"at most the grid's {spec.grid_points()} points x "
                              f"{len(spec.seed_list)} seeds for a grid sweep", source=source)
    elif not (spec.budget.trials or spec.budget.flops or spec.budget.wall_time):
        raise ConfigError("budget", f"a {spec.sampler.type} sweep needs budget.trials, budget.flops "
                          "or budget.wall_time", source=source)
    if spec.sampler.type == "nsga2" and not spec.multi_objective:
        raise ConfigError("sampler.type", "nsga2 is multi-objective: give two objectives "
                          "(e.g. exact_accuracy max, flops min), or use tpe", source=source)

    # Every searched key must exist in the experiment config and accept the values searched.
    for key, dim in spec.space.items():
        probes = dim.values if isinstance(dim, Categorical) else [dim.low, dim.high]
        for value in probes:
            try:
                validate(apply_overrides(base_data, [f"{key}={json.dumps(value)}"]), source)
            except ConfigError as e:
                raise ConfigError(f"space.{key}", f"value {value!r} does not fit the experiment "
                                  f"({e.key}: {e.expected})", source=source) from None
    text = path.read_text()
    return LoadedSweep(spec=spec, path=path.resolve(), base=base, base_data=base_data, text=text)


def trial_config(base_data: dict[str, Any], params: dict[str, Any], seed: int, *,
                 sweep_id: str, number: int) -> ExperimentConfig:
    """The base experiment with one point of the space and one seed applied."""
    overrides = [f"{k}={json.dumps(v)}" for k, v in params.items()]
    overrides += [f"seed={seed}", f"name={json.dumps(f'{sweep_id}-t{number:05d}')}",
                  f"tracking.run_name={json.dumps(f'{sweep_id}/trial_{number:05d}')}"]
    return validate(apply_overrides(base_data, overrides), f"sweep {sweep_id} trial {number}")


# ---------------------------------------------------------------------------------------------
# Optuna: search space, sampler, and a searcher that survives driver restarts

def optuna_space(spec: SweepSpec) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space: dict[str, Any] = {}
    for key, dim in spec.space.items():
        if spec.sampler.type == "grid":
            space[key] = CategoricalDistribution(tuple(dim.grid()))
        elif isinstance(dim, Categorical):
            space[key] = CategoricalDistribution(tuple(dim.values))
        elif isinstance(dim, IntRange):
            space[key] = IntDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
        else:
            space[key] = FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
    if spec.sampler.type == "grid":
        space["seed"] = CategoricalDistribution(tuple(spec.seed_list))
    return space


def make_sampler(spec: SweepSpec):
    import optuna

    s = spec.sampler
    if s.type == "grid":
        grid = {k: d.grid() for k, d in spec.space.items()}
        grid["seed"] = spec.seed_list
        return optuna.samplers.GridSampler(grid, seed=s.seed)
    if s.type == "tpe":
        return optuna.samplers.TPESampler(seed=s.seed)
    if s.type == "nsga2":
        kw = {"population_size": s.population_size} if s.population_size else {}
        return optuna.samplers.NSGAIISampler(seed=s.seed, **kw)
    return optuna.samplers.RandomSampler(seed=s.seed)


def open_storage(url: str):
    """An Optuna RDB storage. SQLite gets a busy timeout: trials finish concurrently."""
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def _study_search_class():
    """Defined lazily: importing Ray Tune costs seconds, and `status` does not need it."""
    import optuna
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    from harness.launch import FAILURE_KEY, FINAL_KEY

    class StudySearch(OptunaSearch):
        """OptunaSearch on a persisted study, plus: seed replicas, orphan adoption, failure
        reasons and early stops recorded in the study. All bookkeeping lives in the study."""

        def __init__(self, *, seeds: list[int], seed_in_space: bool, **kwargs):
            super().__init__(**kwargs)
            self._seeds, self._seed_in_space = list(seeds), seed_in_space
            self._adopt: list[int] | None = None

        def _orphans(self) -> list[int]:
            known = {t.number for t in self._ot_trials.values()}
            running = self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            return [t._trial_id for t in sorted(running, key=lambda t: t.number)
                    if t.number not in known]

        def _ensure_replicas(self, ot_trial) -> None:
            """Queue this point's other seeds (once; checked against the study, so a restart in
            between neither loses nor doubles them)."""
            have = {t.user_attrs.get("seed") for t in self._ot_study.get_trials(deepcopy=False)
                    if t.user_attrs.get("replica_of") == ot_trial.number}
            for s in self._seeds[1:]:
                if s not in have:
                    self._ot_study.enqueue_trial(dict(ot_trial.params),
                                                 user_attrs={"seed": s, "replica_of": ot_trial.number})

        def suggest(self, trial_id: str):
            if self._adopt is None:
                self._adopt = self._orphans()
            if trial_id not in self._ot_trials and self._adopt:
                self._ot_trials[trial_id] = optuna.trial.Trial(self._ot_study, self._adopt.pop(0))
            params = super().suggest(trial_id)
            if params is None:
                return None
            ot_trial = self._ot_trials[trial_id]
            attrs = ot_trial.user_attrs
            if self._seed_in_space:
                seed = params.pop("seed")
            elif "seed" in attrs:
                seed = attrs["seed"]
            else:
                seed = self._seeds[0]
            if "seed" not in attrs:
                ot_trial.set_user_attr("seed", seed)
            if not self._seed_in_space and "replica_of" not in attrs:
                self._ensure_replicas(ot_trial)
            ot_trial.set_user_attr("tune_trial_id", trial_id)
            return {**params, "seed": seed,
                    TRIAL_KEY: {"number": ot_trial.number, "optuna_trial_id": ot_trial._trial_id}}

        def _set_attr(self, trial_id: str, key: str, value: Any) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is None:
                return
            try:
                ot_trial.set_user_attr(key, value)
            except RuntimeError:
                pass   # already finished (a rerun after a restart): the study keeps the first record

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if FAILURE_KEY in result:
                self._set_attr(trial_id, "failure_reason", str(result[FAILURE_KEY])[:2000])
            if isinstance(self.metric, list) or self.metric not in result:
                return   # multi-objective: Optuna takes no intermediate values
            if trial_id in self._ot_trials and trial_id not in self._completed_trials:
                try:
                    super().on_trial_result(trial_id, result)
                except RuntimeError:
                    pass

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
            if trial_id not in self._ot_trials or trial_id in self._completed_trials:
                return
            if result:
                for key in ("flops", "flops_cumulative", "step", "num_parameters", "resumed_from_step"):
                    if isinstance(result.get(key), (int, float)):
                        self._set_attr(trial_id, key, float(result[key]))
            if result and not error and not result.get(FINAL_KEY):
                # Stopped before its final evaluation (ASHA, or the sweep's budget): not a result.
                # Its last intermediate value (Tune skips on_trial_result for the stopping one)
                # is what a pruned trial is ranked by.
                self._set_attr(trial_id, "stopped_early", True)
                if not isinstance(self.metric, list) and self.metric in result:
                    try:
                        self._ot_trials[trial_id].report(float(result[self.metric]),
                                                         int(result.get("training_iteration", 0)))
                    except Exception:   # noqa: BLE001 - already reported at this step
                        pass
                try:
                    self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
                except Exception:     # noqa: BLE001 - e.g. already told before a restart
                    pass
                self._completed_trials.add(trial_id)
                return
            super().on_trial_complete(trial_id, result=result, error=error)

        def restore(self, checkpoint_path: str):
            super().restore(checkpoint_path)
            self._adopt = None     # recomputed against the study at the next suggestion

    return StudySearch


# ---------------------------------------------------------------------------------------------
# Ray Tune pieces

@dataclass
class SweepContext:
    """What a trial needs (shipped to the trial actors; plain data only)."""
    sweep_id: str
    sweep_name: str
    sweep_dir: str
    base_data: dict[str, Any]
    resources: dict[str, Any]
    parent_run_id: str | None
    tracking_uri: str | None
    experiment: str


def run_trial(config: dict[str, Any], ctx: SweepContext) -> None:
    """One Tune trial: a small driver that runs the trial's Ray Train job."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from harness.launch import FAILURE_KEY, JobSpec, TrialFailed, run_job, to_train_result
    from harness.tracking import MlflowTracker as Tracker
    from harness.tracking.sweep import NAME_TAG, ROLE_TAG, SWEEP_TAG, TRIAL_TAG, find_trial_run

    meta = config[TRIAL_KEY]
    number, seed = int(meta["number"]), int(config["seed"])
    params = {k: v for k, v in config.items() if k not in (TRIAL_KEY, "seed")}
    cfg = trial_config(ctx.base_data, params, seed, sweep_id=ctx.sweep_id, number=number)
    run_dir = Path(ctx.sweep_dir) / "trials" / f"trial_{number:05d}"
    run_dir.mkdir(parents=True, exist_ok=True)

    tracker = None
    if cfg.tracking.enabled:
        tags = {SWEEP_TAG: ctx.sweep_id, NAME_TAG: ctx.sweep_name, TRIAL_TAG: str(number),
                ROLE_TAG: "trial",
                "rbench.optuna_trial_id": str(meta["optuna_trial_id"]),
                "rbench.tune_trial_id": tune.get_context().get_trial_id()}
        existing = find_trial_run(ctx.tracking_uri, ctx.experiment, ctx.sweep_id, number)
        tracker = Tracker(cfg, run_dir=run_dir, parent_run_id=ctx.parent_run_id, tags=tags,
                          run_id=existing)
        tracker.start()
        if existing:   # a rerun (driver resumed): same run, note the Tune trial now running it
            tracker.set_tags({"rbench.tune_trial_id": tags["rbench.tune_trial_id"],
                              "rbench.rerun": "true"})
    r = ctx.resources
    job = JobSpec(cfg=cfg, run_dir=run_dir, workers=r["workers"], cpus_per_worker=r["cpus_per_worker"],
                  gpus_per_worker=r["gpus_per_worker"], max_failures=r["max_failures"],
                  mlflow_run_id=tracker.run_id if tracker else None,
                  extra_metrics={"trial_number": float(number)},
                  callbacks=[TuneReportCallback()])
    try:
        metrics, ckpt_path = run_job(job)
    except (TrialFailed, UserError) as e:
        reason = str(e)
        if tracker:
            tracker.fail(reason)
        tune.report({FAILURE_KEY: reason, "trial_number": float(number)})
        raise TrialFailed(reason) from None
    if tracker:
        tracker.finish(to_train_result(metrics, run_dir, ckpt_path))


class FlopsBudget:
    """Tune stopper: end the sweep once the trials together trained `budget` FLOPs. Its state is
    saved with Tune's experiment state, so the count survives --resume."""

    def __init__(self, budget: float):
        self.budget, self.used = float(budget), {}

    def __call__(self, trial_id: str, result: dict) -> bool:
        if isinstance(result.get("flops_cumulative"), (int, float)):
            self.used[trial_id] = max(self.used.get(trial_id, 0.0), float(result["flops_cumulative"]))
        return False

    def stop_all(self) -> bool:
        return sum(self.used.values()) >= self.budget


def _stopper(budget: float):
    from ray.tune.stopper import Stopper

    class _FlopsBudget(FlopsBudget, Stopper):
        pass

    return _FlopsBudget(budget)


def _callback(uri: str | None, experiment: str, sweep_id: str):
    """Closes the MLflow runs of trials that Tune stopped or lost (the trial itself could not)."""
    from ray.tune import Callback

    from harness.launch import FINAL_KEY
    from harness.tracking.sweep import end_run, find_trial_run

    class CloseStoppedTrials(Callback):
        def _close(self, trial, status: str, reason: str) -> None:
            if uri is None:
                return
            meta = (trial.config or {}).get(TRIAL_KEY) or {}
            if "number" not in meta:
                return
            rid = find_trial_run(uri, experiment, sweep_id, int(meta["number"]))
            if rid is None:
                return
            from harness.tracking import client
            if client(uri).get_run(rid).info.status == "RUNNING":
                end_run(uri, rid, status=status, tags={"rbench.stop_reason": reason})

        def on_trial_complete(self, iteration, trials, trial, **info):
            last = trial.last_result or {}
            if not last.get(FINAL_KEY):
                flops = last.get("flops_cumulative")
                at = f" at {flops:.3g} training FLOPs" if isinstance(flops, (int, float)) else ""
                self._close(trial, "KILLED", f"stopped early by the scheduler or the budget{at}")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._close(trial, "FAILED", "the trial's process died")

    return CloseStoppedTrials()


# ---------------------------------------------------------------------------------------------
# The driver

def _read_state(sweep_dir: Path) -> dict[str, Any] | None:
    p = sweep_dir / STATE_FILE
    return json.loads(p.read_text()) if p.is_file() else None


def _write_state(sweep_dir: Path, state: dict[str, Any]) -> None:
    tmp = sweep_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, sweep_dir / STATE_FILE)


def run_sweep(spec_path: str | Path, *, resume: bool = False, address: str | None = None,
              callbacks: list | None = None) -> dict:
    """Run (or, with resume, continue) a sweep to its end. Returns `status()`'s summary.
    `callbacks`: extra Ray Tune callbacks (e.g. timing probes in harness.bench.ray_overhead)."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from harness.launch import ensure_ray
    from harness.tracking import artifact_root, ensure_experiment, resolve_uri
    from harness.tracking.sweep import end_run, start_parent_run

    sw = load_spec(spec_path)
    spec, sweep_dir = sw.spec, sw.sweep_dir
    state = _read_state(sweep_dir)
    if state and not resume:
        raise UserError(f"sweep '{spec.name}' already exists in {sweep_dir}: pass --resume to "
                        "continue it, or give the spec another name")
    if resume and not state:
        raise UserError(f"--resume: no sweep '{spec.name}' in {sweep_dir}")
    if state and state["fingerprint"] != sw.fingerprint:
        raise UserError(f"{sw.path}: the spec changed since sweep '{spec.name}' started; "
                        "--resume needs the same spec (give a changed spec a new name)")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    # The sweep id names the Optuna study and tags every MLflow run: unique per sweep, so a new
    # sweep with an old name (in the same RDB or MLflow server) never mixes with the old one.
    sweep_id = state["sweep_id"] if state else f"{spec.name}-{secrets.token_hex(4)}"

    # Tune saves its experiment state (trial table, searcher, stopper) at most this often; small,
    # so a killed driver loses little (what it does lose is re-adopted from the study).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # Checkpoint reports carry no objective until the final evaluation, and failure records
    # none at all; the searcher and ASHA skip such results, so Tune must not reject them.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    r = spec.resources
    driver_cpu = float(r.trial_driver.get("cpu", r.trial_driver.get("CPU", 0.0)))
    need = spec.max_concurrency * (r.workers * r.cpus_per_worker + driver_cpu)
    ensure_ray(address, runs_dir=sw.base.runs_dir, num_cpus=max(os.cpu_count() or 1, math.ceil(need)))

    uri = resolve_uri(sw.base) if sw.base.tracking.enabled else None
    if uri:   # create the experiment here, before trials race to do it in SQLite
        ensure_experiment(uri, sw.base.tracking.experiment, artifact_root(sw.base))
    parent = None
    if uri:
        parent = start_parent_run(sw.base, sweep_id=sweep_id, sweep_name=spec.name,
                                  sweep_dir=sweep_dir, spec=yaml.safe_load(sw.text),
                                  run_id=state.get("parent_run_id") if state else None)
    directions = ["maximize" if o.mode == "max" else "minimize" for o in spec.objectives]
    storage = open_storage(sw.storage_url)
    study = optuna.create_study(storage=storage, study_name=sweep_id, directions=directions,
                                load_if_exists=True)
    study.set_user_attr("sweep_dir", str(sweep_dir))
    if parent:
        study.set_user_attr("mlflow_parent_run_id", parent)
    _write_state(sweep_dir, {
        "sweep_id": sweep_id, "name": spec.name, "spec": str(sw.path), "fingerprint": sw.fingerprint,
        "storage": sw.storage_url, "parent_run_id": parent, "tracking_uri": uri,
        "experiment": sw.base.tracking.experiment, "num_trials": sw.num_trials,
        "created": (state or {}).get("created", time.time()),
        "driver": {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()},
    })

    ctx = SweepContext(sweep_id=sweep_id, sweep_name=spec.name, sweep_dir=str(sweep_dir),
                       base_data=sw.base_data, resources=r.model_dump(), parent_run_id=parent,
                       tracking_uri=uri, experiment=sw.base.tracking.experiment)
    # The trial actor only starts and waits on its TorchTrainer (which reserves the workers'
    # resources itself); max_concurrency bounds how many run at once.
    trainable = tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), dict(r.trial_driver))
    tune_path = sweep_dir / TUNE_NAME

    if resume and tune.Tuner.can_restore(str(tune_path)):
        tuner = tune.Tuner.restore(str(tune_path), trainable=trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
    else:
        metric = [o.metric for o in spec.objectives]
        mode = [o.mode for o in spec.objectives]
        searcher = _study_search_class()(
            space=optuna_space(spec), metric=metric if spec.multi_objective else metric[0],
            mode=mode if spec.multi_objective else mode[0], sampler=make_sampler(spec),
            study_name=sweep_id, storage=storage, seeds=spec.seed_list,
            seed_in_space=spec.sampler.type == "grid")
        sch = spec.scheduler
        if sch.type == "asha":
            obj = next((o for o in spec.objectives if o.metric == sch.metric), spec.objectives[0])
            # stop_last_trials=False: a trial that reaches max_t is not cut off before its final
            # evaluation (its own train.steps / train.flops_budget ends it).
            scheduler = ASHAScheduler(time_attr=sch.time_attr, metric=sch.metric or obj.metric,
                                      mode=obj.mode, max_t=sch.max_t, grace_period=sch.grace_period,
                                      reduction_factor=sch.reduction_factor, stop_last_trials=False)
        else:
            scheduler = FIFOScheduler()
        done_before = len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
        num = sw.num_trials - done_before if sw.num_trials > 0 else -1
        if sw.num_trials > 0 and num <= 0:
            return status(sweep_dir)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher, scheduler=scheduler, num_samples=num,
                max_concurrent_trials=spec.max_concurrency, time_budget_s=spec.budget.wall_time,
                trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            run_config=tune.RunConfig(
                name=TUNE_NAME, storage_path=str(sweep_dir),
                stop=_stopper(spec.budget.flops) if spec.budget.flops else None,
                failure_config=tune.FailureConfig(max_failures=0),
                callbacks=[_callback(uri, sw.base.tracking.experiment, sweep_id),
                           *(callbacks or [])],
                verbose=1),
        )
    try:
        tuner.fit()
        summary = status(sweep_dir)
        if summary["counts"]["running"]:
            # Tune returns normally after Ctrl-C, leaving the unfinished trials RUNNING.
            raise KeyboardInterrupt
    except BaseException:
        if parent:   # leave it resumable; mark why it is not running
            end_run(uri, parent, status="KILLED", tags={
                "rbench.stop_reason": "driver interrupted: rbench sweep SPEC --resume continues"})
        raise
    if parent:
        end_run(uri, parent, status="FINISHED",
                metrics={f"trials_{k}": v for k, v in summary["counts"].items()},
                tags={"rbench.best": json.dumps(summary["best"])[:5000]})
    return summary


def _trial_name(trial) -> str:
    meta = (trial.config or {}).get(TRIAL_KEY) or {}
    return f"trial_{int(meta['number']):05d}" if "number" in meta else str(trial.trial_id)


# ---------------------------------------------------------------------------------------------
# Status

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve_sweep_dir(target: str | Path) -> Path:
    """A sweep folder, or a spec file (whose folder is <runs_dir>/sweeps/<name>)."""
    p = Path(target)
    if p.is_dir():
        if not (p / STATE_FILE).is_file():
            raise UserError(f"{p}: not a sweep folder (no {STATE_FILE})")
        return p
    if p.is_file():
        sweep_dir = load_spec(p).sweep_dir
        if not (sweep_dir / STATE_FILE).is_file():
            raise UserError(f"{p}: this sweep has not been started (nothing in {sweep_dir})")
        return sweep_dir
    raise UserError(f"{p}: no such sweep spec or sweep folder")


def status(sweep_dir: str | Path) -> dict[str, Any]:
    """Trials done / stopped early / running / failed / pending, read from the Optuna study."""
    import optuna
    from optuna.trial import TrialState

    sweep_dir = Path(sweep_dir)
    state = _read_state(sweep_dir)
    if state is None:
        raise UserError(f"{sweep_dir}: not a sweep folder (no {STATE_FILE})")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=state["sweep_id"], storage=open_storage(state["storage"]))
    trials = study.get_trials(deepcopy=False)
    driver = state.get("driver") or {}
    alive = driver.get("host") == socket.gethostname() and _pid_alive(int(driver.get("pid", -1)))
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == TrialState.COMPLETE:
            st = "done"
        elif t.state == TrialState.PRUNED:
            st = "stopped"
        elif t.state == TrialState.FAIL:
            st = "failed"
        elif t.state == TrialState.RUNNING:
            st = "running" if alive else "interrupted"
        else:
            st = "pending"      # WAITING: an enqueued seed replica
        rows.append({"number": t.number, "state": st, "seed": t.user_attrs.get("seed"),
                     "params": dict(t.params), "values": list(t.values) if t.values else None,
                     "flops": t.user_attrs.get("flops"),
                     "reason": t.user_attrs.get("failure_reason")})
    counts = {k: sum(r["state"] == k for r in rows)
              for k in ("done", "stopped", "running", "interrupted", "failed", "pending")}
    total = int(state.get("num_trials", -1))
    if total > 0:
        counts["pending"] += max(0, total - sum(r["state"] != "pending" for r in rows)
                                 - counts["pending"])
    best = None
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if done and len(study.directions) == 1:
        b = study.best_trial
        best = {"number": b.number, "value": b.value, "params": b.params,
                "seed": b.user_attrs.get("seed")}
    elif done:
        best = [{"number": b.number, "values": b.values, "params": b.params}
                for b in study.best_trials]
    return {"sweep_id": state["sweep_id"], "sweep_dir": str(sweep_dir), "total": total,
            "counts": counts, "trials": rows, "best": best, "driver_alive": alive}


def format_status(s: dict[str, Any]) -> str:
    c = s["counts"]
    total = s["total"] if s["total"] > 0 else "unbounded"
    lines = [f"sweep {s['sweep_id']}  ({s['sweep_dir']})",
             f"trials: {total}  done {c['done']}  stopped early {c['stopped']}  running {c['running']}"
             f"  interrupted {c['interrupted']}  failed {c['failed']}  pending {c['pending']}"]
    if c["interrupted"]:
        lines.append("the driver is not running: continue with `rbench sweep SPEC --resume`")
    for r in s["trials"]:
        vals = "" if r["values"] is None else " values=" + ",".join(f"{v:.4g}" for v in r["values"])
        params = " ".join(f"{k}={v}" for k, v in r["params"].items() if k != "seed")
        flops = f" flops={r['flops']:.3g}" if r["flops"] else ""
        why = f"  reason: {r['reason']}" if r["reason"] and r["state"] == "failed" else ""
        lines.append(f"  #{r['number']:<4} {r['state']:<11} seed={r['seed']} {params}{vals}{flops}{why}")
    return "\n".join(lines)
