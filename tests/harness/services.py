"""Real services for the cluster test (a plain module, not a test file), each on 127.0.0.1 on a
free port, started in its own temp folder and torn down by the process ids it started:

- PostgreSQL: a throwaway database cluster (`initdb` + `pg_ctl`, not the system service), one
  login role with a random password (scram-sha-256 over TCP), databases `optuna` and `mlflow`.
  As root the server runs as the `postgres` user (initdb refuses root).
- an MLflow tracking server backed by that PostgreSQL, with a local artifact root; the database
  password reaches it only through its environment (PGPASSWORD, read by libpq).
- a Ray cluster: `ray start --head` and `ray start --address HEAD` as separate node processes.

`ray stop` would stop every Ray on the host: instead each `ray start` runs in its own session,
and teardown signals exactly the processes of that session (read from /proc).
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PG_USER = "rbench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir() -> Path | None:
    """Where initdb / pg_ctl live: the Debian layout (/usr/lib/postgresql/N/bin), else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def _wait(what: str, ready, timeout: float, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ready():
            return
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log and log.is_file() else ""
    raise RuntimeError(f"{what} did not come up in {timeout:.0f}s\n{tail}")


class Postgres:
    def __init__(self):
        self.bindir = pg_bindir()
        if self.bindir is None:
            raise FileNotFoundError("no initdb: install PostgreSQL (Debian: apt-get install postgresql)")
        self.password = secrets.token_urlsafe(18)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="rbench-pg-"))
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")

    def url(self, db: str, *, password: bool) -> str:
        auth = f"{PG_USER}:{self.password}" if password else PG_USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as, *cmd], check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> Postgres:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as:
            shutil.chown(pwfile, "postgres", "postgres")
        data, log = self.root / "data", self.root / "server.log"
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(data), "-U", PG_USER, "--pwfile", str(pwfile),
            "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        opts = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root}"
        opts += " -c fsync=off"  # a throwaway database
        self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start")
        self.data = data
        for db in ("optuna", "mlflow"):
            subprocess.run(
                [
                    str(self.bindir / "psql"),
                    self.url("postgres", password=False),
                    "-c",
                    f"CREATE DATABASE {db}",
                ],
                check=True,
                capture_output=True,
                env={**os.environ, "PGPASSWORD": self.password},
                timeout=60,
            )
        return self

    def stop(self) -> None:
        if getattr(self, "data", None) is not None:
            subprocess.run(
                [*self._as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)


class MlflowServer:
    def __init__(self, backend_uri: str, artifacts: Path, env: dict[str, str], log: Path):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--backend-store-uri", backend_uri,
            "--default-artifact-root", artifacts.as_uri(), "--no-serve-artifacts",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        self._out = open(log, "w")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait(self, timeout: float = 180) -> MlflowServer:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError("mlflow server exited:\n" + self.log.read_text()[-3000:])
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        _wait("mlflow server", up, timeout, self.log)
        return self

    def stop(self) -> None:
        _kill_session(self.proc.pid)
        self.proc.wait(timeout=30)
        self._out.close()


def _session_pids(sid: int) -> list[int]:
    """Processes whose session id is `sid` (field 6 of /proc/PID/stat)."""
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            out.append(int(stat.split("/")[2]))
    return out


def _kill_session(sid: int) -> None:
    """SIGTERM the session's processes, SIGKILL what is left after a few seconds (throwaway
    services: nothing to flush)."""
    for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):
        pids = _session_pids(sid)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while pids and time.time() < deadline:
            time.sleep(0.2)
            pids = _session_pids(sid)
        if not pids:
            return


class RayNode:
    """One `ray start` node (its processes in a session of their own)."""

    def __init__(self, args: list[str], env: dict[str, str], temp_dir: Path, log: Path):
        ports = {
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
        }
        cmd = [str(Path(sys.executable).parent / "ray"), "start", *args, "--node-ip-address", "127.0.0.1"]
        cmd += ["--temp-dir", str(temp_dir), "--disable-usage-stats", "--num-cpus", "1"]
        for k, v in ports.items():
            cmd += [k, str(v)]
        with open(log, "a") as out:
            p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            self.sid = p.pid
            if p.wait(timeout=240) != 0:
                _kill_session(self.sid)
                raise RuntimeError(f"{' '.join(cmd)} failed:\n" + log.read_text()[-3000:])

    def stop(self) -> None:
        _kill_session(self.sid)


def ray_auth_env() -> dict[str, str]:
    """Ray 2.60's token authentication (on by default for `ray start`): one random token that the
    nodes and the driver get from their environment, as on a real cluster."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


class RayCluster:
    """A head and one worker node, 1 CPU each; the head offers `driver_slot` (trial drivers).
    `env` must hold the auth token (ray_auth_env) for both nodes and every driver."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = env
        # short: Ray's unix socket paths must fit ~107 bytes
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rbr-"))
        self.nodes: list[RayNode] = []
        head = ["--head", "--port", str(self.port), "--include-dashboard", "false"]
        head += ["--dashboard-port", str(free_port()), "--resources", json.dumps({"driver_slot": 8})]
        try:
            self.nodes.append(RayNode(head, env, self.temp_dir, log))
            self.nodes.append(RayNode(["--address", self.address], env, self.temp_dir, log))
        except BaseException:
            self.stop()
            raise

    def wait_for_nodes(self, n: int = 2, timeout: float = 120) -> None:
        code = (
            f"import ray; ray.init(address={self.address!r}, logging_level='ERROR');"
            "print(sum(1 for x in ray.nodes() if x['Alive']))"
        )

        def up() -> bool:
            r = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=self.env
            )
            return r.returncode == 0 and r.stdout.strip().splitlines()[-1:] == [str(n)]

        _wait(f"{n} Ray nodes", up, timeout)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
