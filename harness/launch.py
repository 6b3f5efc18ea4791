"""Ray Train jobs: one `rbench run CONFIG --workers N` = one TorchTrainer around `engine.train`.

    driver (launch)                      Ray Train controller            N workers (TorchTrainer, V2)
    MLflow run created here   --->       FailureConfig retries    --->   engine.train(...) in a gloo /
    (one run per job, kept               the worker group from           NCCL process group; rank 0
    across worker retries)               the last checkpoint             logs metrics to that run

Layout of a job's run folder (the same as a single-process run, so `rbench run --resume` and
`harness.checkpoint.latest` work on both):

    <run_dir>/checkpoints/step_%08d/   Ray Train's storage: every rank's files merged into one dir
    <run_dir>/checkpoints/*.json       Ray Train's own checkpoint-manager state (drives auto-resume)
    <run_dir>/workers/rank<r>/         per-rank scratch: the engine writes a checkpoint here, Ray
                                       uploads it to storage and deletes the local copy
    <run_dir>/mlflow_run.json          the job's MLflow run id (reopened by --resume)

Each rank writes into its own scratch folder, so nothing assumes that the ranks share a disk; Ray
merges the per-rank files of one step into one storage directory (`checkpoint_dir_name`). On a
real cluster the run folder must be on storage every node can reach (NFS, or pass `storage=` a
URI Ray understands, e.g. s3://...).

MLflow (harness/tracking): the driver creates the run and passes its id to the workers; only
rank 0 reopens it and logs, through its own helper process. A worker-group retry therefore keeps
logging into the same run (no duplicate runs; the steps re-trained after the restored checkpoint
are not logged twice), and the driver ends it (FINISHED with final metrics, or FAILED / KILLED
with the reason; the driver's helper does so too if the driver itself is killed).

Deterministic failures are not retried: a diverged loss (`TrainingDiverged`) or a user mistake
(`UserError`, e.g. resuming with a different worker count) is caught on the workers and reported
as a failure record, so the job stops at once instead of burning `max_failures` restarts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import ExperimentConfig
from harness.errors import ConfigError, UserError
from harness.outcome import TrialOutcome

# Ray Train's controller polls workers every 2 s by default and `ray.train.report` waits for that
# poll; with checkpoints every few seconds (CPU-scale runs) that would dominate. Read by the
# controller, which inherits it from the process that calls `fit()`.
HEALTH_CHECK_ENV, HEALTH_CHECK_INTERVAL_S = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25"
STORAGE_NAME = "checkpoints"  # Ray Train run name inside the storage path
FINAL_DIR, FINAL_FILE = "final", "final.json"  # completion marker checkpoint (see train_worker)
UNIX_SOCKET_LIMIT = 107  # bytes in sockaddr_un.sun_path (Linux)


class TrialFailed(RuntimeError):
    """A job finished without a result: diverged, raised, or exhausted its retries. `reason` is
    the one-line cause recorded in MLflow (and, for sweeps, in the Optuna study)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


# ---------------------------------------------------------------------------------------------
# Ray start-up


def ray_temp_dir(runs_dir: str | Path) -> str:
    """Ray's temp/session folder for a local Ray: under the runs folder, unless the unix-socket
    paths Ray builds inside it (<temp>/session_<date>_<pid>/sockets/plasma_store, ~70 more bytes)
    would exceed the kernel's limit; then a short per-user folder in /tmp."""
    preferred = Path(runs_dir).resolve() / "ray"
    if len(str(preferred)) + 72 <= UNIX_SOCKET_LIMIT:
        return str(preferred)
    return f"/tmp/rbench-ray-{os.getuid()}"


def ensure_ray(
    address: str | None, *, runs_dir: str | Path, num_cpus: int | None = None, log_to_driver: bool = True
) -> None:
    """Join `address` (or RAY_ADDRESS), or start a local Ray whose files live under runs_dir.
    A Ray already initialised in this process (tests, notebooks) is used as it is.
    `log_to_driver=False`: the actors' output stays in Ray's session logs (sweeps, unless -v)."""
    import ray

    os.environ.setdefault(HEALTH_CHECK_ENV, HEALTH_CHECK_INTERVAL_S)
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = dict(logging_level=logging.WARNING, log_to_driver=log_to_driver)
    if address:
        ray.init(address=address, **quiet)
        return
    temp = ray_temp_dir(runs_dir)
    Path(temp).mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=num_cpus, _temp_dir=temp, **quiet)


