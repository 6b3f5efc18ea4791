"""`ProcessTracker`: MLflow in a helper process, so that tracking never stalls training, and so
that a run whose process dies is still ended.

Why a process, not a thread: MLflow is Python-heavy (seconds to import and open its store, ~20 ms
of SQLAlchemy per logged batch); a thread holding the GIL makes the training thread wait before
each of its many small torch calls. A helper (this module's `main()`, niced, in its
own session so a Ctrl-C meant for training does not kill it first) shares nothing with training.

Protocol: one JSON object per line. The parent writes {"id", "op", "args"} to the helper's stdin;
the helper answers each with {"id", "ok"[, "error", "run_id"]} on its own copy of stdout (its
sys.stdout goes to stderr, so stray prints cannot corrupt the channel). A failed request is raised
in the parent, as TrackingError, by its next call; `finish` waits for every answer. Metrics are
buffered and written at most every RBENCH_TRACKER_FLUSH_S seconds (default 2), with the time they
were logged, and before any other request.

The parent vanishing (its pipe closes, or the helper is re-parented) without `finish`/`close`
means it died: SIGKILL, the OOM killer, a crash. The helper writes what it buffered and, if it
owns the run and the run is still RUNNING, ends it with `vanish_status` (FAILED unless told) and
a reason naming the process. A Ray worker's helper does not own the run (the driver does: Ray
retries the worker group), so it only writes what it buffered.
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

from harness.tracking import tags as T
from harness.tracking.base import FAILED, Outcome, Tracker, TrackingError
from harness.tracking.store import resolve_uri

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # so the helper imports this checkout
PARENT_POLL_S = 0.5
# Not `-m harness.tracking.process`: the package already imports this module, and runpy warns.
HELPER_ENTRY = "import sys; from harness.tracking.process import main; sys.exit(main())"


class ProcessTracker(Tracker):
    def __init__(
        self,
        cfg,
        *,
        run_dir: Path,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        record_id: bool = True,
        owns_run: bool = True,
        vanish_status: str = FAILED,
        vanish_reason: str | None = None,
        nice: int = 19,
    ):
        self.uri, self._run_id, self._started = resolve_uri(cfg), run_id, False
        self._next_id, self._outstanding = 0, 0
        self._answers: queue.Queue = queue.Queue()
        self._dead = False
        path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "RBENCH_TRACKER_NICE": str(nice), "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
        # May raise OSError (no fork/exec allowed here): open_tracker then tracks in-process.
        self._proc = subprocess.Popen(
            [sys.executable, "-c", HELPER_ENTRY],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="rbench-tracker-reader", daemon=True)
        self._reader.start()
        reason = vanish_reason or (
            f"the process running this run (pid {os.getpid()}) exited "
            "before ending it: killed (e.g. out of memory) or crashed"
        )
        self._send(
            "init",
            {
                "cfg": cfg.to_dict(),
                "run_dir": str(run_dir),
                "run_id": run_id,
                "parent_run_id": parent_run_id,
                "tags": dict(tags or {}),
                "record_id": record_id,
                "owns_run": owns_run,
                "vanish_status": vanish_status,
                "vanish_reason": reason,
                "argv": sys.argv,
                "parent_pid": os.getpid(),
            },
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def run_id(self) -> str | None:
        """The run's id; waits for the helper to create the run if it has not answered yet."""
        if self._run_id is None and self._started and not self._dead:
            self._drain(block=True)
        return self._run_id

    # -- transport -----------------------------------------------------------------------------
    def _read(self) -> None:
        for line in self._proc.stdout:  # blocks on I/O: holds no GIL meanwhile
            self._answers.put(json.loads(line))
        self._answers.put(None)  # EOF: the helper is gone

    def _gone(self) -> TrackingError:
        self._dead = True
        return TrackingError(f"MLflow ({self.uri}): the tracking process has exited")

    def _send(self, op: str, args: dict[str, Any]) -> None:
        self._drain(block=False)
        if self._dead:
            raise self._gone()
        self._next_id += 1
        try:
            self._proc.stdin.write(json.dumps({"id": self._next_id, "op": op, "args": args}) + "\n")
        except (BrokenPipeError, OSError, ValueError):
            raise self._gone() from None
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
                raise TrackingError(
                    f"MLflow ({self.uri}): the tracking process exited (code {self._proc.wait()})"
                )
            self._outstanding -= 1
            if not answer["ok"]:
                raise TrackingError(answer["error"])
            if answer.get("run_id"):
                self._run_id = answer["run_id"]

    # -- the Tracker interface -----------------------------------------------------------------
    def wait(self) -> None:
        """Until every request sent so far has been answered (raises the first failure)."""
        self._drain(block=True)

    def start(self) -> None:
        """Returns at once: the helper creates (or reopens) the run while training sets up. A
        failure is raised by the next call; `run_id` waits for the answer."""
        self._send("start", {})
        self._started = True

    def log_metrics(self, step: int, metrics: dict[str, float], prefix: str = T.TRAIN_PREFIX) -> None:
        self._send(
            "log_metrics",
            {
                "step": int(step),
                "prefix": prefix,
                "ts": int(time.time() * 1000),
                "metrics": {k: float(v) for k, v in metrics.items()},
            },
        )

    def log_params(self, params: dict[str, Any]) -> None:
        self._send("log_params", {"params": {k: str(v) for k, v in params.items()}})

    def log_artifacts(self, files: dict[str, Any]) -> None:
        self._send("log_artifacts", {"files": files})

    def log_file(self, path, artifact_dir: str | None = None) -> None:
        self._send("log_file", {"path": str(path), "artifact_dir": artifact_dir})

    def set_tags(self, tags: dict[str, str]) -> None:
        self._send("set_tags", {"tags": {k: str(v) for k, v in tags.items()}})

    def finish(self, outcome) -> None:
        self._send("finish", Outcome.of(outcome).to_dict())
        self._drain(block=True)

    def close(self) -> None:
        """Flush and stop the helper (it ends nothing: `finish` does)."""
        if self._proc.poll() is None:
            try:
                self._send("close", {})
                self._drain(block=True)
            except TrackingError:
                pass
            try:
                self._proc.stdin.close()  # EOF after "close": a clean exit
            except OSError:
                pass
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# The helper


