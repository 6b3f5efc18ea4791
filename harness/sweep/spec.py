"""Sweep specs: a YAML file -> a validated `SweepSpec` (families, spaces, seeds, sampler,
budget, scheduler, resources), and one trial's experiment config from it.

A spec compares FAMILIES: each has `fixed` overrides (e.g. `model.arch: transformer`) and its own
`space`; the top-level `space` is shared by all of them. A spec without `families` is one family
(named "default") searching `space` over the base experiment, as before.

    families:
      trm:         {fixed: {model.arch: trm}, space: {model.n: [1, 2, 4]}}
      transformer: {fixed: {model.arch: transformer, model.match_params: {family: trm}},
                    space: {model.match_multiple: [1, 4, 16]}}
    space: {model.hidden: [32, 64]}

`model.match_params: {family: F}` sizes the trial's transformer to family F's exact parameter
count (harness/sweep/point.py builds a trial's config; sizing.py counts parameters).

Every mistake is a ConfigError naming the spec file, the family and the dotted key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.config import (
    ExperimentConfig,
    load_experiment,
    read_yaml,
)
from harness.errors import ConfigError
from harness.testtime import TestTimeSpec

# ---------------------------------------------------------------------------------------------
# The spec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Choice = StrictBool | StrictInt | StrictFloat | StrictStr | None  # what Optuna can store


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
        if self.log:  # a log grid has no single natural spacing: ask for the values
            raise ValueError(
                "a grid cannot enumerate a log-scale int range: list the values with type: categorical"
            )
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
            raise ValueError(
                "a grid needs finitely many values: give step, or list the values with type: categorical"
            )
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]


def _shorthand(v: Any) -> Any:
    """`[1, 2, 4]` is short for `{type: categorical, values: [1, 2, 4]}`."""
    return {"type": "categorical", "values": v} if isinstance(v, list) else v


Dimension = Annotated[
    Categorical | IntRange | FloatRange, Field(discriminator="type"), BeforeValidator(_shorthand)
]


class Objective(_Strict):
    metric: str = "exact_accuracy"  # a key of the trial's final report (eval metrics, flops, ...)
    mode: Literal["max", "min"] = "max"


class SamplerSpec(_Strict):
    type: Literal["grid", "tpe", "nsga2", "random"] = "grid"
    seed: int | None = 0  # the sampler's own seed (reproducible suggestions)
    population_size: PositiveInt | None = None  # nsga2


def _seconds(v: Any) -> Any:
    """3600, "3600", "90s", "30m", "2h" -> seconds."""
    if isinstance(v, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", v)
        if not m:
            raise ValueError("expected seconds, or a number with unit s, m or h (e.g. 30m)")
        return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    return v


class Budget(_Strict):
    trials: PositiveInt | None = None  # Tune trials (each seed of a point is one trial)
    flops: float | None = Field(None, gt=0)  # total training FLOPs over all trials
    wall_time: float | None = Field(None, gt=0)  # seconds of driver time (survives --resume)

    _w = field_validator("wall_time", mode="before")(_seconds)


class SchedulerSpec(_Strict):
    type: Literal["fifo", "asha"] = "fifo"
    time_attr: str = "flops_cumulative"  # ASHA's clock: training FLOPs, so depth is compared at equal compute
    max_t: float | None = Field(None, gt=0)  # a trial's budget on that clock
    grace_period: float | None = Field(None, gt=0)  # first rung
    reduction_factor: float = Field(3.0, gt=1)
    metric: str | None = None  # default: the first objective

    @model_validator(mode="after")
    def _asha_needs_clock(self):
        if self.type == "asha" and (self.max_t is None or self.grace_period is None):
            raise ValueError(
                "asha needs max_t and grace_period (in units of time_attr, training FLOPs by default)"
            )
        if self.type == "asha" and self.grace_period > self.max_t:
            raise ValueError("grace_period must not exceed max_t")
        return self


class Resources(_Strict):
    workers: PositiveInt = 1  # data-parallel Ray Train workers per trial
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)
    max_failures: int = Field(2, ge=-1)  # restarts per trial (from its last checkpoint)
    # 1 worker: train in the Tune trial's own actor (no Ray Train job: seconds, not tens of
    # seconds, per trial); false: a 1-worker TorchTrainer, as for 2+ workers
    train_in_trial: bool = True
    # Ray resources of a 2+-worker (or train_in_trial: false) trial's driver (the Tune actor that
    # starts and watches the Train job; it computes nothing). Ray advises pinning these to safe
    # nodes with a custom resource, e.g. {driver_slot: 1} where only the head node offers it.
    trial_driver: dict[str, float] = Field(default_factory=lambda: {"cpu": 0.01})

    @field_validator("trial_driver")
    @classmethod
    def _some_resource(cls, v):
        if not any(x > 0 for x in v.values()) or any(x < 0 for x in v.values()):
            raise ValueError("expected at least one positive resource amount and none negative")
        return v


class Family(_Strict):
    """One architecture (or variant) of the study: `fixed` overrides applied to every one of its
    trials, and its own search space (searched only in its trials, with the shared space)."""

    fixed: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Dimension] = Field(default_factory=dict)

    @field_validator("fixed")
    @classmethod
    def _match_ref(cls, fixed):
        ref = fixed.get("model.match_params")
        if isinstance(ref, dict) and (set(ref) != {"family"} or not isinstance(ref["family"], str)):
            raise ValueError(
                "model.match_params takes a parameter count, or {family: NAME} to match "
                "family NAME's parameter count"
            )
        if "seed" in fixed:
            raise ValueError("'seed' is not fixed per family: list seeds under `seeds`")
        return fixed


DEFAULT_FAMILY = "default"  # the family of a spec that lists none


def plain_key(name: str) -> str:
    """An Optuna parameter name without its family prefix (`trm:model.n` -> `model.n`)."""
    return name.split(":", 1)[1] if ":" in name else name


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # the sweep id
    experiment: str  # base experiment YAML (relative to this file)
    overrides: list[str] = Field(default_factory=list)  # applied to the base before the space
    families: dict[str, Family] | None = None  # none: one family, the base experiment
    space: dict[str, Dimension] = Field(default_factory=dict)  # shared by every family
    seeds: list[StrictInt] | PositiveInt = Field(default_factory=lambda: [0])
    sampler: SamplerSpec = SamplerSpec()
    objectives: list[Objective] = Field(default_factory=lambda: [Objective()], min_length=1, max_length=2)
    budget: Budget = Budget()
    scheduler: SchedulerSpec = SchedulerSpec()
    max_concurrency: PositiveInt = 1
    resources: Resources = Resources()
    storage: str | None = None  # Optuna RDB URL; default sqlite:///<sweep folder>/optuna.db
    test_time: TestTimeSpec | None = None  # a test-time grid run on each finished trial's checkpoint
    runs_dir: str | None = None  # default: the base experiment's runs_dir

    @field_validator("storage")
    @classmethod
    def _no_password(cls, url):
        from harness.credentials import STORAGE_ENV, has_password

        if url is not None and has_password(url):
            raise ValueError(
                "a password in the spec: leave it out (libpq reads PGPASSWORD), "
                f"or give the whole URL in the environment variable {STORAGE_ENV}"
            )
        return url

    @field_validator("space")
    @classmethod
    def _no_seed_key(cls, space):
        if "seed" in space:
            raise ValueError("'seed' is not searched: list seeds under `seeds`")
        return space

    @field_validator("families")
    @classmethod
    def _family_names(cls, families):
        if families is not None and not families:
            raise ValueError("list at least one family, or leave `families` out")
        for name, fam in (families or {}).items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name == DEFAULT_FAMILY:
                raise ValueError(
                    f"family name {name!r}: letters, digits, '_', '.', '-' (and not {DEFAULT_FAMILY!r})"
                )
            if "seed" in fam.space:
                raise ValueError(f"{name}: 'seed' is not searched: list seeds under `seeds`")
        return families

    @model_validator(mode="after")
    def _something_to_sweep(self):
        if not self.families and not self.space:
            raise ValueError("give a `space` to search, or `families`")
        return self

    @property
    def family_specs(self) -> dict[str, Family]:
        """The families, in spec order (a spec without families has one: the base experiment)."""
        return dict(self.families) if self.families else {DEFAULT_FAMILY: Family()}

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def family_space(self, family: str) -> dict[str, Any]:
        """The searched keys of one family's trials: the shared space, then the family's own."""
        return {**self.space, **self.family_specs[family].space}

    def grid(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (family, point) of a grid sweep: the union of the families' grids."""
        out = []
        for name in self.family_specs:
            space = self.family_space(name)
            keys = list(space)
            for values in itertools.product(*(space[k].grid() for k in keys)):
                out.append((name, dict(zip(keys, values))))
        return out

    def grid_points(self) -> int:
        return len(self.grid())


