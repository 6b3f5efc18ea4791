"""The search: a Ray Tune `Searcher` over a persisted Optuna study, driven by Optuna's ask/tell.

All bookkeeping lives in the study (what `rbench sweep status` reads), so a killed driver loses
nothing: Tune restores this searcher's small saved state (Tune trial id -> Optuna trial number),
and whatever the driver asked Optuna for but Tune never saved is "adopted" from the study.

How points are chosen:
- grid: the union of the families' grids x seeds is enumerated (seeds outer, spec order inner);
  the next point not yet in the study is enqueued with `grid_index` and asked for.
- tpe / nsga2 / random: define-by-run. `family` is a categorical; the shared keys are suggested
  under their own names, a family's own keys under `<family>:<key>` (conditional parameters: a
  trial never gets a key outside its family). A new point's other seeds are enqueued at once as
  Optuna trials with the same parameters (`replica_of`), each its own trial and MLflow run.

Per trial the study records user attrs `family`, `seed`, `tune_trial_id`, and on the way out
`failure_reason`, `stopped_early`, `flops`, `step`, `num_parameters`, `resumed_from_step`.
"""

from __future__ import annotations

import os
import pickle
import signal
import warnings
from typing import Any

from ray.tune.search import Searcher

from harness.outcome import TrialOutcome
from harness.sweep.spec import (
    DEFAULT_FAMILY,
    Categorical,
    IntRange,
    SweepSpec,
    plain_key,
)
from harness.sweep.heartbeat import fail_stale
from harness.sweep.state import heartbeats, open_storage

TRIAL_KEY = "_rbench"  # trial config entry holding the Optuna trial's number
# Test-only fault injection: with this set to an Optuna trial number, the driver SIGKILLs itself
# right after Optuna's ask() returns that trial, before anything else is recorded (its parameters,
# Tune's trial table, Tune's experiment-state save): the worst moment for a driver to die. Unset
# (always, outside tests) it costs one environment lookup per suggestion.
FAULT_KILL_AFTER_ASK = "RBENCH_FAULT_KILL_AFTER_ASK"
RECORDED = ("flops", "flops_cumulative", "step", "num_parameters", "resumed_from_step", "match_ratio")


def make_sampler(spec: SweepSpec):
    """The sampler of define-by-run suggestions (a grid's points are enqueued, not sampled)."""
    import optuna

    s = spec.sampler
    if s.type == "tpe":
        # multivariate + group: TPE models each family's conditional parameters jointly
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=s.seed, multivariate=True, group=True)
    if s.type == "nsga2":
        kw = {"population_size": s.population_size} if s.population_size else {}
        return optuna.samplers.NSGAIISampler(seed=s.seed, **kw)
    return optuna.samplers.RandomSampler(seed=s.seed)


def fault_after_ask(number: int) -> None:
    """The fault-injection hook (see FAULT_KILL_AFTER_ASK)."""
    if os.environ.get(FAULT_KILL_AFTER_ASK) == str(number):
        os.kill(os.getpid(), signal.SIGKILL)


def param_name(spec: SweepSpec, family: str, key: str) -> str:
    """The Optuna parameter name of a searched key: shared keys plain, a family's own prefixed."""
    return key if key in spec.space or spec.families is None else f"{family}:{key}"


def grid_points(spec: SweepSpec) -> list[tuple[str, dict[str, Any], int]]:
    """(family, params, seed) of every grid trial, in the order they are handed out."""
    return [(fam, params, seed) for seed in spec.seed_list for fam, params in spec.grid()]


def _suggest(trial, name: str, dim, grid: bool):
    if grid:
        return trial.suggest_categorical(name, list(dim.grid()))
    if isinstance(dim, Categorical):
        return trial.suggest_categorical(name, list(dim.values))
    if isinstance(dim, IntRange):
        return trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
    return trial.suggest_float(name, dim.low, dim.high, step=dim.step, log=dim.log)