def _watch(parent_pid: int, inbox: queue.Queue) -> None:
    """Requests from stdin into `inbox`; None once the parent is gone (EOF, or re-parented:
    a pipe can outlive its writer when another process inherited it)."""

    def read() -> None:
        for line in sys.stdin:
            inbox.put(json.loads(line))
        inbox.put(None)

    threading.Thread(target=read, daemon=True).start()
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    time.sleep(2 * PARENT_POLL_S)  # let the reader take in what the parent wrote last
    inbox.put(None)


def main() -> int:
    from types import SimpleNamespace

    from harness.config import ExperimentConfig
    from harness.tracking.inprocess import MlflowTracker, end_run

    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints go to stderr, not the channel
    try:
        os.nice(int(os.environ.get("RBENCH_TRACKER_NICE", "10")))
    except (AttributeError, OSError, ValueError):
        pass
    inbox: queue.Queue = queue.Queue()

    def reply(answer: dict[str, Any]) -> None:
        # The parent may be gone (that is what the helper is for): its requests still count.
        try:
            channel.write(json.dumps(answer) + "\n")
        except (BrokenPipeError, OSError, ValueError):
            pass

    first = json.loads(sys.stdin.readline() or "null")
    if not first or first.get("op") != "init":
        return 2
    init = SimpleNamespace(**first["args"])
    threading.Thread(target=_watch, args=(init.parent_pid, inbox), daemon=True).start()
    sys.argv = list(init.argv)  # provenance records the user's command
    answer: dict[str, Any] = {"id": first["id"], "ok": True}
    try:
        tracker = MlflowTracker(
            ExperimentConfig.model_validate(init.cfg),
            run_dir=Path(init.run_dir),
            run_id=init.run_id,
            parent_run_id=init.parent_run_id,
            tags=init.tags,
            record_id=init.record_id,
        )
    except Exception as e:  # noqa: BLE001
        answer = {"id": first["id"], "ok": False, "error": f"{type(e).__name__}: {e}"[:500]}
        tracker = None
    reply(answer)
    if tracker is None:
        return 1

    pending: list = []  # metric records not yet written
    last_flush = time.monotonic()
    flush_s = float(os.environ.get("RBENCH_TRACKER_FLUSH_S", "2"))
    started = ended = closed = False

    def flush() -> None:
        nonlocal pending, last_flush
        records, pending, last_flush = pending, [], time.monotonic()
        if records:
            tracker.log_metric_records(records)

    while True:
        try:
            msg = inbox.get(timeout=max(0.05, flush_s - (time.monotonic() - last_flush)))
        except queue.Empty:
            if pending:
                try:
                    flush()
                except Exception as e:  # noqa: BLE001 - reported with the next answer
                    print(f"rbench tracker: {e}", file=sys.stderr)
            last_flush = time.monotonic()
            continue
        if msg is None:
            break
        op, args = msg["op"], msg["args"]
        answer = {"id": msg["id"], "ok": True}
        try:
            if op == "log_metrics":
                pending.append((args["step"], args["metrics"], args["prefix"], args["ts"]))
                if time.monotonic() - last_flush >= flush_s:
                    flush()
                reply(answer)
                continue
            flush()
            if op == "start":
                answer["run_id"] = tracker.start()
                started = True
            elif op == "log_params":
                tracker.log_params(args["params"])
            elif op == "log_artifacts":
                tracker.log_artifacts(args["files"])
            elif op == "log_file":
                tracker.log_file(args["path"], args["artifact_dir"])
            elif op == "set_tags":
                tracker.set_tags(args["tags"])
            elif op == "finish":
                tracker.finish(Outcome(**args))
                ended = True
            elif op == "close":
                closed = True
            else:
                raise ValueError(f"unknown request {op!r}")
        except Exception as e:  # noqa: BLE001 - every failure goes back to the parent, one line
            text = (
                str(e) if isinstance(e, TrackingError) else f"MLflow ({tracker.uri}): {type(e).__name__}: {e}"
            )
            answer = {"id": msg["id"], "ok": False, "error": (text.strip().splitlines() or [""])[0][:500]}
        reply(answer)

    # The parent is gone. Write what it logged; end its run if it died without doing so.
    if not started or tracker.run_id is None:
        return 0
    try:
        flush()
        if init.owns_run and not ended and not closed:
            from harness.tracking.store import client

            c = client(tracker.uri)
            if c.get_run(tracker.run_id).info.status == "RUNNING":
                end_run(c, tracker.run_id, Outcome(init.vanish_status, init.vanish_reason))
    except Exception as e:  # noqa: BLE001 - nobody is left to tell but stderr
        print(f"rbench tracker: could not close run {tracker.run_id}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
