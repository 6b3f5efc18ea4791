"""Sweeps: a sweep spec (families x spaces x seeds) -> an Optuna study -> Ray Tune trials.

    spec.py     the YAML spec (families, shared space, seeds, sampler, budget, scheduler)
    point.py    one trial's experiment config (family, point, seed; match_params by family)
    sizing.py   parameter counts without training
    search.py   Tune's Searcher over a persisted Optuna study (ask / tell, define-by-run families)
    trial.py    one trial: the engine in the Tune actor (1 worker) or a TorchTrainer (2+)
    schedule.py the FLOPs budget stopper; ASHA whose state survives --resume
    driver.py   the Tuner: scheduler, budgets, resume
    summary.py  `rbench sweep status`, from the study alone
    runs.py     the MLflow side (the only module here that calls tracking)
    state.py    sweep.json and the Optuna storage

Where things live (all under <runs_dir>/sweeps/<name>/, the "sweep folder"):
    sweep.json            identity (see state.py)
    optuna.db             the Optuna study (default storage; any RDB URL via `storage:`)
    tune/                 Ray Tune's experiment state; for 1-worker trials also their checkpoints
    trials/trial_NNNNN/   one folder per Optuna trial number: worker scratch, Ray Train storage
    ray.log               Ray's and Tune's own log lines (shown on the console with -v)
"""

from __future__ import annotations

_EXPORTS = {
    "load_spec": "spec",
    "trial_config": "point",
    "SweepSpec": "spec",
    "LoadedSweep": "spec",
    "run_sweep": "driver",
    "status": "summary",
    "format_status": "summary",
    "resolve_sweep_dir": "summary",
    "open_storage": "state",
    "FlopsBudget": "schedule",
    "make_sampler": "search",
    "StudySearcher": "search",
}


def __getattr__(name: str):
    """Lazy: `rbench sweep status` must not pay for importing Ray Tune."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"harness.sweep.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'harness.sweep' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
