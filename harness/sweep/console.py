"""What `rbench sweep` prints: one line per trial event and a progress line over the sweep.

    #3 started    transformer seed=0 model.match_multiple=4
    #3 evaluated  step 500  exact_accuracy=0.4120
    #3 finished   exact_accuracy=0.6230  flops=2.00e+12  (41s)
    [########------------] 2/4 trials  best exact_accuracy 0.6230 (#3)  elapsed 1m22s  ETA 1m22s
    #1 failed     TrainingDiverged: training diverged at step 12: loss is nan

Ray's and Tune's own output (Tune's trial table, Train controller and worker lines, core worker
warnings) goes to <sweep folder>/ray.log instead (see `quiet_ray`); `rbench sweep -v` keeps it on
the console.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ray.tune import Callback

from harness.outcome import TrialOutcome
from harness.sweep.search import TRIAL_KEY

RAY_LOG = "ray.log"
BAR = 20


def _fmt_time(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class ConsoleReporter(Callback):
    """A Tune callback printing trial events and the sweep's progress to `out`."""

    def __init__(self, *, sweep_dir: str, total: int, metric: str, mode: str, out=None):
        self.sweep_dir, self.total, self.metric, self.mode = str(sweep_dir), total, metric, mode
        self.out = out  # None: sys.stdout (this object is pickled with the Tuner)
        self.t0, self.done = time.time(), 0
        self.started: dict[str, float] = {}
        self.last_step: dict[str, float] = {}
        self.best: tuple[float, int] | None = None
        self.finished_here = 0

    def setup(self, **info):
        """At every (re)start of the sweep: count what the study already holds."""
        from harness.sweep.summary import status

        self.t0, self.finished_here = time.time(), 0
        try:
            c = status(self.sweep_dir)["counts"]
            self.done = c["done"] + c["stopped"] + c["failed"]
        except Exception:  # noqa: BLE001 - progress is cosmetic
            self.done = 0

    def _line(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    @staticmethod
    def _number(trial) -> str:
        meta = (trial.config or {}).get(TRIAL_KEY) or {}
        return f"#{meta['number']}" if "number" in meta else trial.trial_id

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.time()
        cfg = trial.config or {}
        params = " ".join(f"{k}={v}" for k, v in (cfg.get("params") or {}).items())
        fam = cfg.get("family")
        fam = f"{fam} " if fam and fam != "default" else ""
        self._line(f"{self._number(trial):<5} started    {fam}seed={cfg.get('seed')} {params}")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._line(f"{self._number(trial):<5} restarting from its last checkpoint (its process died)")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if TrialOutcome.from_report(result) is not None or self.metric not in result:
            return
        step = result.get("step")
        if self.last_step.get(trial.trial_id) == step:
            return
        self.last_step[trial.trial_id] = step
        self._line(
            f"{self._number(trial):<5} evaluated  step {int(step or 0)}  "
            f"{self.metric}={result[self.metric]:.4f}"
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        outcome = TrialOutcome.from_report(last)
        took = time.time() - self.started.get(trial.trial_id, time.time())
        num = self._number(trial)
        if outcome is None:
            self._line(
                f"{num:<5} stopped    early (scheduler or budget) at step {int(last.get('step') or 0)}"
            )
        elif not outcome.ok:
            self._line(f"{num:<5} failed     {outcome.failure_reason}")
        else:
            value = outcome.metrics.get(self.metric)
            shown = f"{self.metric}={value:.4f}" if value is not None else "(no objective)"
            self._line(f"{num:<5} finished   {shown}  flops={outcome.flops:.2e}  ({_fmt_time(took)})")
            if value is not None:
                better = self.best is None or (
                    value > self.best[0] if self.mode == "max" else value < self.best[0]
                )
                if better:
                    self.best = (value, int(num.lstrip("#")) if num.startswith("#") else -1)
        self._progress()

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(
            f"{self._number(trial):<5} failed     its process died (retries used up; "
            f"see {RAY_LOG} in the sweep folder)"
        )
        self._progress()

    def _progress(self) -> None:
        self.done += 1
        self.finished_here += 1
        elapsed = time.time() - self.t0
        best = f"  best {self.metric} {self.best[0]:.4f} (#{self.best[1]})" if self.best else ""
        if self.total > 0:
            filled = min(BAR, round(BAR * self.done / self.total))
            left = max(0, self.total - self.done)
            eta = f"  ETA {_fmt_time(elapsed / self.finished_here * left)}"
            self._line(
                f"[{'#' * filled}{'-' * (BAR - filled)}] {self.done}/{self.total} trials"
                f"{best}  elapsed {_fmt_time(elapsed)}{eta if left else ''}"
            )
        else:
            self._line(f"{self.done} trials{best}  elapsed {_fmt_time(elapsed)}")


@contextmanager
def quiet_ray(sweep_dir: Path, verbose: bool):
    """Unless verbose: Ray's Python loggers (Tune's controller, Train) and MLflow's write to
    <sweep_dir>/ray.log, not the console, for the duration of the sweep. (The actors' own
    output stays in Ray's session logs: the driver starts Ray with log_to_driver=False.)"""
    if verbose:
        yield
        return
    handler = logging.FileHandler(Path(sweep_dir) / RAY_LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = {}
    for name in ("ray", "ray.tune", "ray.train", "ray.air", "mlflow", "alembic"):
        lg = logging.getLogger(name)
        saved[name] = (list(lg.handlers), lg.propagate)
        top = name in ("ray", "mlflow", "alembic")
        lg.handlers = [handler] if top else []
        lg.propagate = not top
    try:
        yield
    finally:
        for name, (handlers, propagate) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers, lg.propagate = handlers, propagate
        handler.close()