# ---------------------------------------------------------------------------------------------
# What every worker runs


def absolute_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """Workers run in Ray's own working directory: give them absolute paths and an explicit
    tracking URI so that they write where the driver expects."""
    from harness.tracking import resolve_uri

    runs = str(Path(cfg.runs_dir).resolve())
    cfg = cfg.model_copy(update={"runs_dir": runs})
    tracking = cfg.tracking.model_copy(update={"uri": resolve_uri(cfg)})
    return cfg.model_copy(update={"tracking": tracking})


def worker_env(cfg: ExperimentConfig, cpus_per_worker: float, use_gpu: bool) -> dict[str, str]:
    """Environment for the training workers (they may run on nodes with a different environment)."""
    threads = cfg.engine.threads or max(1, int(cpus_per_worker))
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # DeepSpeed JIT-compiles a small op on first use (a minute or more on 2 cores): workers share
    # the driver's cache (torch's default, ~/.cache/torch_extensions, unless set); and they import
    # rbench from where the driver does.
    for key in ("TORCH_EXTENSIONS_DIR", "PYTHONPATH"):
        if key in os.environ:
            env[key] = os.environ[key]
    if not use_gpu:
        env["DS_ACCELERATOR"] = "cpu"
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _write_worker_info(scratch: Path, rank: int) -> None:
    """pid and node of this rank, for people (and the fault-injection tests) to find it."""
    import ray

    scratch.mkdir(parents=True, exist_ok=True)
    info = {
        "rank": rank,
        "pid": os.getpid(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "started": time.time(),
    }
    tmp = scratch / "worker.json.tmp"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, scratch / "worker.json")


def train_worker(config: dict[str, Any]) -> None:
    """The TorchTrainer loop function (one call per rank per attempt)."""
    import ray.train

    run_session(
        config,
        rank=ray.train.get_context().get_world_rank(),
        get_checkpoint=ray.train.get_checkpoint,
        report=ray.train.report,
    )


def run_session(config: dict[str, Any], *, rank: int, get_checkpoint, report, tracker=None) -> TrialOutcome:
    """Train one rank inside a Ray session: a Ray Train worker (`ray.train.*`), or a 1-worker sweep
    trial running the engine in its own Tune actor (`ray.tune.*`, same two calls). Every
    checkpoint is reported with its metrics; the job's outcome is reported last (see
    _report_outcome) and returned.

    config: cfg (dict), scratch_dir, mlflow_run_id, fallback_resume (a local checkpoint to start
    from when Ray has none, e.g. resuming a run begun without Ray), progress, extra_metrics.
    `tracker`: a started tracker of that run that the caller owns (a 1-worker sweep trial logs
    through its own run's tracker: one MLflow helper process per trial, not two).
    """
    from harness.tracking import NullTracker, open_tracker

    cfg = ExperimentConfig.model_validate(config["cfg"])
    scratch = Path(config["scratch_dir"]) / f"rank{rank}"
    _write_worker_info(scratch, rank)
    if tracker is not None:
        return _train_and_report(config, cfg, rank, scratch, tracker, get_checkpoint, report)

    # Rank 0 logs into the driver's run through its own helper process (which writes what was
    # buffered if this worker is killed, but leaves ending the run to the driver: Ray retries).
    run_id = config.get("mlflow_run_id")
    tracker = (
        open_tracker(cfg, run_dir=scratch, run_id=run_id, record_id=False, owns_run=False)
        if rank == 0 and run_id
        else NullTracker()
    )
    try:
        tracker.start()
        return _train_and_report(config, cfg, rank, scratch, tracker, get_checkpoint, report)
    finally:
        tracker.close()  # before returning: the driver ends the run once fit() returns


