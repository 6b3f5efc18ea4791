"""Benchmark suites are data: `benchmarks/suites/<name>.yaml`.

    description: what the suite is for
    repeats: 5                      # samples per benchmark unless a benchmark says otherwise
    threads: 1                      # optional: torch threads for every benchmark (less noise)
    benchmarks:
      - name: train-step/trm        # unique; metrics are addressed as <name>/<metric>
        kind: train_step            # one of harness.benchsuite.measure.KINDS
        repeats: 6                  # optional
        params: {model: {arch: trm, hidden: 64}, batch_size: 8}

`load_suite` validates the file and every benchmark's params (the kind's pydantic model) before
anything runs; a mistake is a UserError naming the file, the key and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from harness.config import read_yaml
from harness.errors import ConfigError

SUITES_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "suites"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BenchmarkSpec(_Strict):
    name: str = Field(min_length=1)
    kind: str
    repeats: PositiveInt | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class SuiteSpec(_Strict):
    description: str = ""
    repeats: PositiveInt = 5
    threads: PositiveInt | None = None  # torch intra-op threads, set before every benchmark
    definitions: dict[str, Any] = Field(default_factory=dict)  # YAML anchors to reuse; not read
    benchmarks: list[BenchmarkSpec] = Field(min_length=1)


class Suite:
    """A validated suite: `benchmarks` is a list of (BenchmarkSpec, parsed params, repeats)."""

    def __init__(self, name: str, path: Path, spec: SuiteSpec, benchmarks: list):
        self.name, self.path, self.spec, self.benchmarks = name, path, spec, benchmarks

    def config(self) -> dict:
        """The suite as run, for the results file."""
        return {
            "file": str(self.path),
            "description": self.spec.description,
            "repeats": self.spec.repeats,
            "threads": self.spec.threads,
            "benchmarks": [
                {"name": b.name, "kind": b.kind, "repeats": n, "params": p.model_dump(mode="json")}
                for b, p, n in self.benchmarks
            ],
        }


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def suite_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(
            "--suite", f"no suite {name_or_path!r}: expected one of {', '.join(suite_names())} or a YAML file"
        )
    return path


def load_suite(name_or_path: str) -> Suite:
    from harness.benchsuite.measure import KINDS

    path = suite_path(name_or_path)
    source = str(path)
    data = read_yaml(path)
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as e:
        raise _config_error(e, source, "") from None
    seen: set[str] = set()
    resolved = []
    for i, b in enumerate(spec.benchmarks):
        key = f"benchmarks[{i}]"
        if b.name in seen:
            raise ConfigError(f"{key}.name", f"duplicate benchmark name {b.name!r}", source=source)
        seen.add(b.name)
        if b.kind not in KINDS:
            raise ConfigError(
                f"{key}.kind", f"expected one of {', '.join(sorted(KINDS))}, got {b.kind!r}", source
            )
        params_model = KINDS[b.kind].Params
        try:
            params = params_model.model_validate(b.params)
        except ValidationError as e:
            raise _config_error(e, source, f"{key}.params.") from None
        check = getattr(params, "check", None)
        if check is not None:
            try:
                check()
            except ConfigError as e:
                where = f"{key}.params.{e.key}" if e.key else f"{key}.params"
                raise ConfigError(where, e.expected, source) from None
        resolved.append((b, params, b.repeats or spec.repeats))
    return Suite(path.stem, path, spec, resolved)


def _config_error(e: ValidationError, source: str, prefix: str) -> ConfigError:
    first = e.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
    got = first.get("input")
    shown = "a mapping" if isinstance(got, dict) else repr(got)
    msg = "unknown key" if first["type"] == "extra_forbidden" else f"{first['msg']} (got {shown})"
    return ConfigError((prefix + loc).rstrip(".") or None, msg, source=source)
