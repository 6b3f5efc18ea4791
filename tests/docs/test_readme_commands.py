"""The README's commands work as pasted: every `rbench run ...` line in its code blocks names a
file in the repo and passes the checks `rbench run` makes before any work (schema, data, device,
sizing), and every `make` target it shows exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from harness.commands.run import load_and_check

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(?:bash|sh)\n(.*?)```", README, flags=re.S)
LINES = [ln.split("#", 1)[0].strip() for b in BLOCKS for ln in b.splitlines()]


def run_lines() -> list[list[str]]:
    return [shlex.split(ln)[2:] for ln in LINES if ln.startswith("rbench run ")]


def test_the_readme_shows_a_single_run_command():
    assert run_lines(), "README: no `rbench run FILE ...` command in a bash block"


@pytest.mark.parametrize("args", run_lines(), ids=lambda a: " ".join(a))
def test_readme_run_command_passes_the_checks_before_work(args, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    path, overrides = args[0], [a for a in args[1:] if "=" in a and not a.startswith("-")]
    assert (ROOT / path).is_file(), path
    cfg = load_and_check(path, overrides + [f"runs_dir={tmp_path}"])
    assert cfg.train.flops_budget or cfg.train.steps


def test_readme_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set()
    for ln in LINES:
        for cmd in re.split(r"&&|\|\||;", ln):
            words = cmd.split()
            if words[:1] == ["make"]:
                targets |= {w for w in words[1:] if "=" not in w and not w.startswith("-")}
    assert targets
    for t in targets:
        assert re.search(rf"^{re.escape(t)}:", makefile, flags=re.M), f"make {t}: no such target"
