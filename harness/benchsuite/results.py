"""The results file of `rbench bench run`: build, validate (benchmarks/schema/results-v1.json), write,
read.

One file per suite run: the suite and its resolved config, the git commit, package versions, a
description of the machine, and per benchmark its metrics, each with every raw sample and a summary
(mean, median, standard deviation, standard error). The file is validated against the schema when
written and again when read; a file that does not validate is a `UserError` naming the file, the
key and what was expected (exit 2).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import jsonschema

from harness.errors import UserError
from harness.provenance import git_info, package_versions

SCHEMA_VERSION = 1
SCHEMA_PATH = (
    Path(__file__).resolve().parents[2] / "benchmarks" / "schema" / f"results-v{SCHEMA_VERSION}.json"
)

# metric kind -> which direction is better (count: only equality is good)
BETTER = {"time": "lower", "throughput": "higher", "ratio": "lower", "accuracy": "higher", "count": "equal"}


def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def summarize(samples: list[float]) -> dict:
    """n, mean, median, sample standard deviation, standard error of the mean, min, max."""
    xs = [float(x) for x in samples]
    n = len(xs)
    sd = statistics.stdev(xs) if n > 1 else 0.0
    return {
        "n": n,
        "mean": statistics.fmean(xs),
        "median": statistics.median(xs),
        "stdev": sd,
        "stderr": sd / math.sqrt(n),
        "min": min(xs),
        "max": max(xs),
    }


def metric(name: str, kind: str, unit: str, samples: list[float], better: str | None = None) -> dict:
    """One metric entry. `better` defaults from the kind (a ratio such as "fraction of matmul"
    where higher is better passes better="higher")."""
    if kind not in BETTER:
        raise ValueError(f"unknown metric kind {kind!r}: expected one of {sorted(BETTER)}")
    if not samples:
        raise ValueError(f"metric {name!r} has no samples")
    xs = [float(x) for x in samples]
    if not all(math.isfinite(x) for x in xs):
        raise ValueError(f"metric {name!r} has a non-finite sample: {xs}")
    return {
        "name": name,
        "kind": kind,
        "unit": unit,
        "better": better or BETTER[kind],
        "samples": xs,
        "summary": summarize(xs),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gb() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


def machine() -> dict:
    """What the timings depend on. `bench compare` warns when these differ between two files."""
    import torch

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpus": cpus,
        "memory_gb": _memory_gb(),
        "gpu": gpu,
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg()[0],
    }


# the machine fields whose difference makes timings incomparable
MACHINE_KEYS = ("cpu_model", "cpus", "memory_gb", "gpu", "torch_threads")


def machine_differences(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in MACHINE_KEYS if a.get(k) != b.get(k)]


def new_document(suite: str, config: dict, benchmarks: list[dict], machine_info: dict, wall_s: float) -> dict:
    git = git_info()
    return {
        "schema_version": SCHEMA_VERSION,
        "suite": suite,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_s": wall_s,
        "git": {"commit": git["git_commit"], "dirty": git["git_dirty"] == "true"},
        "packages": package_versions(),
        "machine": {**machine_info, "load_average_end": os.getloadavg()[0]},
        "config": config,
        "benchmarks": benchmarks,
    }


def validate(doc: object, source: str) -> dict:
    """Schema check plus what a schema cannot say (summaries agree with their samples, names
    unique). Raises UserError with the file, the key path and what was expected."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = _path(e.absolute_path)
        raise UserError(f"{source}: {where}: {e.message} (schema {SCHEMA_PATH.name})")
    seen = set()
    for i, bench in enumerate(doc["benchmarks"]):
        if bench["name"] in seen:
            raise UserError(f"{source}: benchmarks[{i}].name: duplicate benchmark name {bench['name']!r}")
        seen.add(bench["name"])
        names = set()
        for j, m in enumerate(bench["metrics"]):
            key = f"benchmarks[{i}].metrics[{j}]"
            if m["name"] in names:
                raise UserError(f"{source}: {key}.name: duplicate metric {m['name']!r} in {bench['name']}")
            names.add(m["name"])
            if m["summary"]["n"] != len(m["samples"]):
                raise UserError(
                    f"{source}: {key}.summary.n: expected {len(m['samples'])} (the number of samples), "
                    f"got {m['summary']['n']}"
                )
    return doc


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def write(doc: dict, path: str | Path) -> Path:
    path = Path(path)
    validate(doc, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def read(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found (expected a results JSON written by `rbench bench run`)")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    if isinstance(doc, dict) and doc.get("schema_version") not in (None, SCHEMA_VERSION):
        raise UserError(
            f"{path}: schema_version: expected {SCHEMA_VERSION}, got {doc.get('schema_version')!r} "
            "(written by another rbench version)"
        )
    return validate(doc, str(path))


def read_baseline(path: str | Path) -> list[dict]:
    """One results file, or every *.json in a folder (several good runs of one suite)."""
    path = Path(path)
    if not path.is_dir():
        return [read(path)]
    files = sorted(path.glob("*.json"))
    if not files:
        raise UserError(f"{path}: no *.json results files in this folder")
    docs = [read(f) for f in files]
    suites = sorted({d["suite"] for d in docs})
    if len(suites) > 1:
        raise UserError(f"{path}: results of several suites ({', '.join(suites)}): expected one suite's runs")
    return docs


def metrics_by_key(doc: dict) -> dict[str, dict]:
    """{"benchmark/metric": metric entry} of one results document."""
    return {f"{b['name']}/{m['name']}": m for b in doc["benchmarks"] for m in b["metrics"]}
