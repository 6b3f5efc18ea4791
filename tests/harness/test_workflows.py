"""The GitHub workflows parse as YAML, and every command their steps run exists in this repository
(make targets in the Makefile, rbench sub-commands and their options, suites, scripts)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from harness.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
# Tools of the runner image itself (not this repository's to provide).
SYSTEM = {"command", "apt-get", "cat", "tee", "true", "mkdir"}
# What the workflows' ${VAR} expand to when checked ($SUITE: each suite the nightly job may run).
ENV = {"SUITE": "nightly", "GITHUB_STEP_SUMMARY": "/tmp/summary.md"}


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text(), flags=re.M))


def simple_commands(script: str) -> list[list[str]]:
    """Split a step's shell script into simple commands (words), at newlines, ; && || | and
    braces; redirections dropped. Enough for the plain scripts a workflow should hold."""
    out = []
    for line in script.splitlines():
        for var, value in ENV.items():
            line = line.replace(f'"${var}"', value).replace(f"${var}", value)
        words = []
        for w in shlex.split(line, comments=True):
            words += [w[:-1], ";"] if len(w) > 1 and w.endswith(";") else [w]
        cmd: list[str] = []
        skip = False
        for w in [*words, ";"]:
            if skip:
                skip = False
            elif w in (";", "&&", "||", "|", "{", "}"):
                if cmd:
                    out.append(cmd)
                cmd = []
            elif w in (">", ">>", "2>", "<"):
                skip = True  # and its target
            elif not w.startswith((">", "2>")):
                cmd.append(w)
    return out


def check_command(words: list[str]) -> str | None:
    """None if the command exists here, else why not."""
    if words[0] == "sudo":
        words = [w for w in words[1:] if not w.startswith("-")]
    head = words[0]
    if head in SYSTEM:
        return None
    if head == "make":
        missing = [t for t in words[1:] if "=" not in t and t not in make_targets()]
        return f"make target(s) {missing} not in the Makefile" if missing else None
    via_shell = head in ("bash", "sh")
    if via_shell:
        words = words[1:]
        head = words[0]
    if head.endswith("/rbench") or head == "rbench":
        try:
            args = build_parser().parse_args(words[1:])
        except SystemExit:
            return f"`rbench {' '.join(words[1:])}` is not a valid rbench command line"
        suite = getattr(args, "suite", None)
        if suite is not None:
            from harness.benchsuite.spec import load_suite

            load_suite(suite)  # raises if the suite is not in benchmarks/suites/
        return None
    path = REPO / head
    if path.is_file():
        return None if via_shell or os.access(path, os.X_OK) else f"{head} is not executable"
    return f"{head}: no such command in the repository (and not a runner tool: {sorted(SYSTEM)})"


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


@pytest.mark.parametrize("name", ["ci.yml", "nightly.yml"])
def test_workflow_parses_and_every_command_exists(name):
    wf = workflow(name)
    assert wf["jobs"], name
    runs = [s["run"] for job in wf["jobs"].values() for s in job["steps"] if "run" in s]
    assert runs, f"{name} runs nothing"
    problems = [
        f"{cmd}: {why}"
        for script in runs
        for cmd in simple_commands(script)
        if (why := check_command(cmd)) is not None
    ]
    assert not problems, "\n".join(problems)


def test_triggers_and_nightly_steps():
    # PyYAML reads the bare key `on` as True (YAML 1.1)
    ci = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(ci[True])
    nightly = workflow("nightly.yml")
    assert nightly[True]["schedule"][0]["cron"]
    cmds = [c for s in nightly["jobs"]["bench"]["steps"] for c in simple_commands(s.get("run", ""))]
    assert [".venv/bin/rbench", "bench", "run", "--suite", "nightly"] in [c[:5] for c in cmds]
    compare = [c for c in cmds if c[1:3] == ["bench", "compare"]]
    assert compare and compare[0][3] == "benchmarks/baselines/nightly.json"
    uploads = [
        s
        for s in nightly["jobs"]["bench"]["steps"]
        if s.get("uses", "").startswith("actions/upload-artifact")
    ]
    assert uploads and uploads[0]["if"] == "always()"
    assert nightly["jobs"]["bench"]["env"]["SUITE"].endswith("'nightly' }}")


def test_the_checker_rejects_what_does_not_exist():
    assert check_command(["make", "no-such-target"])
    assert check_command([".venv/bin/rbench", "bench", "frobnicate"])
    assert check_command(["./scripts/missing.sh"])
    assert check_command(["curl", "http://example.com"])
    with pytest.raises(Exception, match="no suite"):
        check_command([".venv/bin/rbench", "bench", "run", "--suite", "nope", "--out", "x.json"])
    assert simple_commands('a x && b "$SUITE" | c > f 2>&1; { d; }') == [
        ["a", "x"],
        ["b", "nightly"],
        ["c"],
        ["d"],
    ]
