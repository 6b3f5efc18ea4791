"""`rbench sweep SPEC [--resume]`: the driver. A Ray Tune Tuner whose searcher is the persisted
Optuna study (harness/sweep/search.py), with ASHA on training FLOPs or FIFO, a FLOPs budget, and
a wall-time budget; `--resume` restores Tune's experiment and continues the same study.

Who owns which truth:
- Optuna owns the trials' parameters and outcomes (COMPLETE / PRUNED = stopped early / FAIL with
  `failure_reason`). The study is the record `rbench sweep status` reads.
- Ray Tune owns scheduling and resume: `--resume` restores Tune's experiment (finished trials are
  not rerun; unfinished ones rerun from their last checkpoint). The searcher's state (Tune trial
  id -> Optuna trial) is restored with it; what Tune never saved is re-adopted from the study.
- A trial is identified everywhere by its Optuna trial number: folder, MLflow child run tags.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import time
from pathlib import Path

import yaml

from harness.errors import UserError
from harness.sweep import runs
from harness.sweep.console import ConsoleReporter, quiet_ray
from harness.sweep.heartbeat import take_over
from harness.sweep.schedule import ASHA_STATE, FlopsStopper, SweepASHA
from harness.sweep.search import TRIAL_KEY, StudySearcher
from harness.sweep.spec import load_spec
from harness.sweep.state import TUNE_NAME, heartbeats, open_storage, read_state, write_state
from harness.sweep.summary import status
from harness.sweep.trial import (
    SweepContext,
    close_runs_callback,
    run_trial,
    trains_in_trial,
)


def trial_resources(spec) -> dict[str, float]:
    """What one Tune trial reserves: a 1-worker trial trains in its own actor (its CPU / GPU);
    a 2+-worker trial's actor only watches its TorchTrainer, which reserves the workers itself."""
    r = spec.resources
    if trains_in_trial(spec):
        return {"cpu": r.cpus_per_worker, "gpu": r.gpus_per_worker}
    return dict(r.trial_driver)


def run_sweep(
    spec_path: str | Path,
    *,
    resume: bool = False,
    address: str | None = None,
    callbacks: list | None = None,
    verbose: bool = False,
) -> dict:
    """Run (or, with resume, continue) a sweep to its end. Returns `status()`'s summary.
    `callbacks`: extra Ray Tune callbacks (e.g. timing probes in harness.bench.ray_overhead).
    The console shows one line per trial event and the sweep's progress; `verbose` adds Ray's
    and Tune's own output (otherwise in <sweep folder>/ray.log)."""
    sw = load_spec(spec_path)
    spec, sweep_dir = sw.spec, sw.sweep_dir
    state = read_state(sweep_dir)
    if state and not resume:
        raise UserError(
            f"sweep '{spec.name}' already exists in {sweep_dir}: pass --resume to "
            "continue it, or give the spec another name"
        )
    if resume and not state:
        raise UserError(f"--resume: no sweep '{spec.name}' in {sweep_dir}")
    if state and state["fingerprint"] != sw.fingerprint:
        raise UserError(
            f"{sw.path}: the spec changed since sweep '{spec.name}' started; "
            "--resume needs the same spec (give a changed spec a new name)"
        )
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no Tune table at all
    with quiet_ray(sweep_dir, verbose):
        return _run(sw, state, resume=resume, address=address, callbacks=callbacks, verbose=verbose)