def _train_and_report(
    config: dict[str, Any], cfg: ExperimentConfig, rank: int, scratch: Path, tracker, get_checkpoint, report
) -> TrialOutcome:
    from ray.train import Checkpoint

    from harness import checkpoint as ckpt
    from harness import correctness, engine
    from harness.tracking import EVAL_PREFIX

    last_log: dict[str, float] = {}
    extra = dict(config.get("extra_metrics") or {})
    resumed_from = 0.0

    def on_log(step: int, metrics: dict[str, float]) -> None:
        last_log.clear()
        last_log.update(metrics)
        tracker.log_metrics(step, metrics)

    def on_eval(step: int, metrics: dict[str, float]) -> None:
        tracker.log_metrics(step, metrics, prefix=EVAL_PREFIX)

    def on_checkpoint(step: int, path: Path, metrics: dict[str, float]) -> None:
        metrics_out = {
            **extra,
            **{f"train_{k}": v for k, v in last_log.items()},
            **metrics,
            "step": step,
            "resumed_from_step": resumed_from,
        }
        if ckpt.is_complete(path):  # rank 0 holds state.json: the authoritative FLOP count
            metrics_out["flops_cumulative"] = float(ckpt.read_state(path)["flops"])
        report(
            metrics_out,
            checkpoint=Checkpoint.from_directory(str(path)),
            checkpoint_dir_name=path.name,
            delete_local_checkpoint_after_upload=True,
        )

    hooks = engine.Hooks(on_log=on_log, on_eval=on_eval, on_checkpoint=on_checkpoint)
    restored = get_checkpoint()
    if restored is not None:
        with restored.as_directory() as d:
            done = Path(d) / FINAL_FILE
            final = json.loads(done.read_text()) if done.is_file() else None
        if final is not None:
            # This job is already over (a rerun after the sweep driver lost track of it): its
            # outcome stands; report it again (no new checkpoint) instead of training more.
            report(final)
            return TrialOutcome.from_report(final)
    # Training again: local copies left by an earlier attempt are stale (and maybe half-written):
    # storage is the source of truth, and the engine writes each new checkpoint here before Ray
    # uploads it. (A job already over keeps them: they are its final model.)
    shutil.rmtree(scratch / "checkpoints", ignore_errors=True)
    fallback = config.get("fallback_resume")
    source = restored.as_directory() if restored is not None else nullcontext(fallback)
    resumed_from = 0.0
    with source as resume_dir:
        resume_from = Path(resume_dir) if resume_dir else None
        resumed_from = float(ckpt.read_state(resume_from)["step"]) if resume_from else 0.0
        try:
            result = engine.train(
                cfg, scratch, resume_from=resume_from, hooks=hooks, progress=bool(config.get("progress"))
            )
        except (engine.TrainingDiverged, UserError) as e:
            # Deterministic: a retry would fail the same way. Every rank gets here at the same step
            # (the engine agrees on divergence collectively), so the report barrier is met.
            outcome = TrialOutcome.failed(
                f"{type(e).__name__}: {e}",
                step=int(getattr(e, "step", -1)),
                user_error=isinstance(e, UserError),
                extra=extra,
            )
            outcome.resumed_from_step = resumed_from
            return _report_outcome(rank, scratch, outcome, report)
    correctness.upload(tracker, scratch)  # rank 0: per-example bits, for the report's intervals
    outcome = TrialOutcome(
        status="finished",
        step=result.step,
        metrics=dict(result.metrics),
        train=dict(last_log),
        flops=result.flops,
        num_parameters=result.num_parameters,
        effective_depth=result.effective_depth,
        puzzle_embedding_entries=result.puzzle_embedding_entries,
        resumed_from_step=resumed_from,
        extra=extra,
    )
    return _report_outcome(rank, scratch, outcome, report)


def _report_outcome(rank: int, scratch: Path, outcome: TrialOutcome, report) -> TrialOutcome:
    """Report the job's outcome (final metrics, or a non-retryable failure).

    Ray keeps only checkpoint-attached metrics as the job's result, so the outcome travels in a
    tiny "final" checkpoint (rank 0's). It also marks the job as over: a rerun restored from it
    reports the same outcome again instead of training (see run_session)."""
    from ray.train import Checkpoint

    data = outcome.to_report()
    marker = None
    if rank == 0:
        marker = scratch / FINAL_DIR
        marker.mkdir(parents=True, exist_ok=True)
        (marker / FINAL_FILE).write_text(json.dumps(data))
    report(
        data,
        checkpoint=Checkpoint.from_directory(str(marker)) if marker else None,
        checkpoint_dir_name=FINAL_DIR,
        delete_local_checkpoint_after_upload=True,
    )
    return outcome


