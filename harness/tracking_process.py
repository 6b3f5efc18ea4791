"""MLflow in a helper process, so that tracking never stalls the training loop.

`TrackerProcess` has the `Tracker` interface (start, log_metrics, log_params, set_tags, finish,
fail) but runs the `Tracker` in a child process (`python -m harness.tracking_process`, at a lower
CPU priority) and returns at once. Why not a thread: MLflow is Python-heavy (seconds to import and
open its store, ~20 ms of SQLAlchemy per logged batch), and a thread holding the GIL makes the
training thread wait before each of its hundreds of small torch calls per step; on a 2-core machine
that cost more than doing the logging inline. A process shares no interpreter with training.

Protocol: one JSON object per line. The parent writes {"id", "op", "args"} to the child's stdin;
the child answers every request with {"id", "ok"[, "error"]} on its own stdout copy (the child's
sys.stdout goes to stderr, so stray prints cannot corrupt the channel). A failed request is raised
in the parent, as `TrackingError`, by its next call; `finish` waits for all answers. Metrics are
buffered in the child and written at most every RBENCH_TRACKER_FLUSH_S seconds (default 2), with
the time they were logged, and always before any other request.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness.config import ExperimentConfig
from harness.tracking import TrackingError


class TrackerProcess:
    def __init__(self, cfg: ExperimentConfig, *, run_dir: Path, run_id: str | None = None,
                 nice: int = 19):
        from harness.tracking import resolve_uri

        self.uri, self.run_id = resolve_uri(cfg), run_id
        self._next_id, self._outstanding = 0, 0
        self._answers: queue.Queue = queue.Queue()
        self._dead = False
        env = {**os.environ, "RBENCH_TRACKER_NICE": str(nice), "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen([sys.executable, "-m", "harness.tracking_process"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                      text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, name="rbench-tracker-reader", daemon=True)
        self._reader.start()
        self._send("init", {"cfg": cfg.to_dict(), "run_dir": str(run_dir), "run_id": run_id,
                            "argv": sys.argv})

    # -- transport -----------------------------------------------------------------------------
    def _read(self) -> None:
        for line in self._proc.stdout:                      # blocks on I/O: holds no GIL meanwhile
            self._answers.put(json.loads(line))
        self._answers.put(None)                             # EOF: the child is gone

    def _send(self, op: str, args: dict[str, Any]) -> None:
        self._drain(block=False)
        if self._dead:
            raise TrackingError(f"MLflow ({self.uri}): the tracking process has exited")
        self._next_id += 1
        try:
            self._proc.stdin.write(json.dumps({"id": self._next_id, "op": op, "args": args}) + "\n")
        except (BrokenPipeError, OSError):
            self._dead = True
            raise TrackingError(f"MLflow ({self.uri}): the tracking process has exited") from None
        self._outstanding += 1

    def _drain(self, block: bool) -> None:
        """Take in answers (all outstanding ones if `block`); raise the first failure."""
        while self._outstanding and not self._dead:
            try:
                answer = self._answers.get(block=block)
            except queue.Empty:
                return
            if answer is None:
                self._dead = True
                raise TrackingError(f"MLflow ({self.uri}): the tracking process exited "
                                    f"(code {self._proc.wait()})")
            self._outstanding -= 1
            if not answer["ok"]:
                raise TrackingError(f"MLflow ({self.uri}): {answer['error']}")
            if answer.get("run_id"):
                self.run_id = answer["run_id"]

    # -- the Tracker interface -----------------------------------------------------------------
    def start(self) -> None:
        self._send("start", {})

    def log_metrics(self, step: int, metrics: dict[str, float], prefix: str = "train/") -> None:
        self._send("log_metrics", {"step": step, "metrics": {k: float(v) for k, v in metrics.items()},
                                   "prefix": prefix, "ts": int(time.time() * 1000)})

    def log_params(self, params: dict[str, Any]) -> None:
        self._send("log_params", {"params": {k: str(v) for k, v in params.items()}})

    def set_tags(self, tags: dict[str, str]) -> None:
        self._send("set_tags", {"tags": {k: str(v) for k, v in tags.items()}})

    def finish(self, result) -> None:
        """End the run as FINISHED; returns once everything sent has been written."""
        self._send("finish", {"num_parameters": result.num_parameters,
                              "puzzle_embedding_entries": getattr(result, "puzzle_embedding_entries", 0),
                              "effective_depth": result.effective_depth,
                              "checkpoint_dir": str(result.checkpoint_dir), "step": result.step})
        self._drain(block=True)

    def fail(self, reason: str) -> None:
        """Mark the run FAILED (if it was created). Never raises: the caller has an error already."""
        try:
            self._send("fail", {"reason": reason})
            self._drain(block=True)
        except TrackingError:
            pass

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()                    # EOF: the child finishes and exits
            except OSError:
                pass
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# The child

def _child() -> int:
    from types import SimpleNamespace

    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                                    # stray prints go to stderr, not the channel
    try:
        os.nice(int(os.environ.get("RBENCH_TRACKER_NICE", "10")))
    except (AttributeError, OSError, ValueError):
        pass
    from harness.tracking import Tracker

    tracker: Tracker | None = None
    pending: list = []                 # metric records not yet written
    last_flush = time.monotonic()
    flush_s = float(os.environ.get("RBENCH_TRACKER_FLUSH_S", "2"))

    def flush() -> None:
        nonlocal pending, last_flush
        records, pending, last_flush = pending, [], time.monotonic()
        if records:
            tracker.log_metric_records(records)

    for line in sys.stdin:
        msg = json.loads(line)
        op, args = msg["op"], msg["args"]
        answer: dict[str, Any] = {"id": msg["id"], "ok": True}
        try:
            if op == "log_metrics":
                # Buffered: one MLflow request per `flush_s` seconds instead of one per log step.
                pending.append((args["step"], args["metrics"], args["prefix"], args["ts"]))
                if time.monotonic() - last_flush >= flush_s:
                    flush()
                channel.write(json.dumps(answer) + "\n")
                continue
            flush()
            if op == "init":
                sys.argv = list(args["argv"])         # provenance records the user's command
                cfg = ExperimentConfig.model_validate(args["cfg"])
                tracker = Tracker(cfg, run_dir=Path(args["run_dir"]), run_id=args["run_id"])
            elif op == "start":
                answer["run_id"] = tracker.start()
            elif op == "log_params":
                tracker.log_params(args["params"])
            elif op == "set_tags":
                tracker.set_tags(args["tags"])
            elif op == "finish":
                tracker.finish(SimpleNamespace(**args))
            elif op == "fail":
                tracker.fail(args["reason"])
            else:
                raise ValueError(f"unknown request {op!r}")
        except Exception as e:  # noqa: BLE001 - every failure goes back to the parent, one line
            first = (str(e).strip().splitlines() or [""])[0][:500]
            answer = {"id": msg["id"], "ok": False, "error": f"{type(e).__name__}: {first}"}
        channel.write(json.dumps(answer) + "\n")
    if tracker is not None and tracker.run_id is not None and pending:
        try:
            flush()                    # the parent closed the channel without finishing
        except Exception as e:  # noqa: BLE001 - nobody is left to tell but stderr
            print(f"rbench tracker: could not write the last metrics: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(_child())
