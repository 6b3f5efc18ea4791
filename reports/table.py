"""MLflow (any tracking URI) -> one tidy row per training run (pandas), plus what the report needs
beside the row: each run's evaluation history and its per-example correctness bits.

Columns of `runs_table` (one row per run, sweep parent runs excluded):

    run_id run_name status failure_reason sweep_id trial_number task family kind arch seed
    git_commit num_parameters puzzle_emb_parameters recursion effective_depth unique_layers
    recurrences train_flops inference_flops_per_example eval_examples
    final_step final_exact_accuracy final_token_accuracy final_val_exact_accuracy
    best_step best_val_exact_accuracy best_exact_accuracy     (best = chosen on the validation split)
    config (JSON of every logged param) and the model's config keys (model.*)

`family` is the run's `rbench.family` tag when the sweep set one; otherwise it is derived: every
transformer is one family ("transformer": the parameter axis), and a recursive architecture at one
width/size is one family (its recursion settings are the depth axis).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.tracking import client
from harness.tracking import tags as T
from models.registry import RECURSIVE_ARCHS

FAMILY_TAG = T.FAMILY_TAG
RECURSION_KEYS = (
    "model.T",
    "model.n",
    "model.H_cycles",
    "model.L_cycles",
    "model.loops",
    "model.halt_max_steps",
)
SIZE_KEYS = ("model.hidden", "model.layers", "model.L_layers", "model.H_layers", "model.heads")


@dataclass
class RunData:
    """What the report reads from MLflow: the tidy table, eval histories, correctness bits."""

    table: pd.DataFrame
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)  # run_id -> step x metrics
    correctness: dict[str, dict] = field(default_factory=dict)  # run_id -> harness.correctness.read
    parent_run_id: str | None = None
    expected_trials: int | None = None
    uri: str = ""
    test_time: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per test-time point


def _num(v):
    if v is None:
        return None
    try:
        f = float(v)
        return int(f) if f.is_integer() else f
    except (TypeError, ValueError):
        return v


def _experiment_ids(c, experiment: str | None) -> list[str]:
    if experiment is not None:
        exp = c.get_experiment_by_name(experiment)
        return [exp.experiment_id] if exp is not None else []
    return [e.experiment_id for e in c.search_experiments()]


def _search(c, exp_ids, filter_string: str) -> list:
    out, token = [], None
    while exp_ids:
        page = c.search_runs(exp_ids, filter_string=filter_string, max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            break
    return out


def family_of(arch, params: dict, tag: str | None) -> tuple[str, str]:
    """-> (family, kind) where kind is "transformer" or "recursive"."""
    kind = "recursive" if arch in RECURSIVE_ARCHS else "transformer"
    if tag:
        return tag, kind
    if kind == "transformer":
        return "transformer", kind
    size = " ".join(
        f"{k.split('.', 1)[1]}={_fmt(params[k])}" for k in SIZE_KEYS if params.get(k) not in (None, "None")
    )
    return f"{arch} {size}".strip(), kind


def _fmt(v) -> str:
    v = _num(v)
    return str(v)


def _unique_layers(arch, p: dict) -> float:
    if arch == "hrm":
        return float(_num(p.get("model.L_layers")) or 0) + float(_num(p.get("model.H_layers")) or 0)
    return float(_num(p.get("model.layers")) or 1)


def _row(run) -> dict:
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    arch = tags.get(T.MODEL_TAG, params.get("model.arch"))
    family, kind = family_of(arch, params, tags.get(FAMILY_TAG))
    depth = _num(params.get("effective_depth"))
    layers = _unique_layers(arch, params)
    recursion = " ".join(
        f"{k.split('.', 1)[1]}={_fmt(params[k])}"
        for k in RECURSION_KEYS
        if params.get(k) not in (None, "None")
    )
    row = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "failure_reason": tags.get(T.FAILURE_TAG),
        "sweep_id": tags.get(T.SWEEP_TAG),
        "trial_number": _num(tags.get(T.TRIAL_TAG)),
        "task": tags.get(T.TASK_TAG, params.get("task.name")),
        "family": family,
        "kind": kind,
        "arch": arch,
        "seed": _num(params.get("seed")),
        "git_commit": tags.get("mlflow.source.git.commit"),
        "git_dirty": tags.get(T.GIT_DIRTY_TAG),
        "num_parameters": _num(params.get("num_parameters")),
        "puzzle_emb_parameters": metrics.get("eval/puzzle_emb_parameters"),
        "recursion": recursion,
        "segments": _num(params.get("model.halt_max_steps")),  # the outer loop (reports.recursion)
        "effective_depth": depth,
        "unique_layers": layers,
        "recurrences": (depth / layers if isinstance(depth, (int, float)) and layers else None)
        if kind == "recursive"
        else 1.0,
        "train_flops": metrics.get("eval/flops_cumulative", metrics.get("train/flops_cumulative")),
        "inference_flops_per_example": metrics.get("eval/inference_flops_per_example"),
        "eval_examples": metrics.get("eval/eval_examples"),
        "final_step": _num(tags.get(T.FINAL_STEP_TAG)),
        "final_exact_accuracy": metrics.get("eval/exact_accuracy"),
        "final_token_accuracy": metrics.get("eval/token_accuracy"),
        "final_val_exact_accuracy": metrics.get("eval/val_exact_accuracy"),
        "run_dir": tags.get(T.RUN_DIR_TAG),
        "config": json.dumps(dict(sorted(params.items()))),
    }
    row.update({k: _num(v) for k, v in params.items() if k.startswith("model.")})
    row.update(
        {
            f"metric.{k[5:]}": v
            for k, v in metrics.items()
            if k.startswith("eval/")
            and k[5:] not in ("exact_accuracy", "token_accuracy", "val_exact_accuracy")
        }
    )
    return row


def _history(c, run_id: str) -> pd.DataFrame:
    cols = {}
    for key in ("eval/exact_accuracy", "eval/val_exact_accuracy"):
        for m in c.get_metric_history(run_id, key):
            cols.setdefault(m.step, {})[key[5:]] = m.value
    df = pd.DataFrame.from_dict(cols, orient="index").sort_index()
    df.index.name = "step"
    return df


def best_on_validation(history: pd.DataFrame) -> tuple[float, float, float]:
    """-> (step, val accuracy, test accuracy) at the evaluation with the highest validation
    accuracy (the earliest on ties); NaNs when the run has no validation split."""
    if history.empty or "val_exact_accuracy" not in history or history["val_exact_accuracy"].isna().all():
        return math.nan, math.nan, math.nan
    v = history["val_exact_accuracy"]
    step = v.idxmax()
    return (
        float(step),
        float(v[step]),
        float(history.get("exact_accuracy", pd.Series(dtype=float)).get(step, math.nan)),
    )


def _correctness(c, row: dict) -> dict | None:
    from harness import correctness

    local = Path(row["run_dir"]) / correctness.RELPATH if row.get("run_dir") else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            got = c.download_artifacts(row["run_id"], str(correctness.RELPATH), tmp)
            return correctness.read(Path(got))
    except Exception:  # not uploaded (older run, failed before the end): the run folder
        if local is not None and local.is_file():
            return correctness.read(local)
    return None


def load_runs(
    uri: str,
    experiment: str | None = None,
    *,
    sweep: str | None = None,
    filter_string: str = "",
    with_details: bool = True,
) -> RunData:
    """Every run of `experiment` (all experiments when None) matching `filter_string` and, when
    given, belonging to sweep `sweep`. `with_details` also fetches histories and correctness."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per run otherwise
    c = client(uri)
    flt = filter_string
    if sweep:
        flt = " and ".join(x for x in (flt, f"tags.`rbench.sweep_id` = '{sweep}'") if x)
    exp_ids = _experiment_ids(c, experiment)
    runs = [r for r in _search(c, exp_ids, flt) if r.data.tags.get(T.KIND_TAG) != TEST_TIME_KIND]
    parents = [r for r in runs if r.data.tags.get(T.ROLE_TAG) == "sweep"]
    rows = [_row(r) for r in runs if r.data.tags.get(T.ROLE_TAG) != "sweep"]
    data = RunData(pd.DataFrame(rows), uri=uri)
    data.test_time = test_time_points(
        _search(c, exp_ids, f"tags.`{T.KIND_TAG}` = '{TEST_TIME_KIND}'"), {row["run_id"] for row in rows}
    )
    if len(parents) == 1:  # one sweep selected: the report belongs on its parent run
        data.parent_run_id = parents[0].info.run_id
        data.expected_trials = _expected_trials(c, parents[0])
    if with_details:
        for row in rows:
            h = _history(c, row["run_id"])
            data.histories[row["run_id"]] = h
            row["best_step"], row["best_val_exact_accuracy"], row["best_exact_accuracy"] = best_on_validation(
                h
            )
            bits = _correctness(c, row)
            if bits is not None:
                data.correctness[row["run_id"]] = bits
        data.table = pd.DataFrame(rows)
    for col in ("best_step", "best_val_exact_accuracy", "best_exact_accuracy"):
        if col not in data.table and len(data.table):
            data.table[col] = np.nan
    return data


