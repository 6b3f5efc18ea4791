"""MLflow -> one tidy row per training run (pandas).

Columns: run_id, run_name, status, arch, task, seed, num_parameters, effective_depth,
flops (cumulative training FLOPs at the end), every final `eval/*` metric (prefix dropped), the
sweep tags when present, and the model's config keys (`model.*`).
"""
from __future__ import annotations

import pandas as pd

from harness.tracking import client


def runs_table(uri: str, experiment: str, *, filter_string: str = "",
               include_parents: bool = False) -> pd.DataFrame:
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return pd.DataFrame()
    rows, token = [], None
    while True:
        page = c.search_runs([exp.experiment_id], filter_string=filter_string, max_results=1000,
                             page_token=token)
        for run in page:
            tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
            if not include_parents and tags.get("rbench.role") == "sweep":
                continue
            row = {"run_id": run.info.run_id, "run_name": run.info.run_name,
                   "status": run.info.status,
                   "arch": tags.get("rbench.model", params.get("model.arch")),
                   "task": tags.get("rbench.task", params.get("task.name")),
                   "seed": _num(params.get("seed")),
                   "num_parameters": _num(params.get("num_parameters")),
                   "effective_depth": _num(params.get("effective_depth")),
                   "flops": metrics.get("eval/flops_cumulative", metrics.get("train/flops_cumulative")),
                   "sweep_id": tags.get("rbench.sweep_id"),
                   "failure_reason": tags.get("rbench.failure_reason")}
            row.update({k[len("eval/"):]: v for k, v in metrics.items() if k.startswith("eval/")})
            row.update({k: _num(v) for k, v in params.items() if k.startswith("model.")})
            rows.append(row)
        token = page.token
        if not token:
            break
    return pd.DataFrame(rows)


def _num(v):
    if v is None:
        return None
    try:
        f = float(v)
        return int(f) if f.is_integer() else f
    except (TypeError, ValueError):
        return v
