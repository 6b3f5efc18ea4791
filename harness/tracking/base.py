"""The tracking interface every caller uses, the outcome a run ends with, and the no-op tracker.

    tracker = open_tracker(cfg, run_dir=...)   # MLflow in a helper process, in-process, or null
    tracker.start()                            # create the run (or reopen run_id on resume)
    tracker.log_params({...}); tracker.log_metrics(step, {...}); tracker.log_artifacts({...})
    tracker.finish(Outcome.finished(result))   # or Outcome.failed(reason) / Outcome.killed(reason)
    tracker.close()                            # always (finally:); flushes, never ends the run

Callers never test `if tracker`: with tracking off they get `NullTracker`, which does nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from harness.tracking.tags import TRAIN_PREFIX

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"


class TrackingError(RuntimeError):
    """MLflow failed (a store that cannot be reached or written, a helper process that died)."""


@dataclass(frozen=True)
class Outcome:
    """How a run ended. `status` is MLflow's (FINISHED, FAILED, KILLED); `reason` says why a run
    did not finish; a finished run carries the engine's TrainResult (or the same fields)."""

    status: str
    reason: str | None = None
    num_parameters: int | None = None
    effective_depth: int | None = None
    checkpoint_dir: str | None = None
    step: int | None = None
    puzzle_embedding_entries: int | None = None

    @classmethod
    def finished(cls, result) -> Outcome:
        """From the engine's TrainResult or a sweep's TrialOutcome (a failed one stays FAILED)."""
        if not getattr(result, "ok", True):
            return cls.failed(str(getattr(result, "failure_reason", None) or "failed"))
        return cls(
            FINISHED,
            None,
            int(result.num_parameters),
            int(result.effective_depth),
            str(result.checkpoint_dir) if result.checkpoint_dir else None,
            int(result.step),
            int(getattr(result, "puzzle_embedding_entries", None) or 0),
        )

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        return cls(FAILED, reason)

    @classmethod
    def killed(cls, reason: str) -> Outcome:
        return cls(KILLED, reason)

    @classmethod
    def of(cls, value) -> Outcome:
        """An Outcome as it is, or a TrainResult as a finished run."""
        return value if isinstance(value, Outcome) else cls.finished(value)

    @classmethod
    def of_exception(cls, exc: BaseException) -> Outcome:
        """Ctrl-C (and SIGTERM turned into SystemExit) is KILLED; anything else FAILED."""
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return cls.killed(reason)
        return cls.failed(reason)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Tracker(ABC):
    """One tracked run. Implementations: ProcessTracker (MLflow in a helper process),
    MlflowTracker (MLflow in this process), NullTracker (tracking off)."""

    run_id: str | None = None  # known once started (None: not tracked)

    @abstractmethod
    def start(self) -> None:
        """Create the run, or reopen `run_id` (resume). May return before the run exists
        (ProcessTracker); reading `run_id` then waits for it."""

    @abstractmethod
    def log_params(self, params: dict[str, Any]) -> None: ...

    @abstractmethod
    def log_metrics(self, step: int, metrics: dict[str, float], prefix: str = TRAIN_PREFIX) -> None:
        """Metrics at a training step. A step already in a metric's history (a run resumed from a
        checkpoint re-runs the steps after it) is not logged again."""

    @abstractmethod
    def log_artifacts(self, files: dict[str, Any]) -> None:
        """Small artifacts by name: a dict/list is written as JSON or YAML (by the name's
        extension), a str as text."""

    @abstractmethod
    def log_file(self, path, artifact_dir: str | None = None) -> None:
        """Upload a file written on disk (e.g. eval/correctness.npz) under `artifact_dir`."""

    @abstractmethod
    def set_tags(self, tags: dict[str, str]) -> None: ...

    @abstractmethod
    def finish(self, outcome) -> None:
        """End the run with an `Outcome` (a TrainResult means FINISHED). Waits until everything
        logged before has been written."""

    def finish_quietly(self, outcome: Outcome) -> None:
        """`finish`, for a caller handling an error already: a tracking failure is not raised."""
        try:
            self.finish(outcome)
        except TrackingError:
            pass

    def fail(self, reason: str) -> None:
        """End the run as FAILED with `reason`; never raises."""
        self.finish_quietly(Outcome.failed(reason))

    def close(self) -> None:  # noqa: B027 (a no-op by default, not abstract)
        """Release the tracker (flush what is buffered). Does not end the run."""

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


class NullTracker(Tracker):
    """`tracking.enabled: false`: every call does nothing."""

    def start(self) -> None:
        return None

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, step: int, metrics: dict[str, float], prefix: str = TRAIN_PREFIX) -> None:
        pass

    def log_artifacts(self, files: dict[str, Any]) -> None:
        pass

    def log_file(self, path, artifact_dir: str | None = None) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def finish(self, outcome) -> None:
        pass
