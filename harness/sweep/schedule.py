"""When trials stop: the sweep's FLOPs budget (a Tune stopper) and ASHA whose record of earlier
trials survives `--resume`.

Ray Tune saves its trial table and the searcher with the experiment, but not the scheduler: a
restored Tuner gets the scheduler as it was pickled when the sweep started, with empty rungs, so
after a resume ASHA would judge new trials against nothing. `SweepASHA` writes its own state
(rungs, trial -> bracket) to the sweep folder after every decision and reloads it on first use.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from ray.tune.schedulers import ASHAScheduler
from ray.tune.stopper import Stopper

ASHA_STATE = "asha.pkl"


class FlopsBudget:
    """Tune stopper: end the sweep once the trials together trained `budget` FLOPs. Its state is
    saved with Tune's experiment state, so the count survives --resume."""

    def __init__(self, budget: float):
        self.budget, self.used = float(budget), {}

    def __call__(self, trial_id: str, result: dict) -> bool:
        if isinstance(result.get("flops_cumulative"), (int, float)):
            self.used[trial_id] = max(self.used.get(trial_id, 0.0), float(result["flops_cumulative"]))
        return False

    def stop_all(self) -> bool:
        return sum(self.used.values()) >= self.budget


class FlopsStopper(FlopsBudget, Stopper):
    pass


class SweepASHA(ASHAScheduler):
    """ASHA (asynchronous successive halving) with its state kept in `state_file`."""

    def __init__(self, *, state_file: str | Path, **kwargs):
        super().__init__(**kwargs)
        self._state_file, self._loaded = str(state_file), False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if os.path.isfile(self._state_file):
            state_file = self._state_file
            self.restore(state_file)
            self._state_file, self._loaded = state_file, True

    def _save(self) -> None:
        tmp = self._state_file + ".tmp"
        with open(tmp, "wb") as f:
            pickle.dump(self.__dict__, f)
        os.replace(tmp, self._state_file)

    def on_trial_add(self, tune_controller, trial):
        self._load()
        super().on_trial_add(tune_controller, trial)
        self._save()

    def on_trial_result(self, tune_controller, trial, result):
        self._load()
        if trial.trial_id not in self._trial_info:  # restored trial Tune did not re-add
            super().on_trial_add(tune_controller, trial)
        action = super().on_trial_result(tune_controller, trial, result)
        self._save()
        return action

    def on_trial_complete(self, tune_controller, trial, result):
        self._load()
        if trial.trial_id not in self._trial_info:
            return
        super().on_trial_complete(tune_controller, trial, result)
        self._save()

    def on_trial_remove(self, tune_controller, trial):
        self._load()
        if trial.trial_id in self._trial_info:
            super().on_trial_remove(tune_controller, trial)
            self._save()
