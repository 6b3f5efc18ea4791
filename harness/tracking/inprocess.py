"""`MlflowTracker`: one MLflow run written from this process (also what the helper process runs).

Identity on restart: `run_id` reopens a run instead of creating one, and the steps already in
each metric's history are remembered, so the steps a resumed run re-trains (those after its last
checkpoint, logged before the crash) are not logged twice: every step appears once per metric.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.credentials import redact
from harness.tracking import tags as T
from harness.tracking.base import FINISHED, Outcome, Tracker, TrackingError
from harness.tracking.store import (
    artifact_root,
    client,
    ensure_experiment,
    flatten,
    resolve_uri,
    write_run_id,
)

PARAM_BATCH, METRIC_BATCH, VALUE_LIMIT = 100, 1000, 6000  # MLflow's limits per request / value


class MlflowTracker(Tracker):
    """`cfg` is the run's ExperimentConfig; `run_dir` gets `mlflow_run.json` (the id --resume
    reopens) unless `record_id` is False (a Ray worker logging into its driver's run)."""

    def __init__(
        self,
        cfg,
        *,
        run_dir: Path,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        record_id: bool = True,
    ):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.uri = resolve_uri(cfg)
        self.run_id, self.parent_run_id = run_id, parent_run_id
        self.extra_tags, self.record_id = dict(tags or {}), record_id
        self._client = None
        self._logged: dict[str, int] = {}  # metric key -> last step already in its history

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> str:
        try:
            return self._start()
        except TrackingError:
            raise
        except Exception as e:  # noqa: BLE001 - one line for the user, whatever MLflow raised
            raise TrackingError(_one_line(self.uri, e)) from e

    def _start(self) -> str:
        from harness.provenance import provenance

        self._client = c = client(self.uri)
        if self.run_id is not None:  # resume: keep logging into the same run
            run = c.get_run(self.run_id)
            for key in run.data.metrics:
                history = c.get_metric_history(self.run_id, key)
                self._logged[key] = max((m.step for m in history), default=-1)
            if run.info.status != "RUNNING":
                c.update_run(self.run_id, status="RUNNING")
            attempts = int(run.data.tags.get(T.ATTEMPT_TAG, "1")) + 1
            c.set_tag(self.run_id, T.ATTEMPT_TAG, str(attempts))
            return self.run_id
        exp_id = ensure_experiment(self.uri, self.cfg.tracking.experiment, artifact_root(self.cfg))
        prov = provenance()
        tags = {
            T.RUN_DIR_TAG: str(self.run_dir.resolve()),
            T.SEED_TAG: str(self.cfg.seed),
            T.MODEL_TAG: self.cfg.model.arch,
            T.TASK_TAG: self.cfg.task.name,
            T.GIT_COMMIT_TAG: str(prov["git_commit"]),
            T.GIT_DIRTY_TAG: str(prov["git_dirty"]),
            T.ATTEMPT_TAG: "1",
            **self.cfg.tracking.tags,
            **self.extra_tags,
        }
        if self.parent_run_id:
            tags[T.PARENT_TAG] = self.parent_run_id
        run = c.create_run(exp_id, run_name=self.cfg.tracking.run_name or self.cfg.name, tags=redact(tags))
        self.run_id = run.info.run_id
        self.log_params(flatten(self.cfg.to_dict()))
        self.log_artifacts({"config.yaml": self.cfg.to_dict(), "provenance.json": prov})
        if self.record_id:
            write_run_id(self.run_dir, self.run_id, self.uri)
        return self.run_id

    def log_metrics(
        self,
        step: int,
        metrics: dict[str, float],
        prefix: str = T.TRAIN_PREFIX,
        timestamp_ms: int | None = None,
    ) -> None:
        self.log_metric_records([(step, metrics, prefix, timestamp_ms)])

    def log_metric_records(self, records: list[tuple[int, dict[str, float], str, int | None]]) -> None:
        """Several (step, metrics, prefix, timestamp_ms) records in as few requests as MLflow
        allows, minus the steps already logged (see the module doc)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = []
        for step, metrics, prefix, ts in records:
            for k, v in metrics.items():
                key = prefix + k
                if step <= self._logged.get(key, -1):
                    continue
                batch.append(Metric(key, float(v), ts or now, step))
        for i in range(0, len(batch), METRIC_BATCH):
            self._client.log_batch(self.run_id, metrics=batch[i : i + METRIC_BATCH])

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        # a URL's password (e.g. tracking.uri = postgresql://user:PW@...) is masked
        items = [Param(k, redact(str(v))[:VALUE_LIMIT]) for k, v in params.items()]
        for i in range(0, len(items), PARAM_BATCH):
            self._client.log_batch(self.run_id, params=items[i : i + PARAM_BATCH])

    def log_artifacts(self, files: dict[str, Any]) -> None:
        for name, content in files.items():
            content = redact(content)
            if isinstance(content, str):
                self._client.log_text(self.run_id, content, name)
            else:
                self._client.log_dict(self.run_id, content, name)

    def log_file(self, path, artifact_dir: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), artifact_dir)

    def set_tags(self, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self._client.set_tag(self.run_id, k, redact(str(v))[:VALUE_LIMIT])

    def finish(self, outcome) -> None:
        outcome = Outcome.of(outcome)
        if self._client is None or self.run_id is None:
            return  # never started: nothing to end
        end_run(self._client, self.run_id, outcome)


def end_run(c, run_id: str, outcome: Outcome) -> None:
    """Write an Outcome onto a run and terminate it (shared with the helper's "parent vanished")."""
    if outcome.status == FINISHED:
        if outcome.num_parameters is not None:
            from mlflow.entities import Param

            c.log_batch(
                run_id,
                params=[
                    Param("num_parameters", str(outcome.num_parameters)),
                    Param("puzzle_embedding_entries", str(outcome.puzzle_embedding_entries or 0)),
                    Param("effective_depth", str(outcome.effective_depth)),
                ],
            )
        if outcome.checkpoint_dir is not None:
            c.set_tag(run_id, T.CHECKPOINT_TAG, outcome.checkpoint_dir)
        if outcome.step is not None:
            c.set_tag(run_id, T.FINAL_STEP_TAG, str(outcome.step))
    elif outcome.reason:
        tag = T.FAILURE_TAG if outcome.status == "FAILED" else T.STOP_TAG
        c.set_tag(run_id, tag, outcome.reason[:5000])
    c.set_terminated(run_id, status=outcome.status)


def _one_line(uri: str, e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:500]
    return f"MLflow ({uri}): {type(e).__name__}: {first}"