TEST_TIME_KIND = "test_time"
_TT_KEY = re.compile(r"^testtime/s(\d+)_k(\d+)/(exact_accuracy|inference_flops_per_example)$")


def test_time_points(child_runs, training_runs: set[str]) -> pd.DataFrame:
    """The test-time grids (`rbench eval`, or a sweep's `test_time:`) logged as child runs of the
    selected training runs: one row per (run, steps, samples) point."""
    rows: dict[tuple, dict] = {}
    for r in child_runs:
        parent = r.data.tags.get(T.PARENT_TAG)
        if parent not in training_runs:
            continue
        p = r.data.params
        for key, value in r.data.metrics.items():
            m = _TT_KEY.match(key)
            if m:
                row = rows.setdefault(
                    (r.info.run_id, int(m[1]), int(m[2])),
                    {
                        "run_id": parent,
                        "test_time_run_id": r.info.run_id,
                        "steps": int(m[1]),
                        "samples": int(m[2]),
                        "trained_steps": _num(p.get("test_time.trained_steps")),
                        "noise": _num(p.get("test_time.noise")),
                        "select": p.get("test_time.select"),
                    },
                )
                row[m[3]] = float(value)
    return pd.DataFrame(list(rows.values()))


def _expected_trials(c, parent) -> int | None:
    """budget.trials from the sweep spec logged on the parent run, if it says."""
    import yaml

    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = yaml.safe_load(
                Path(c.download_artifacts(parent.info.run_id, "sweep.yaml", tmp)).read_text()
            )
        return int(spec.get("budget", {}).get("trials")) if spec.get("budget", {}).get("trials") else None
    except Exception:
        return None


def runs_table(
    uri: str, experiment: str | None = None, *, filter_string: str = "", sweep: str | None = None
) -> pd.DataFrame:
    """The tidy run table alone (no histories)."""
    return load_runs(uri, experiment, sweep=sweep, filter_string=filter_string).table


def export(table: pd.DataFrame, out_dir: Path, stem: str = "runs") -> tuple[Path, Path]:
    """Write the run table as CSV and Parquet -> (csv, parquet)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, pq = out_dir / f"{stem}.csv", out_dir / f"{stem}.parquet"
    table.to_csv(csv, index=False)
    t = table.copy()
    for col in t.columns:  # mixed-type object columns -> strings for Arrow
        if t[col].dtype == object:
            t[col] = t[col].map(
                lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            )
    t.to_parquet(pq, index=False)
    return csv, pq