class StudySearcher(Searcher):
    """Tune's public Searcher interface (suggest / on_trial_result / on_trial_complete / save /
    restore) implemented with Optuna's ask / tell on a study in RDB storage."""

    def __init__(self, spec: SweepSpec, *, study_name: str, storage_url: str):
        metric = [o.metric for o in spec.objectives]
        mode = [o.mode for o in spec.objectives]
        multi = spec.multi_objective
        super().__init__(metric=metric if multi else metric[0], mode=mode if multi else mode[0])
        self._spec_data = spec.model_dump(mode="json")
        self._study_name, self._storage_url = study_name, storage_url
        self._live: dict[str, int] = {}  # Tune trial id -> Optuna trial number
        self._done: set[str] = set()
        self._adopt: list[int] | None = None
        self._sampler = make_sampler(spec)  # saved with the searcher: its RNG continues
        self._cache: dict[str, Any] = {}

    # -- plumbing ----------------------------------------------------------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}  # study / storage / spec: reopened on use
        return state

    @property
    def spec(self) -> SweepSpec:
        if "spec" not in self._cache:
            self._cache["spec"] = SweepSpec.model_validate(self._spec_data)
        return self._cache["spec"]

    @property
    def study(self):
        if "study" not in self._cache:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage = self.storage
            self._cache["study"] = optuna.load_study(
                study_name=self._study_name, storage=storage, sampler=self._sampler
            )
        return self._cache["study"]

    @property
    def storage(self):
        if "storage" not in self._cache:
            self._cache["storage"] = open_storage(self._storage_url)
        return self._cache["storage"]

    def _trial_id(self, number: int) -> int:
        st = self.storage
        return st.get_trial_id_from_study_id_trial_number(st.get_study_id_from_name(self._study_name), number)

    def _set_attr(self, number: int, key: str, value: Any) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            self.storage.set_trial_user_attr(self._trial_id(number), key, value)
        except (UpdateFinishedTrialError, RuntimeError):
            pass  # already finished (a rerun after a restart): the study keeps the first record

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # metric, mode and space come from the sweep spec

    # -- Searcher ----------------------------------------------------------------------------
    def suggest(self, trial_id: str):
        import optuna

        spec = self.spec
        if self._adopt is None:
            self._adopt = self._orphans()
        if self._adopt:
            # The same Optuna trial again, as a live trial: whatever the dead driver had not yet
            # suggested on it (it may have died right after ask) is filled in now, exactly as a
            # new trial's (an enqueued grid point's fixed values; already-set ones are kept).
            number = self._adopt.pop(0)
            trial = optuna.trial.Trial(self.study, self._trial_id(number))
        else:
            if heartbeats(self._storage_url):
                # as Optuna's own optimize() does before ask(): a trial whose process vanished
                # is failed, and its retry (queued by the storage's callback) is handed out now
                fail_stale(self.study)
            if spec.sampler.type == "grid" and not self._enqueue_next_grid_point():
                return self.FINISHED
            with warnings.catch_warnings():  # "Heartbeat ... supposed to be used with optimize"
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = self.study.ask()
            fault_after_ask(trial.number)
        number, family, params, attrs = self._fill(trial)
        self._live[trial_id] = number
        self._set_attr(number, "tune_trial_id", trial_id)
        return {
            "family": family,
            "seed": int(attrs["seed"]),
            "params": {plain_key(k): v for k, v in params.items() if k != "family"},
            TRIAL_KEY: {"number": number, "optuna_trial_id": self._trial_id(number)},
        }

    def _fill(self, trial) -> tuple[int, str, dict[str, Any], dict[str, Any]]:
        """Suggest this trial's family and parameters and record its seed and family (idempotent:
        a parameter or attribute already set is kept). Returns (number, family, params, attrs)."""
        spec = self.spec
        family = DEFAULT_FAMILY
        if spec.families is not None:
            family = trial.suggest_categorical("family", list(spec.family_specs))
        for key, dim in spec.family_space(family).items():
            _suggest(trial, param_name(spec, family, key), dim, spec.sampler.type == "grid")
        attrs = dict(trial.user_attrs)
        if "seed" not in attrs:
            attrs["seed"] = spec.seed_list[0]
            trial.set_user_attr("seed", attrs["seed"])
        if attrs.get("family") != family:
            attrs["family"] = family
            trial.set_user_attr("family", family)
        # a stale trial's retry (harness/sweep/heartbeat.py): its replicas exist already
        retry = "failed_trial" in self.storage.get_trial(trial._trial_id).system_attrs
        if spec.sampler.type != "grid" and "replica_of" not in attrs and not retry:
            self._enqueue_replicas(trial.number, dict(trial.params), family)
        return trial.number, family, dict(trial.params), attrs

    def _orphans(self) -> list[int]:
        """RUNNING trials of the study that no Tune trial holds: asked for by a driver that died
        before Tune saved them. Handed out again, oldest first."""
        from optuna.trial import TrialState

        known = set(self._live.values())
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return [t.number for t in sorted(running, key=lambda t: t.number) if t.number not in known]

    def _enqueue_next_grid_point(self) -> bool:
        """Make sure the study's queue holds the next grid point. False: the grid is exhausted."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return True  # enqueued before a restart: ask() hands it out first
        taken = {t.user_attrs.get("grid_index") for t in trials}
        spec = self.spec
        for i, (family, params, seed) in enumerate(grid_points(spec)):
            if i in taken:
                continue
            named = {param_name(spec, family, k): v for k, v in params.items()}
            if spec.families is not None:
                named["family"] = family
            self.study.enqueue_trial(named, user_attrs={"grid_index": i, "seed": seed, "family": family})
            return True
        return False

    def _enqueue_replicas(self, number: int, params: dict[str, Any], family: str) -> None:
        """Queue this point's other seeds (once; checked against the study, so a restart in
        between neither loses nor doubles them)."""
        have = {
            t.user_attrs.get("seed")
            for t in self.study.get_trials(deepcopy=False)
            if t.user_attrs.get("replica_of") == number
        }
        for s in self.spec.seed_list[1:]:
            if s not in have:
                self.study.enqueue_trial(
                    dict(params), user_attrs={"seed": s, "replica_of": number, "family": family}
                )

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        number = self._live.get(trial_id)
        if number is None or trial_id in self._done:
            return
        outcome = TrialOutcome.from_report(result)
        if outcome is not None and not outcome.ok:
            self._set_attr(number, "failure_reason", str(outcome.failure_reason))
        if outcome is None and not isinstance(self.metric, list) and self.metric in result:
            self._report(number, result)  # multi-objective: Optuna takes no intermediate values

    def _report(self, number: int, result: dict) -> None:
        try:
            self.storage.set_trial_intermediate_value(
                self._trial_id(number), int(result.get("training_iteration", 0)), float(result[self.metric])
            )
        except Exception:  # noqa: BLE001 - finished already, or this step was reported
            pass

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        from optuna.trial import TrialState

        number = self._live.get(trial_id)
        if number is None or trial_id in self._done:
            return
        self._done.add(trial_id)
        outcome = TrialOutcome.from_report(result)
        flat = outcome.to_report() if outcome is not None else dict(result or {})
        for key in RECORDED:
            if isinstance(flat.get(key), (int, float)):
                self._set_attr(number, key, float(flat[key]))
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        if error or (outcome is not None and not outcome.ok):
            reason = outcome.failure_reason if outcome is not None else "the trial's process died"
            self._set_attr(number, "failure_reason", str(reason)[:2000])
            self._tell(number, state=TrialState.FAIL)
        elif outcome is not None:
            missing = [m for m in metrics if not isinstance(flat.get(m), (int, float))]
            if missing:
                self._set_attr(
                    number,
                    "failure_reason",
                    f"objective {missing[0]!r} is not among "
                    f"the trial's final metrics ({', '.join(sorted(outcome.metrics))})",
                )
                self._tell(number, state=TrialState.FAIL)
            else:
                self._tell(number, values=[float(flat[m]) for m in metrics])
        else:
            # Stopped before its final evaluation (ASHA, or the sweep's budget): not a result.
            # Its last intermediate value (Tune skips on_trial_result for the stopping one) is
            # what a pruned trial is ranked by.
            self._set_attr(number, "stopped_early", True)
            if len(metrics) == 1 and metrics[0] in flat:
                self._report(number, flat)
            self._tell(number, state=TrialState.PRUNED)

    def _tell(self, number: int, **kwargs) -> None:
        try:
            self.study.tell(number, **kwargs)
        except Exception:  # noqa: BLE001 - already told (a rerun after a restart)
            pass

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"live": self._live, "done": self._done, "sampler": self._sampler}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self._live, self._done = dict(state["live"]), set(state["done"])
        self._sampler = state["sampler"]
        self._cache.pop("study", None)
        self._adopt = None  # recomputed against the study at the next suggestion