def _run(sw, state, *, resume: bool, address: str | None, callbacks: list | None, verbose: bool) -> dict:
    import optuna
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from harness.launch import ensure_ray

    spec, sweep_dir = sw.spec, sw.sweep_dir
    # The sweep id names the Optuna study and tags every MLflow run: unique per sweep, so a new
    # sweep with an old name (in the same RDB or MLflow server) never mixes with the old one.
    sweep_id = state["sweep_id"] if state else f"{spec.name}-{secrets.token_hex(4)}"

    # Tune saves its experiment state (trial table, searcher, stopper) at most this often; small,
    # so a killed driver loses little (what it does lose is re-adopted from the study).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # Checkpoint reports carry no objective until the final evaluation, and failure records
    # none at all; the searcher and ASHA skip such results, so Tune must not reject them.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    res = trial_resources(spec)
    need = spec.max_concurrency * float(res.get("cpu", res.get("CPU", 0.0)))
    if not trains_in_trial(spec):
        need += spec.max_concurrency * spec.resources.workers * spec.resources.cpus_per_worker
    ensure_ray(
        address,
        runs_dir=sw.base.runs_dir,
        num_cpus=max(os.cpu_count() or 1, math.ceil(need)),
        log_to_driver=verbose,
    )

    uri = runs.tracking_uri(sw.base)
    parent = None
    if uri:
        parent = runs.start_parent(
            sw.base,
            sweep_id=sweep_id,
            sweep_name=spec.name,
            sweep_dir=sweep_dir,
            spec=yaml.safe_load(sw.text),
            run_id=state.get("parent_run_id") if state else None,
        )
    directions = ["maximize" if o.mode == "max" else "minimize" for o in spec.objectives]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if state and state.get("storage") not in (None, sw.storage_url):
        raise UserError(
            f"--resume: sweep '{spec.name}' keeps its study in {state['storage']}, "
            f"not {sw.storage_url} (check RBENCH_OPTUNA_STORAGE)"
        )
    storage = open_storage(sw.storage_url)
    study = optuna.create_study(
        storage=storage, study_name=sweep_id, directions=directions, load_if_exists=True
    )
    if heartbeats(sw.storage_url):
        take_over(study, storage)  # the trials still RUNNING are this driver's now
    study.set_user_attr("sweep_dir", str(sweep_dir))
    if parent:
        study.set_user_attr("mlflow_parent_run_id", parent)
    write_state(
        sweep_dir,
        {
            "sweep_id": sweep_id,
            "name": spec.name,
            "spec": str(sw.path),
            "fingerprint": sw.fingerprint,
            "storage": sw.storage_url,
            "parent_run_id": parent,
            "tracking_uri": uri,
            "experiment": sw.base.tracking.experiment,
            "num_trials": sw.num_trials,
            "created": (state or {}).get("created", time.time()),
            "driver": {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()},
        },
    )

    ctx = SweepContext(
        sweep_id=sweep_id,
        sweep_name=spec.name,
        sweep_dir=str(sweep_dir),
        base_data=sw.base_data,
        spec=spec.model_dump(mode="json"),
        parent_run_id=parent,
        tracking_uri=uri,
        experiment=sw.base.tracking.experiment,
        storage_url=sw.storage_url,
    )
    trainable = tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), res)
    tune_path = sweep_dir / TUNE_NAME

    if resume and tune.Tuner.can_restore(str(tune_path)):
        tuner = tune.Tuner.restore(
            str(tune_path),
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
    else:
        searcher = StudySearcher(spec, study_name=sweep_id, storage_url=sw.storage_url)
        sch = spec.scheduler
        if sch.type == "asha":
            obj = next((o for o in spec.objectives if o.metric == sch.metric), spec.objectives[0])
            # stop_last_trials=False: a trial that reaches max_t is not cut off before its final
            # evaluation (its own train.steps / train.flops_budget ends it).
            scheduler = SweepASHA(
                state_file=sweep_dir / ASHA_STATE,
                time_attr=sch.time_attr,
                metric=sch.metric or obj.metric,
                mode=obj.mode,
                max_t=sch.max_t,
                grace_period=sch.grace_period,
                reduction_factor=sch.reduction_factor,
                stop_last_trials=False,
            )
        else:
            scheduler = FIFOScheduler()
        trials = study.get_trials(deepcopy=False)
        # a trial failed as stale and retried (heartbeat.py) is not a result: its retry is
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
        done_before = len([t for t in trials if t.state.is_finished() and t.number not in retried])
        num = sw.num_trials - done_before if sw.num_trials > 0 else -1
        if sw.num_trials > 0 and num <= 0:
            return status(sweep_dir)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=num,
                max_concurrent_trials=spec.max_concurrency,
                time_budget_s=spec.budget.wall_time,
                reuse_actors=trains_in_trial(spec),
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name=TUNE_NAME,
                storage_path=str(sweep_dir),
                stop=FlopsStopper(spec.budget.flops) if spec.budget.flops else None,
                # a trial whose process died reruns from its last checkpoint; deterministic
                # failures are outcomes, not errors, so they are not retried
                failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures),
                callbacks=[
                    close_runs_callback(uri, sw.base.tracking.experiment, sweep_id),
                    ConsoleReporter(
                        sweep_dir=str(sweep_dir),
                        total=sw.num_trials,
                        metric=spec.objectives[0].metric,
                        mode=spec.objectives[0].mode,
                    ),
                    *(callbacks or []),
                ],
                verbose=1 if verbose else 0,
            ),
        )
    try:
        tuner.fit()
        summary = status(sweep_dir)
        if summary["counts"]["running"]:
            # Tune returns normally after Ctrl-C, leaving the unfinished trials RUNNING.
            raise KeyboardInterrupt
    except BaseException:
        if parent:
            runs.end_parent(uri, parent, interrupted=True)
        raise
    if parent:
        runs.end_parent(uri, parent, interrupted=False, summary=summary)
    return summary


def _trial_name(trial) -> str:
    meta = (trial.config or {}).get(TRIAL_KEY) or {}
    return f"trial_{int(meta['number']):05d}" if "number" in meta else str(trial.trial_id)