def _describe(err: dict) -> str:
    kind, msg, got = err.get("type", ""), err.get("msg", "invalid value"), err.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = msg.removeprefix("Value error, ")
    from harness.credentials import redact

    shown = "a mapping" if isinstance(got, dict) else repr(redact(got))  # never echo a password
    return f"{msg[0].lower() + msg[1:] if msg else msg} (got {shown})"


def _dotted(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    # Unions insert the chosen member's tag into the location (space.model.T.int.low): drop it.
    return ".".join(
        p
        for p in parts
        if p not in ("categorical", "int", "float")
        and not p.startswith(("list[", "constrained-", "function-"))
    )


@dataclass
class LoadedSweep:
    spec: SweepSpec
    path: Path
    base: ExperimentConfig  # base experiment with the spec's overrides, absolute paths
    base_data: dict[str, Any]  # the same as a plain mapping (trial configs start from it)
    text: str  # the spec file's contents (logged to MLflow)

    @property
    def sweep_dir(self) -> Path:
        return Path(self.base.runs_dir) / "sweeps" / self.spec.name

    @property
    def storage_url(self) -> str:
        """The Optuna storage as it may be recorded (a password masked): the spec's `storage`, else
        RBENCH_OPTUNA_STORAGE, else SQLite in the sweep folder (harness/credentials.py)."""
        import os

        from harness.credentials import STORAGE_ENV, mask

        env = os.environ.get(STORAGE_ENV)
        return self.spec.storage or (mask(env) if env else f"sqlite:///{self.sweep_dir / 'optuna.db'}")

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

    def trial_config(
        self, family: str, params: dict[str, Any], seed: int, *, sweep_id: str, number: int
    ) -> ExperimentConfig:
        from harness.sweep.point import trial_config

        return trial_config(self.base_data, self.spec, family, params, seed, sweep_id=sweep_id, number=number)


def load_spec(path: str | Path) -> LoadedSweep:
    """Read and validate a sweep spec, its base experiment and every family's fixed and searched
    keys against it. Any mistake is a ConfigError naming the file, the family and the dotted key."""
    from harness.data_source import choose_data
    from harness.launch import absolute_config
    from harness.sweep.point import trial_config

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
    if spec.runs_dir:  # the spec's runs folder replaces the experiment's (data, MLflow, sweeps)
        overrides.append(f"runs_dir={json.dumps(str(Path(spec.runs_dir).resolve()))}")
    try:
        base = load_experiment(exp_path, overrides)
    except ConfigError as e:
        raise ConfigError(e.key, e.expected, source=f"{e.source} (base experiment of {source})") from None
    # A paper recipe names the published task and its generated stand-in: as `rbench run` without
    # --from, trials train on the stand-in (and say so in their tags) unless the spec's overrides
    # set task.stand_in=null and point task.source/task.train_path/task.test_path at the files.
    try:
        base = choose_data(base)
    except ConfigError as e:
        raise ConfigError(e.key, e.expected, source=f"{exp_path} (base experiment of {source})") from None
    base = absolute_config(base)
    base_data = base.to_dict()

    def where(family: str, section: str, key: str) -> str:
        return (
            f"{section}.{key}"
            if spec.families is None or (section == "space" and key in spec.space)
            else f"families.{family}.{section}.{key}"
        )

    if spec.sampler.type == "grid":
        for name in spec.family_specs:
            for key, dim in spec.family_space(name).items():
                try:
                    dim.grid()
                except ValueError as e:
                    raise ConfigError(where(name, "space", key), str(e), source=source) from None
        total = spec.grid_points() * len(spec.seed_list)
        if spec.budget.trials and spec.budget.trials > total:
            raise ConfigError(
                "budget.trials",
                f"at most the grid's {spec.grid_points()} points x "
                f"{len(spec.seed_list)} seeds for a grid sweep",
                source=source,
            )
    elif not (spec.budget.trials or spec.budget.flops or spec.budget.wall_time):
        raise ConfigError(
            "budget",
            f"a {spec.sampler.type} sweep needs budget.trials, budget.flops or budget.wall_time",
            source=source,
        )
    if spec.sampler.type == "nsga2" and not spec.multi_objective:
        raise ConfigError(
            "sampler.type",
            "nsga2 is multi-objective: give two objectives (e.g. exact_accuracy max, flops min), or use tpe",
            source=source,
        )

    families = spec.family_specs
    for name, fam in families.items():
        ref = fam.fixed.get("model.match_params")
        if isinstance(ref, dict) and (ref["family"] not in families or ref["family"] == name):
            raise ConfigError(
                where(name, "fixed", "model.match_params"),
                f"family {ref['family']!r} is not another family of this spec "
                f"(families: {', '.join(families)})",
                source=source,
            )
        # The family's fixed overrides must build a valid config...
        try:
            trial_config(base_data, spec, name, {}, 0, sweep_id=spec.name, number=0)
        except ConfigError as e:
            key = e.key if e.key in fam.fixed else (e.key or "fixed")
            raise ConfigError(where(name, "fixed", key), e.expected, source=source) from None
        # ... and every searched key must exist there and accept the values searched.
        for key, dim in spec.family_space(name).items():
            probes = dim.values if isinstance(dim, Categorical) else [dim.low, dim.high]
            for value in probes:
                try:
                    trial_config(base_data, spec, name, {key: value}, 0, sweep_id=spec.name, number=0)
                except ConfigError as e:
                    raise ConfigError(
                        where(name, "space", key),
                        f"value {value!r} does not fit the experiment ({e.key}: {e.expected})",
                        source=source,
                    ) from None
    text = path.read_text()
    return LoadedSweep(spec=spec, path=path.resolve(), base=base, base_data=base_data, text=text)
