"""Optuna heartbeats for sweep trials in a server database (see state.py for the settings).

- `Heartbeat`: while a trial's process runs it, a daemon thread records the Optuna trial's
  heartbeat every `heartbeat_interval` seconds. A process that vanishes stops the heartbeat.
- `fail_stale`: the driver, before asking Optuna for a new trial, fails the RUNNING trials whose
  heartbeat is older than the grace period; the storage's RetryHeartbeatStaleTrialCallback queues
  a copy of each (same parameters, user attrs: seed, family, grid index), handed out next.
- `take_over`: a (resumed) driver records a heartbeat for every RUNNING trial when it starts: it
  continues them (Tune reruns them, or the searcher adopts them), so the time the driver was down
  does not count against them.
- `superseded`: a trial that was failed as stale and retried is not trained again by its old Tune
  trial (the retry is the trial now).
"""

from __future__ import annotations

import sys
import threading

from harness.sweep.state import heartbeats, open_storage


class Heartbeat:
    """`with Heartbeat(storage_url, optuna_trial_id): train()`; a no-op for SQLite / no trial.
    `interval`: seconds between beats (default: the storage's heartbeat interval)."""

    def __init__(self, storage_url: str | None, trial_id: int | None, interval: float | None = None):
        self.url, self.trial_id, self.interval = storage_url, trial_id, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if not self.url or self.trial_id is None or not heartbeats(self.url):
            return self
        try:
            storage = open_storage(self.url)
            storage.record_heartbeat(self.trial_id)
        except Exception as e:  # noqa: BLE001 - e.g. no password in this node's environment
            print(f"rbench: no Optuna heartbeat for this trial: {type(e).__name__}: {e}", file=sys.stderr)
            return self
        interval = self.interval or storage.get_heartbeat_interval()

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    storage.record_heartbeat(self.trial_id)
                except Exception:  # noqa: BLE001 - a database hiccup: the next beat retries
                    pass
            storage.remove_session()
            storage.engine.dispose()  # a reused actor runs many trials: no pool left behind

        self._thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def _running(study) -> set[int]:
    from optuna.trial import TrialState

    return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}


def fail_stale(study) -> list[int]:
    """Fail (and so retry) the study's stale RUNNING trials. Returns their numbers."""
    import warnings

    import optuna

    before = _running(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return sorted(before - _running(study))


def take_over(study, storage) -> None:
    """Record a heartbeat now for every RUNNING trial of the study in `storage` (the storage it
    was opened on; heartbeat storages only)."""
    from optuna.trial import TrialState

    if storage.get_heartbeat_interval() is None:
        return
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.record_heartbeat(t._trial_id)


def superseded(storage_url: str | None, study_name: str, trial_id: int | None) -> int | None:
    """The number of the retry that replaced this trial (failed as stale), else None."""
    if not storage_url or trial_id is None or not heartbeats(storage_url):
        return None
    from optuna.trial import TrialState

    storage = open_storage(storage_url)
    try:
        trial = storage.get_trial(trial_id)
        if trial.state != TrialState.FAIL:
            return None
        study_id = storage.get_study_id_from_name(study_name)
        for t in storage.get_all_trials(study_id, deepcopy=False):
            if trial.number in t.system_attrs.get("retry_history", []):
                return t.number
        return None
    finally:
        storage.engine.dispose()