def final_checkpoint(outcome: TrialOutcome, marker_path: str | None) -> str | None:
    """The model checkpoint of a finished job: the "final" marker's sibling step folder."""
    if marker_path is None or not outcome.ok:
        return None
    return str(Path(marker_path).parent / f"step_{int(outcome.step):08d}")


# ---------------------------------------------------------------------------------------------
# Driver side


@dataclass
class JobSpec:
    """One Ray Train job, as both `launch` and the sweep trials build it."""

    cfg: ExperimentConfig  # absolute paths (see absolute_config)
    run_dir: Path
    workers: int
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    storage: str | None = None  # Ray Train storage path; default: the run folder
    max_failures: int = 3  # worker-group restarts from the last checkpoint
    mlflow_run_id: str | None = None
    fallback_resume: Path | None = None
    progress: bool = False
    extra_metrics: dict[str, float] | None = None
    callbacks: list | None = None  # Ray Train UserCallbacks (e.g. Tune's report callback)


def storage_location(spec: JobSpec) -> tuple[str, str]:
    """(storage_path, name) of the job's Ray Train run: `<run_dir>/checkpoints` by default."""
    if spec.storage:
        return spec.storage.rstrip("/"), f"{spec.run_dir.name}-{STORAGE_NAME}"
    return str(spec.run_dir), STORAGE_NAME


def has_ray_state(run_dir: Path) -> bool:
    """Whether Ray Train has left a checkpoint-manager snapshot (it resumes from it on its own)."""
    root = Path(run_dir) / STORAGE_NAME
    return root.is_dir() and any(p.suffix == ".json" for p in root.iterdir() if p.is_file())


def make_trainer(spec: JobSpec):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    use_gpu = spec.gpus_per_worker > 0
    resources = {"CPU": spec.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = spec.gpus_per_worker
    storage_path, name = storage_location(spec)
    loop_config = {
        "cfg": spec.cfg.to_dict(),
        "scratch_dir": str(spec.run_dir / "workers"),
        "mlflow_run_id": spec.mlflow_run_id,
        "fallback_resume": str(spec.fallback_resume) if spec.fallback_resume else None,
        "progress": spec.progress,
        "extra_metrics": spec.extra_metrics,
    }
    keep = getattr(spec.cfg.train, "keep_checkpoints", None) or None
    if keep:
        keep += 1  # the "final" marker counts as one of Ray's kept checkpoints
    return TorchTrainer(
        train_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=spec.workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=keep),
            callbacks=spec.callbacks,
            worker_runtime_env={"env_vars": worker_env(spec.cfg, spec.cpus_per_worker, use_gpu)},
        ),
    )


def run_job(spec: JobSpec) -> TrialOutcome:
    """Fit one TorchTrainer. Returns the job's outcome: finished (with the final model checkpoint),
    or failed with its reason (diverged, a user mistake, retries exhausted, no final report)."""
    from ray.train import TrainingFailedError

    os.environ.setdefault(HEALTH_CHECK_ENV, HEALTH_CHECK_INTERVAL_S)
    trainer = make_trainer(spec)
    try:
        result = trainer.fit()
    except TrainingFailedError as e:
        return TrialOutcome.failed(failure_reason(e), extra=spec.extra_metrics)
    outcome = TrialOutcome.from_report(result.metrics)
    if outcome is None:
        return TrialOutcome.failed("training ended without its final report", extra=spec.extra_metrics)
    marker = result.checkpoint.path if result.checkpoint is not None else None
    return outcome.with_checkpoint(final_checkpoint(outcome, marker))


def raise_for(outcome: TrialOutcome) -> None:
    """A failed outcome as the exception `rbench run` shows (UserError: one line, exit 2)."""
    if outcome.ok:
        return
    if outcome.user_error:
        raise UserError(str(outcome.failure_reason).split(": ", 1)[-1])
    raise TrialFailed(str(outcome.failure_reason))


