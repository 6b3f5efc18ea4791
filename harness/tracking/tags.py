"""Every MLflow tag name, metric prefix and file name rbench uses, in one place.

Readers (reports/, `rbench sweep status`, the tests) and writers (the trackers, the sweep driver)
import these instead of spelling the strings, so a renamed tag cannot split the store in two.
"""

from __future__ import annotations

# Metric prefixes: the training curve and the evaluations.
TRAIN_PREFIX, EVAL_PREFIX = "train/", "eval/"

# Experiments. MLflow 3 opens an experiment of this kind on its training-runs table (without it,
# on the GenAI traces overview, which shows none of rbench's runs).
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # the description shown in the UI
EXPERIMENT_DESCRIPTION = (
    "rbench training runs: recursive reasoning models (HRM, TRM) and transformer baselines. "
    "One run per training job (train/* curves, eval/* evaluations, the full config as params); "
    "a sweep is a parent run with one child run per trial."
)

# Runs (MLflow's own names first).
PARENT_TAG = "mlflow.parentRunId"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_DIRTY_TAG = "rbench.git_dirty"
RUN_DIR_TAG = "rbench.run_dir"
SEED_TAG = "rbench.seed"
MODEL_TAG = "rbench.model"
TASK_TAG = "rbench.task"
LAUNCHER_TAG = "rbench.launcher"  # "ray" for `rbench run --workers N`
WORKERS_TAG = "rbench.workers"
CHECKPOINT_TAG = "rbench.checkpoint_dir"
FINAL_STEP_TAG = "rbench.final_step"
FAILURE_TAG = "rbench.failure_reason"  # why a run is FAILED
STOP_TAG = "rbench.stop_reason"  # why a run is KILLED (interrupted, stopped early)
KIND_TAG = "rbench.kind"  # "test_time": a test-time grid, child of a training run
ATTEMPT_TAG = "rbench.attempts"  # how many times the run was (re)opened

# Sweeps: one parent run per sweep, one child run per trial.
SWEEP_TAG = "rbench.sweep_id"
TRIAL_TAG = "rbench.trial_number"  # the Optuna trial number
ROLE_TAG = "rbench.role"  # "sweep" (the parent) or "trial"
NAME_TAG = "rbench.sweep_name"  # the spec's name (the id adds a unique suffix)
FAMILY_TAG = "rbench.family"  # the sweep family a trial belongs to (reports group by it)
MATCH_RATIO_TAG = "rbench.match_ratio"  # achieved / asked parameter ratio of a matched baseline
TUNE_TRIAL_TAG = "rbench.tune_trial_id"
OPTUNA_TRIAL_TAG = "rbench.optuna_trial_id"
RERUN_TAG = "rbench.rerun"  # the trial's run was reopened by a rerun
BEST_TAG = "rbench.best"  # the sweep's best trial (JSON), on the parent

# Files in a run folder.
RUN_FILE = "mlflow_run.json"  # {"run_id", "uri"}: reopened by --resume
