"""The task registry: tasks are data.

Every YAML file in `benchmarks/tasks/` declares one family of tasks:

    generator: benchmarks.sudoku:Sudoku      # module:class implementing `Family`
    tasks:
      sudoku-4x4:
        description: one line for `rbench data list`
        metric: exact_accuracy               # the headline metric reports use
        params: {source: generate, size: 4, train_size: 3000, ...}

`params` are the defaults of that task; an experiment's `task:` section names the task and may
override any of them (`task: {name: sudoku-4x4, train_size: 2000}`). The family validates the merged
parameters with its pydantic model, so an unknown key or a wrong type fails before any work, as a
`ConfigError` on `task.<param>`.

`resolve()` gives a `TaskSpec`: sequence length, vocabulary and number of puzzle identifiers are
known from the parameters alone, without building any data (model summaries use this).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar
from collections.abc import Mapping

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmarks.dataset import DatasetMeta, PuzzleDataset
from benchmarks.errors import ConfigError, UserError

TASKS_DIR = Path(__file__).with_name("tasks")


class Params(BaseModel):
    """Base of every family's parameter model: unknown keys are errors; values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    data_seed: int = Field(
        0,
        ge=0,
        description="seed of generation / subsampling / augmentation; "
        "kept apart from the model seed so data stays fixed",
    )


class Family:
    """What a task family provides. Subclasses set `Params` and implement `meta` and `build`."""

    Params: ClassVar[type[Params]] = Params
    # Bump when the generator's output for the same parameters changes: it is part of the cache key.
    VERSION: ClassVar[int] = 1
    # Split names `build` returns, in display order.
    SPLITS: ClassVar[tuple[str, ...]] = ("train", "test")

    def check(self, name: str, p: Params) -> None:
        """Cross-parameter checks that pydantic cannot express; raise ConfigError("task.<key>")."""

    def meta(self, name: str, p: Params) -> DatasetMeta:
        raise NotImplementedError

    def source_files(self, p: Params) -> dict[str, Path]:
        """Local input files whose content goes into the cache key (e.g. a CSV given with --from)."""
        return {}

    def build(self, spec: TaskSpec) -> dict[str, PuzzleDataset]:
        raise NotImplementedError

    def local_source(self, paths: list[str]) -> dict[str, Any]:
        """Parameter overrides that make the task read the local files given with `--from`."""
        raise UserError("this task reads no local files (--from is for the published datasets)")

    def render(self, ds: PuzzleDataset, i: int) -> str:
        """Example `i` as text for `rbench data show` (default: the raw token rows)."""
        lab = np.where(ds.labels[i] == -100, 0, ds.labels[i])
        return f"input:  {' '.join(map(str, ds.inputs[i]))}\nlabel:  {' '.join(map(str, lab))}"

    def score(
        self, spec: TaskSpec, ds: PuzzleDataset, preds: np.ndarray, q_halt: np.ndarray
    ) -> dict[str, float]:
        """Family-specific metrics added to exact/token accuracy (e.g. ARC's voting pass@k)."""
        return {}


@dataclass(frozen=True)
class TaskSpec:
    """A resolved task: registry entry + validated parameters + the data's shape facts."""

    name: str
    family: Family
    generator: str  # "module:Class", recorded in the cache manifest
    params: Params
    metric: str
    description: str
    meta: DatasetMeta

    @property
    def seq_len(self) -> int:
        return self.meta.seq_len

    @property
    def vocab_size(self) -> int:
        return self.meta.vocab_size

    @property
    def num_puzzle_identifiers(self) -> int:
        return self.meta.num_puzzle_identifiers

    def config(self) -> dict[str, Any]:
        """The full task config (all parameters, defaults included), JSON-safe."""
        return {"name": self.name, **self.params.model_dump(mode="json")}


# ---------------------------------------------------------------------------------------------
# Declarations


class _TaskDecl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    metric: str = "exact_accuracy"
    params: dict[str, Any] = Field(default_factory=dict)


class _FileDecl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    generator: str = Field(pattern=r"^[\w.]+:\w+$")
    tasks: dict[str, _TaskDecl]


@dataclass(frozen=True)
class _Entry:
    name: str
    generator: str
    decl: _TaskDecl
    source: Path


def _load_declarations(tasks_dir: Path) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for path in sorted(tasks_dir.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(None, f"invalid YAML ({e})", source=str(path)) from None
        try:
            decl = _FileDecl.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            raise ConfigError(".".join(map(str, err["loc"])) or None, err["msg"], source=str(path)) from None
        for name, task in decl.tasks.items():
            if name in entries:
                raise ConfigError(
                    f"tasks.{name}", f"task already declared in {entries[name].source}", source=str(path)
                )
            entries[name] = _Entry(name, decl.generator, task, path)
    return entries


@cache
def _entries() -> dict[str, _Entry]:
    return _load_declarations(TASKS_DIR)


@cache
def _family(generator: str) -> Family:
    module, _, cls = generator.partition(":")
    return getattr(importlib.import_module(module), cls)()


def list_tasks() -> list[str]:
    """Registered task names, sorted."""
    return sorted(_entries())


def describe(name: str) -> _TaskDecl:
    return _entries()[name].decl


def family_of(name: str) -> Family:
    """The family object of a registered task (no parameter validation)."""
    entries = _entries()
    if name not in entries:
        raise ConfigError(
            "task.name",
            f"unknown task {name!r}; registered tasks: {', '.join(sorted(entries))} (see `rbench data list`)",
        )
    return _family(entries[name].generator)


# ---------------------------------------------------------------------------------------------
# Resolution


def _validation_error(e: ValidationError) -> ConfigError:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    kind, msg = err.get("type", ""), err.get("msg", "invalid value")
    if kind == "extra_forbidden":
        expected = "unknown parameter for this task"
    elif kind == "missing":
        expected = "required parameter is missing"
    else:
        expected = f"{msg} (got {err.get('input')!r})"
    return ConfigError(f"task.{loc}" if loc else "task", expected)


def resolve(task_cfg: Any) -> TaskSpec:
    """TaskConfig (or a mapping with `name`, or a bare name) -> validated TaskSpec. Builds nothing."""
    if isinstance(task_cfg, str):
        name, overrides = task_cfg, {}
    elif isinstance(task_cfg, Mapping):
        overrides = dict(task_cfg)
        name = overrides.pop("name", None)
    else:  # harness.config.TaskConfig
        name, overrides = task_cfg.name, dict(task_cfg.params)
    family = family_of(name)
    entry = _entries()[name]
    try:
        params = family.Params.model_validate({**entry.decl.params, **overrides})
    except ValidationError as e:
        raise _validation_error(e) from None
    family.check(name, params)
    meta = family.meta(name, params)
    return TaskSpec(
        name=name,
        family=family,
        generator=entry.generator,
        params=params,
        metric=entry.decl.metric,
        description=entry.decl.description,
        meta=meta,
    )


def split_seed(p: Params, *parts: int) -> np.random.Generator:
    """A generator for one stage of a build, derived from the task's data seed and the stage's
    non-negative integer tags (numpy's SeedSequence mixes them)."""
    return np.random.default_rng([p.data_seed, *parts])


def require_file(path: str | None, key: str) -> Path:
    if path is None:
        raise ConfigError(f"task.{key}", "a file path is required for this source")
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"task.{key}: file not found: {p}")
    return p
