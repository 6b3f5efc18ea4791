"""The MLflow store: where it is, a client for it, experiments, and one paginated search.

Everything uses `MlflowClient` with an explicit tracking URI (never MLflow's fluent global state),
so several runs in one process, a helper process or a Ray worker never step on each other. The
default store is `sqlite:///<runs_dir>/mlflow.db` with artifacts under `<runs_dir>/mlartifacts`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from harness.tracking import tags as T


def resolve_uri(cfg) -> str:
    """The tracking URI of an ExperimentConfig: tracking.uri, else MLFLOW_TRACKING_URI, else the
    SQLite file in the runs folder."""
    if cfg.tracking.uri:
        return cfg.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return default_uri(cfg.runs_dir)


def default_uri(runs_dir: str | Path) -> str:
    return f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"


def artifact_root(cfg) -> str:
    return (Path(cfg.runs_dir).resolve() / "mlartifacts").as_uri()


def client(uri: str):
    """An `MlflowClient` for `uri`. MLflow 3 sends usage telemetry unless told not to: rbench stays
    offline by default (set MLFLOW_DISABLE_TELEMETRY=false to opt in). MLflow's INFO lines about
    creating and migrating a new SQLite store's tables are routine: only its warnings show."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str, artifact_location: str | None = None) -> str:
    """Get or create the experiment, tagged as a training experiment with a description (an
    experiment made by an older rbench gets the tags now). Returns its id."""
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is None:
        try:
            return c.create_experiment(
                name,
                artifact_location=artifact_location,
                tags={T.EXPERIMENT_KIND_TAG: T.EXPERIMENT_KIND, T.NOTE_TAG: T.EXPERIMENT_DESCRIPTION},
            )
        except Exception:  # created concurrently by another process
            exp = c.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.tags.get(T.EXPERIMENT_KIND_TAG) != T.EXPERIMENT_KIND:
        c.set_experiment_tag(exp.experiment_id, T.EXPERIMENT_KIND_TAG, T.EXPERIMENT_KIND)
    if T.NOTE_TAG not in exp.tags:
        c.set_experiment_tag(exp.experiment_id, T.NOTE_TAG, T.EXPERIMENT_DESCRIPTION)
    return exp.experiment_id


def search_runs(
    uri: str, experiment: str, filter_string: str = "", *, order_by: list[str] | None = None
) -> Iterator:
    """Every run of `experiment` matching `filter_string`, all pages (none if it does not exist)."""
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return
    token = None
    while True:
        page = c.search_runs(
            [exp.experiment_id],
            filter_string=filter_string,
            max_results=1000,
            order_by=order_by,
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> MLflow params (`train.lr` = "0.001"; lists as JSON)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)
    return out


def read_run_id(run_dir: Path) -> str | None:
    """The MLflow run id kept in a run folder (None if the run was never tracked)."""
    p = Path(run_dir) / T.RUN_FILE
    return json.loads(p.read_text())["run_id"] if p.is_file() else None


def write_run_id(run_dir: Path, run_id: str, uri: str) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (T.RUN_FILE + ".tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "uri": uri}))
    os.replace(tmp, run_dir / T.RUN_FILE)
