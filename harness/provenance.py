"""What makes a run reproducible besides its config: code version and package versions."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "deepspeed", "ray", "mlflow", "optuna", "numpy", "pandas", "pydantic", "pyyaml")


def git_info(root: Path = REPO_ROOT) -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit != "unknown" else False
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def provenance() -> dict[str, object]:
    return {
        **git_info(),
        "packages": package_versions(),
        "platform": platform.platform(),
        "argv": " ".join(sys.argv),
    }


def write_provenance(run_dir: Path) -> Path:
    """`<run_dir>/provenance.json` for this process (the engine writes it for every run)."""
    path = Path(run_dir) / "provenance.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(provenance(), indent=2))
    os.replace(tmp, path)
    return path
