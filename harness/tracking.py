"""MLflow tracking: one MLflow run per training job (child runs under a parent for sweeps).

Uses `MlflowClient` with an explicit tracking URI everywhere (never the fluent global state), so
several trials in one process or a Ray worker can log without stepping on each other. The embedded
default is `sqlite:///<runs_dir>/mlflow.db` with artifacts under `<runs_dir>/mlartifacts`.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from harness.config import ExperimentConfig
from harness.provenance import provenance

TRAIN_PREFIX, EVAL_PREFIX = "train/", "eval/"


def resolve_uri(cfg: ExperimentConfig) -> str:
    if cfg.tracking.uri:
        return cfg.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(cfg.runs_dir).resolve() / 'mlflow.db'}"


def artifact_root(cfg: ExperimentConfig) -> str:
    return (Path(cfg.runs_dir).resolve() / "mlartifacts").as_uri()


def client(uri: str):
    # MLflow 3 sends usage telemetry unless told not to: rbench stays offline by default (and the
    # telemetry calls cost CPU on every logged batch). Set MLFLOW_DISABLE_TELEMETRY=false to opt in.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str, artifact_location: str | None = None) -> str:
    """Get or create the experiment. Call in the driver before any worker or trial starts."""
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return c.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # created concurrently by another process
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)
    return out


class TrackingError(RuntimeError):
    """MLflow failed (in the tracking process, see harness/tracking_process.py)."""


class Tracker:
    """One MLflow run. `start()` creates it (or reopens `run_id` when resuming); `finish`/`fail` end it."""

    def __init__(self, cfg: ExperimentConfig, *, run_dir: Path, parent_run_id: str | None = None,
                 tags: dict[str, str] | None = None, run_id: str | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.uri = resolve_uri(cfg)
        self.parent_run_id, self.extra_tags, self.run_id = parent_run_id, dict(tags or {}), run_id
        self._client = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> str:
        self._client = c = client(self.uri)
        if self.run_id is not None:           # resume: keep logging into the same run
            c.update_run(self.run_id, status="RUNNING")
            return self.run_id
        exp_id = ensure_experiment(self.uri, self.cfg.tracking.experiment, artifact_root(self.cfg))
        prov = provenance()
        tags = {"rbench.run_dir": str(self.run_dir.resolve()), "rbench.seed": str(self.cfg.seed),
                "rbench.model": self.cfg.model.arch, "rbench.task": self.cfg.task.name,
                "mlflow.source.git.commit": str(prov["git_commit"]),
                "rbench.git_dirty": str(prov["git_dirty"]),
                **self.cfg.tracking.tags, **self.extra_tags}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        run = c.create_run(exp_id, run_name=self.cfg.tracking.run_name or self.cfg.name, tags=tags)
        self.run_id = run.info.run_id
        from mlflow.entities import Param
        params = flatten(self.cfg.to_dict())
        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            c.log_batch(self.run_id, params=items[i:i + 100])
        c.log_dict(self.run_id, self.cfg.to_dict(), "config.yaml")
        c.log_dict(self.run_id, prov, "provenance.json")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "provenance.json").write_text(json.dumps(prov, indent=2))
        (self.run_dir / "mlflow_run.json").write_text(json.dumps({"run_id": self.run_id, "uri": self.uri}))
        return self.run_id

    def log_metrics(self, step: int, metrics: dict[str, float], prefix: str = TRAIN_PREFIX,
                    timestamp_ms: int | None = None) -> None:
        self.log_metric_records([(step, metrics, prefix, timestamp_ms)])

    def log_metric_records(self, records: list[tuple[int, dict[str, float], str, int | None]]) -> None:
        """Several (step, metrics, prefix, timestamp_ms) records in as few requests as MLflow allows."""
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        batch = [Metric(prefix + k, float(v), ts or now, step)
                 for step, metrics, prefix, ts in records for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):          # MLflow's limit per log_batch
            self._client.log_batch(self.run_id, metrics=batch[i:i + 1000])

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param
        self._client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def set_tags(self, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self._client.set_tag(self.run_id, k, str(v))

    def finish(self, result) -> None:
        """Close the run as FINISHED. Evaluation metrics arrive through the engine's `on_eval`
        hook (`log_metrics(step, m, prefix=EVAL_PREFIX)`), the final one included."""
        self.log_params({"num_parameters": result.num_parameters,
                         "effective_depth": result.effective_depth})
        self.set_tags({"rbench.checkpoint_dir": str(result.checkpoint_dir),
                       "rbench.final_step": str(result.step)})
        self.log_correctness(self.run_dir)
        self._client.set_terminated(self.run_id, status="FINISHED")

    def log_correctness(self, run_dir: Path) -> None:
        """Upload the engine's per-example correctness file (reports/ reads it), if there is one."""
        from harness import correctness
        if correctness.path_in(run_dir).is_file():
            self._client.log_artifact(self.run_id, str(correctness.path_in(run_dir)), "eval")

    def fail(self, reason: str) -> None:
        """Mark the run FAILED, if it was created."""
        if self._client is None or self.run_id is None:
            return
        self.set_tags({"rbench.failure_reason": reason[:5000]})
        self._client.set_terminated(self.run_id, status="FAILED")

    def __enter__(self) -> "Tracker":
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self.fail(f"{exc_type.__name__}: {exc}")


def read_run_id(run_dir: Path) -> str | None:
    p = Path(run_dir) / "mlflow_run.json"
    return json.loads(p.read_text())["run_id"] if p.is_file() else None
