"""`rbench ui [--optuna] [--port N] [--host H] [--uri URI]`: browse the runs.

Starts the MLflow UI on the runs folder's store (`sqlite:///<runs-dir>/mlflow.db`, or `--uri`),
light: one worker and no job-execution workers (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false). Every
experiment in the store is tagged as a training experiment first, so the UI opens on its runs
table. With `--optuna`, an optuna-dashboard per sweep study storage (`<runs-dir>/sweeps/*/`) on
the next ports. Servers bind 127.0.0.1 unless `--host` says otherwise. Prints the URLs; Ctrl-C
stops everything (exit 0); so does SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harness.errors import UserError

START_TIMEOUT_S = 120.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ui",
        help="the MLflow UI (and optuna-dashboard) on the runs",
        description="Serve the MLflow UI on the runs folder's tracking store and, "
        "with --optuna, optuna-dashboard on the sweeps' studies. "
        "Ctrl-C stops them.",
    )
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="the runs folder (default: runs)")
    p.add_argument(
        "--uri",
        default=None,
        help="tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///<runs-dir>/mlflow.db)",
    )
    p.add_argument("--port", type=int, default=5000, help="MLflow UI port (default 5000)")
    p.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument(
        "--optuna",
        action="store_true",
        help="also serve optuna-dashboard on each sweep's study (ports after --port)",
    )
    p.set_defaults(func=main)


def mlflow_command(uri: str, runs_dir: Path, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--artifacts-destination",
        (runs_dir.resolve() / "mlartifacts").as_uri(),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def study_storages(runs_dir: Path) -> list[str]:
    """The Optuna storages of the sweeps under runs_dir (one per sweep unless they share one)."""
    out: list[str] = []
    for state in sorted((runs_dir / "sweeps").glob("*/sweep.json")):
        try:
            url = json.loads(state.read_text())["storage"]
        except (OSError, ValueError, KeyError):
            continue
        if url not in out:
            out.append(url)
    return out


def tag_experiments(uri: str, runs_dir: Path) -> None:
    """The default experiment exists, and every experiment carries the training kind tag."""
    from harness.tracking import client, ensure_experiment

    ensure_experiment(uri, "rbench", (runs_dir.resolve() / "mlartifacts").as_uri())
    for exp in client(uri).search_experiments():
        ensure_experiment(uri, exp.name)


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(
                f"{url}: the server exited (code {proc.returncode}) before answering; is the port in use?"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise UserError(f"{url}: no answer within {timeout:.0f} s")


def _check_free(host: str, port: int) -> None:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise UserError(
                f"--port: {host}:{port} is not free ({e.strerror}); pick another with --port"
            ) from None


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGINT each server's process group (its workers too: what Ctrl-C does in a terminal),
    then SIGKILL what is left after 10 s."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group: workers a server left behind
        except (ProcessLookupError, PermissionError):
            pass
        p.wait()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    from harness.tracking import default_uri

    # Ctrl-C and SIGTERM both stop the servers cleanly (a shell starting this in the background
    # leaves SIGINT ignored: take it back).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)

    if not 0 < args.port < 65536:
        raise UserError(f"--port: expected a port number, got {args.port}")
    runs_dir = args.runs_dir
    uri = args.uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(runs_dir)
    if uri.startswith("sqlite:///"):
        runs_dir.mkdir(parents=True, exist_ok=True)
    storages = study_storages(runs_dir) if args.optuna else []
    if args.optuna and not storages:
        raise UserError(f"--optuna: no sweep under {runs_dir}/sweeps (run `rbench sweep SPEC` first)")
    for port in range(args.port, args.port + 1 + len(storages)):
        _check_free(args.host, port)  # before touching the store
    tag_experiments(uri, runs_dir)

    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
    }
    servers = [("MLflow", mlflow_command(uri, runs_dir, args.host, args.port), args.port)]
    for i, storage in enumerate(storages, start=1):
        servers.append(
            (
                f"Optuna ({storage})",
                [
                    sys.executable,
                    "-c",
                    "from optuna_dashboard._cli import main; main()",
                    storage,
                    "--host",
                    args.host,
                    "--port",
                    str(args.port + i),
                    "--quiet",
                ],
                args.port + i,
            )
        )
    procs: list[subprocess.Popen] = []
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    try:
        for _, cmd, _ in servers:
            # Their own logs go to stderr: stdout carries only the URLs.
            procs.append(subprocess.Popen(cmd, env=env, stdout=sys.stderr.fileno(), start_new_session=True))
        for (name, _, port), proc in zip(servers, procs):
            url = f"http://{shown}:{port}/"
            wait_until_up(url, proc)
            print(f"{name}: {url}", flush=True)
        print("Ctrl-C stops the servers.", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        dead = next(p for p in procs if p.poll() is not None)
        raise UserError(f"a server exited (code {dead.returncode}): {' '.join(dead.args[:4])}")
    except KeyboardInterrupt:
        return 0
    finally:
        stop(procs)
