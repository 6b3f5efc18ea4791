"""One sweep trial, inside its Ray Tune actor: build its config, open its MLflow child run, train,
close the run with the trial's outcome. Also the Tune callback that closes the runs of trials
Tune stopped or lost.

How a trial trains (`resources.workers`):
- 1 worker: the engine runs in the Tune trial's own actor (`harness.launch.run_session` with
  `ray.tune`'s get_checkpoint / report): still DeepSpeed, checkpoints reported to Tune (a trial
  whose process dies is restarted by Tune from its last checkpoint, `resources.max_failures`
  times), and with `reuse_actors` the next trial reuses the process, so torch, DeepSpeed and the
  data cache are loaded once per actor, not once per trial.
- 2+ workers: the trial actor fits a TorchTrainer (harness.launch.run_job) whose reports reach
  Tune through Ray's TuneReportCallback; Ray Train restarts lost workers from the checkpoint.

A deterministic failure (diverged loss, a user mistake) is an outcome, not an exception: the
trial reports it and returns, so Tune does not retry it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.outcome import TrialOutcome
from harness.sweep import runs
from harness.sweep.point import trial_config
from harness.sweep.search import TRIAL_KEY
from harness.sweep.spec import SweepSpec
from harness.sweep.state import TUNE_NAME


@dataclass
class SweepContext:
    """What a trial needs (shipped to the trial actors; plain data only)."""

    sweep_id: str
    sweep_name: str
    sweep_dir: str
    base_data: dict[str, Any]
    spec: dict[str, Any]  # SweepSpec as JSON data
    parent_run_id: str | None
    tracking_uri: str | None
    experiment: str
    storage_url: str | None = None  # the Optuna storage, password masked (heartbeats)


def trial_dir(sweep_dir: str | Path, number: int) -> Path:
    return Path(sweep_dir) / "trials" / f"trial_{number:05d}"


def trains_in_trial(spec: SweepSpec) -> bool:
    return spec.resources.workers == 1 and spec.resources.train_in_trial


def run_trial(config: dict[str, Any], ctx: SweepContext) -> None:
    """One Tune trial (a function trainable)."""
    entered = time.time()
    from ray import tune

    from harness.launch import JobSpec, run_job
    from harness.sweep.sizing import match_ratio

    from harness.sweep.heartbeat import Heartbeat, superseded

    number = int(config[TRIAL_KEY]["number"])
    optuna_id = config[TRIAL_KEY].get("optuna_trial_id")
    retry = superseded(ctx.storage_url, ctx.sweep_id, optuna_id)
    if retry is not None:  # failed as stale and retried: trial `retry` trains this point now
        runs.close_stopped_run(
            ctx.tracking_uri,
            ctx.experiment,
            ctx.sweep_id,
            number,
            status="FAILED",
            reason=f"its process vanished (no Optuna heartbeat): retried as trial {retry}",
        )
        return
    family, seed, params = str(config["family"]), int(config["seed"]), dict(config["params"])
    spec = SweepSpec.model_validate(ctx.spec)
    cfg = trial_config(ctx.base_data, spec, family, params, seed, sweep_id=ctx.sweep_id, number=number)
    run_dir = trial_dir(ctx.sweep_dir, number)
    run_dir.mkdir(parents=True, exist_ok=True)
    # when this trial's code started, in which process (start-up costs: harness.bench.ray_overhead)
    (run_dir / "trial.json").write_text(json.dumps({"entered": entered, "pid": os.getpid()}))
    ratio = match_ratio(cfg)
    extra = {"trial_number": float(number)}
    if ratio is not None:
        extra["match_ratio"] = ratio

    tracker = None
    if cfg.tracking.enabled and ctx.tracking_uri:
        tracker = runs.open_trial_run(
            cfg,
            run_dir=run_dir,
            uri=ctx.tracking_uri,
            experiment=ctx.experiment,
            parent_run_id=ctx.parent_run_id,
            sweep_id=ctx.sweep_id,
            sweep_name=ctx.sweep_name,
            number=number,
            family=family,
            tune_trial_id=tune.get_context().get_trial_id(),
            optuna_trial_id=optuna_id,
            match_ratio=ratio,
        )
    beat = Heartbeat(ctx.storage_url, optuna_id).__enter__()
    try:
        r = spec.resources
        loop_config = {
            "cfg": cfg.to_dict(),
            "scratch_dir": str(run_dir / "workers"),
            "mlflow_run_id": tracker.run_id if tracker else None,
            "fallback_resume": None,
            "progress": False,
            "extra_metrics": extra,
        }
        if trains_in_trial(spec):
            # Tune's storage of this trial: <sweep folder>/tune/trial_NNNNN (see driver._trial_name)
            storage = Path(ctx.sweep_dir) / TUNE_NAME / f"trial_{number:05d}"
            outcome = _train_here(
                loop_config, r.cpus_per_worker, r.gpus_per_worker > 0, storage, runs.session_tracker(tracker)
            )
        else:
            from ray.tune.integration.ray_train import TuneReportCallback

            job = JobSpec(
                cfg=cfg,
                run_dir=run_dir,
                workers=r.workers,
                cpus_per_worker=r.cpus_per_worker,
                gpus_per_worker=r.gpus_per_worker,
                max_failures=r.max_failures,
                mlflow_run_id=loop_config["mlflow_run_id"],
                extra_metrics=extra,
                callbacks=[TuneReportCallback()],
            )
            outcome = run_job(job)
            if not outcome.ok:  # e.g. retries exhausted: Tune has not seen this one
                tune.report(outcome.to_report())
        if outcome.ok and spec.test_time is not None and outcome.checkpoint_dir is not None:
            from harness.testtime import run_and_record

            # a child run of this trial's run: accuracy vs inference FLOPs along depth and breadth
            run_and_record(cfg, outcome.checkpoint_dir, spec.test_time.grid(cfg), run_dir=run_dir)
    except BaseException:  # Tune retries the trial, or its callbacks close the run
        runs.abandon_trial_run(tracker)
        raise
    finally:
        beat.__exit__()
    runs.close_trial_run(tracker, outcome)


def _train_here(
    loop_config: dict[str, Any], cpus: float, use_gpu: bool, trial_storage: Path, tracker
) -> TrialOutcome:
    """The engine in this (Tune trial) process, reporting checkpoints to Tune."""
    from ray import tune

    from harness.config import ExperimentConfig
    from harness.launch import run_session, worker_env

    cfg = ExperimentConfig.model_validate(loop_config["cfg"])
    for key, value in worker_env(cfg, cpus, use_gpu).items():
        os.environ[key] = value
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    def report(metrics, checkpoint=None, **_ray_train_only):
        # Tune copies the checkpoint into the trial's storage (tune/trial_NNNNN/checkpoint_*);
        # the local copy stays, so the trial folder holds the final model like any run folder.
        tune.report(metrics, checkpoint=checkpoint)

    def get_checkpoint():
        return newest_checkpoint(tune.get_checkpoint(), trial_storage)

    outcome = run_session(loop_config, rank=0, get_checkpoint=get_checkpoint, report=report, tracker=tracker)
    final = Path(loop_config["scratch_dir"]) / "rank0" / "checkpoints" / f"step_{outcome.step:08d}"
    return outcome.with_checkpoint(str(final) if outcome.ok and final.is_dir() else None)


def newest_checkpoint(registered, trial_storage: Path):
    """What a rerun of a 1-worker trial resumes from: the checkpoint Tune registered, or a newer
    complete one in the trial's Tune storage (persisted, but the driver was killed before its
    ~1 s experiment-state save recorded it), or the trial's outcome marker (it was over)."""
    from ray.tune import Checkpoint

    from harness import checkpoint as ckpt
    from harness.launch import FINAL_FILE

    found: list[tuple[float, str]] = []
    for d in sorted(Path(trial_storage).glob("checkpoint_*")):
        if (d / FINAL_FILE).is_file():
            return Checkpoint.from_directory(str(d))
        if ckpt.is_complete(d):
            found.append((float(ckpt.read_state(d)["step"]), str(d)))
    if not found:
        return registered
    step, path = max(found)
    if registered is not None:
        with registered.as_directory() as d:
            if (Path(d) / FINAL_FILE).is_file() or (
                ckpt.is_complete(Path(d)) and float(ckpt.read_state(Path(d))["step"]) >= step
            ):
                return registered
    return Checkpoint.from_directory(path)


# ---------------------------------------------------------------------------------------------
# Watching trials from the driver


def close_runs_callback(uri: str | None, experiment: str, sweep_id: str):
    """Closes the MLflow runs of trials that Tune stopped or lost (the trial itself could not)."""
    from ray.tune import Callback

    class CloseStoppedTrials(Callback):
        def _close(self, trial, status: str, reason: str) -> None:
            meta = (trial.config or {}).get(TRIAL_KEY) or {}
            if "number" in meta:
                runs.close_stopped_run(
                    uri, experiment, sweep_id, int(meta["number"]), status=status, reason=reason
                )

        def on_trial_complete(self, iteration, trials, trial, **info):
            last = trial.last_result or {}
            if TrialOutcome.from_report(last) is None:
                flops = last.get("flops_cumulative")
                at = f" at {flops:.3g} training FLOPs" if isinstance(flops, (int, float)) else ""
                self._close(trial, "KILLED", f"stopped early by the scheduler or the budget{at}")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._close(trial, "FAILED", "the trial's process died")

    return CloseStoppedTrials()
