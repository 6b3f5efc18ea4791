"""Experiment configuration: one YAML file -> typed, validated, frozen config objects.

`load_experiment(path, overrides)` is the only way configs are read. Overrides are dotted
`key=value` pairs parsed as YAML scalars (`train.lr=3e-4 model.n=4 model.arch=trm`). Every mistake
(missing file, bad YAML, unknown key, wrong type, impossible value) raises `ConfigError` naming the
file, the dotted key and what was expected, before any work starts.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from harness.errors import ConfigError
from models.registry import ARCH_NAMES, ModelConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskConfig(BaseModel):
    """`name` picks a task from the registry (`rbench data list`); any other key is a parameter of
    that task family, validated by `benchmarks.registry` (so unknown keys still fail early)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str
    # a registered task that stands in for `name` when its published files are not given with
    # --from (paper recipes; see harness/data_source.py). Not a task parameter.
    stand_in: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TrainConfig(_Strict):
    steps: PositiveInt = 1000  # optimizer steps = supervision segments per row
    flops_budget: float | None = Field(None, gt=0)  # stop at this many training FLOPs (equal-compute studies)
    batch_size: PositiveInt = 64  # global batch (split across data-parallel workers)
    lr: float = Field(1e-4, gt=0)
    lr_warmup_steps: int = Field(0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"  # after the linear warm-up
    lr_min_ratio: float | None = Field(None, ge=0, le=1)  # cosine floor as a fraction of lr (default 0)
    optimizer: Literal["adamw", "adam_atan2"] = "adamw"  # adam_atan2: the reference's rule (harness/optim.py)
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    puzzle_emb_lr: float = Field(1e-2, gt=0)
    puzzle_emb_weight_decay: float = Field(0.1, ge=0)
    ema_decay: float | None = Field(None, gt=0, lt=1)  # e.g. 0.999 for TRM; EMA weights are evaluated
    eval_every: int = Field(0, ge=0)  # 0 = only at the end
    eval_examples: int | None = Field(None, gt=0)  # cap on test examples per evaluation
    # Examples (whole puzzle groups) held out of the TRAINING data and evaluated beside the test
    # split (eval/val_* metrics); the report picks the best checkpoint on these, never on test.
    val_examples: int | None = Field(None, gt=0)
    eval_batch_size: PositiveInt | None = None
    checkpoint_every: int = Field(0, ge=0)  # 0 = only at the end
    keep_checkpoints: PositiveInt = 2  # newest complete checkpoints kept on disk
    log_every: PositiveInt = 10


class EngineConfig(_Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    zero_stage: int = Field(0, ge=0, le=3)
    threads: PositiveInt | None = None  # torch intra-op threads per worker (CPU)


class TrackingConfig(_Strict):
    enabled: bool = True
    uri: str | None = None  # default: MLFLOW_TRACKING_URI, else sqlite:///<runs>/mlflow.db
    experiment: str = "rbench"
    run_name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class ExperimentConfig(_Strict):
    name: str = "experiment"
    seed: int = 0
    runs_dir: str = "runs"  # everything a run writes lives under here
    model: ModelConfig
    task: TaskConfig
    train: TrainConfig = TrainConfig()
    engine: EngineConfig = EngineConfig()
    tracking: TrackingConfig = TrackingConfig()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---------------------------------------------------------------------------------------------
# Loading


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with `yaml.safe_load`; any problem is a ConfigError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(None, "file not found", source=str(p))
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise ConfigError(where, f"invalid YAML ({getattr(e, 'problem', e)})", source=str(p)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            None, f"expected a mapping at the top level, got {type(data).__name__}", source=str(p)
        )
    return data


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.lr=3e-4` -> (["train", "lr"], 3e-4). Values are YAML scalars (or flow lists/maps)."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(text, "expected an override of the form dotted.key=value", source="command line")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 (PyYAML) reads "3e-4" as a string: accept it as the float the user meant.
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        value = float(value)
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, part in enumerate(path[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(
                    ".".join(path[: i + 1]), "is not a section; cannot set a sub-key", source="command line"
                )
            node = nxt
        node[path[-1]] = value
    return out


def _describe(err: dict) -> str:
    kind, msg = err.get("type", ""), err.get("msg", "invalid value")
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"{msg}"
    if kind == "value_error":  # our validators' messages already show the values
        msg = msg.removeprefix("Value error, ")
        if isinstance(got, dict):
            return msg
    shown = repr(got) if not isinstance(got, dict) else "a mapping"
    return f"{msg[0].lower() + msg[1:] if msg else msg} (got {shown})"


def _dotted(loc: tuple) -> str:
    # Discriminated unions insert the tag into the location (model.trm.T): drop it.
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] == "model" and parts[1] in ARCH_NAMES:
        parts.pop(1)
    return ".".join(parts)


def validate(data: dict[str, Any], source: str) -> ExperimentConfig:
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(_dotted(first["loc"]) or None, _describe(first), source=source) from None
    # Checks across keys: named after the key a user would change.
    if cfg.train.lr_warmup_steps > cfg.train.steps:
        raise ConfigError(
            "train.lr_warmup_steps",
            f"must not exceed train.steps ({cfg.train.steps}), got {cfg.train.lr_warmup_steps}",
            source=source,
        )
    t = cfg.train  # a schedule means what it says: no cosine that stays constant
    if t.lr_schedule == "cosine" and t.lr_min_ratio == 1.0:
        raise ConfigError(
            "train.lr_min_ratio",
            "1.0 makes the cosine schedule constant (its floor "
            "equals the peak lr): use lr_schedule: constant, or a floor below 1 "
            "(default 0)",
            source=source,
        )
    if t.lr_schedule == "constant" and t.lr_min_ratio not in (None, 1.0):
        raise ConfigError(
            "train.lr_min_ratio",
            f"is the floor of a cosine schedule, but "
            f"lr_schedule is constant (got {t.lr_min_ratio}): remove it, or use "
            f"lr_schedule: cosine",
            source=source,
        )
    return cfg


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load, override and validate one experiment file. Raises ConfigError on any mistake."""
    data = read_yaml(path)
    overrides = list(overrides or [])
    data = apply_overrides(data, overrides)
    source = str(path) + (" + overrides" if overrides else "")
    return validate(data, source)