def failure_reason(err: BaseException) -> str:
    """One line: the first worker's exception, else the error itself."""
    failures = getattr(err, "worker_failures", None)
    if failures:
        rank, exc = sorted(failures.items())[0]
        first = str(exc).strip().splitlines()
        return f"worker rank {rank}: {type(exc).__name__}: {first[-1] if first else ''}"[:2000]
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}"[:2000]


def to_train_result(outcome: TrialOutcome, run_dir: Path):
    from harness.engine import TrainResult

    return TrainResult(
        run_dir=run_dir,
        step=outcome.step,
        metrics=dict(outcome.metrics),
        flops=outcome.flops,
        checkpoint_dir=outcome.checkpoint_dir,
        num_parameters=int(outcome.num_parameters or 0),
        effective_depth=int(outcome.effective_depth or 0),
        puzzle_embedding_entries=int(outcome.puzzle_embedding_entries or 0),
    )


def launch(
    cfg: ExperimentConfig,
    *,
    run_dir: Path,
    workers: int,
    gpus_per_worker: float = 0.0,
    address: str | None = None,
    resume: bool = False,
    storage: str | None = None,
    max_failures: int = 3,
    progress: bool = True,
):
    """Train `cfg` as a Ray Train job of `workers` data-parallel DeepSpeed workers.

    Starts a local Ray (files under runs_dir/ray) unless `address`/RAY_ADDRESS names a cluster.
    With `resume`, Ray Train continues from the newest checkpoint in the run folder and the same
    MLflow run is reopened. Returns the engine's TrainResult (checkpoint_dir in Ray's storage).
    """
    from harness import checkpoint as ckpt
    from harness.provenance import write_provenance
    from harness.tracking import Outcome, open_tracker, read_run_id
    from harness.tracking.tags import LAUNCHER_TAG, WORKERS_TAG

    if workers < 1:
        raise ConfigError("--workers", f"expected a positive number of workers, got {workers}")
    if gpus_per_worker < 0:
        raise ConfigError("--gpus-per-worker", f"expected a number >= 0, got {gpus_per_worker}")
    cfg = absolute_config(cfg)
    run_dir = Path(run_dir).resolve()
    if not resume and storage is None and has_ray_state(run_dir):
        raise UserError(
            f"{run_dir} already holds a Ray Train run: pass --resume to continue it, "
            "or choose another --run-dir"
        )
    cpus = float(cfg.engine.threads or 1)
    # A local Ray gets at least the CPUs the job asks for (logical CPUs: oversubscribing a laptop
    # is the user's call); a cluster is sized by its own configuration.
    ensure_ray(address, runs_dir=cfg.runs_dir, num_cpus=max(os.cpu_count() or 1, int(workers * cpus + 0.999)))
    run_dir.mkdir(parents=True, exist_ok=True)

    fallback = None
    if resume and not has_ray_state(run_dir):
        fallback = ckpt.latest(run_dir)  # a run begun without Ray: start from its checkpoint
    tracker = open_tracker(
        cfg,
        run_dir=run_dir,
        run_id=read_run_id(run_dir) if resume else None,
        tags={LAUNCHER_TAG: "ray", WORKERS_TAG: str(workers)},
    )
    try:
        tracker.start()
        write_provenance(run_dir)  # the job's; each rank's engine writes its own too
        spec = JobSpec(
            cfg=cfg,
            run_dir=run_dir,
            workers=workers,
            cpus_per_worker=cpus,
            gpus_per_worker=gpus_per_worker,
            storage=storage,
            max_failures=max_failures,
            mlflow_run_id=tracker.run_id,
            fallback_resume=fallback,
            progress=progress,
        )
        try:
            outcome = run_job(spec)
            raise_for(outcome)
        except (TrialFailed, UserError) as e:
            tracker.fail(str(e))
            raise
        except BaseException as e:  # interrupted: leave the run resumable, but not "RUNNING"
            tracker.finish_quietly(Outcome.of_exception(e))
            raise
        result = to_train_result(outcome, run_dir)
        tracker.finish(Outcome.finished(result))
    finally:
        tracker.close()
    return result
