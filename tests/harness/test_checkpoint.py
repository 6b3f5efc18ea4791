"""Checkpoints never run code: a checkpoint folder someone else wrote is data, not a program.

DeepSpeed 0.19 loads its files with `torch.load(..., weights_only=False)`, which executes whatever
a pickle asks for. rbench loads every `*.pt` file of the folder with `weights_only=True` first and
refuses, by name, a file that holds anything but tensors and plain data.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from harness import checkpoint
from harness.cli import main
from harness.engine import train
from harness.errors import UserError

from test_engine import make_cfg


class Payload:
    """Unpickling this runs `exec(code)`: the classic pickle attack."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


def plant(file, marker) -> None:
    """Rewrite `file` (a real DeepSpeed/rbench checkpoint file) with a payload that, when
    unpickled, creates `marker`; everything else in the file is kept."""
    state = torch.load(file, map_location="cpu", weights_only=False)
    if not isinstance(state, dict):
        state = {"value": state}
    state["note"] = Payload(f"open({str(marker)!r}, 'w').write('ran')")
    torch.save(state, file)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step ZeRO-1 run with EMA: its checkpoint has every kind of file rbench writes
    (module states, ZeRO optimizer states with DeepSpeed's own classes, carry, EMA)."""
    runs = tmp_path_factory.mktemp("ck") / "runs"
    runs.mkdir()
    cfg = make_cfg(runs, train__steps=2, train__ema_decay=0.9, engine__zero_stage=1)
    result = train(cfg, runs / "run", progress=False)
    return runs, result.checkpoint_dir


def copy_run(trained, tmp_path):
    runs, ck = trained
    run = tmp_path / "run"
    shutil.copytree(ck.parent.parent, run)
    return runs, run, checkpoint.step_dir(run, 2)


def test_real_checkpoints_pass_and_resume(trained, tmp_path):
    runs, run, ck = copy_run(trained, tmp_path)
    names = {p.name for p in ck.rglob("*.pt")}
    assert {
        "mp_rank_00_model_states.pt",
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "carry_rank0.pt",
        "ema.pt",
    } <= names, names
    checkpoint.verify_safe(ck)  # DeepSpeed's own files are plain data
    cfg = make_cfg(runs, train__steps=3, train__ema_decay=0.9, engine__zero_stage=1)
    assert train(cfg, run, resume_from=ck, progress=False).step == 3


@pytest.mark.parametrize(
    "planted",
    ["ds/mp_rank_00_model_states.pt", "ds/zero_pp_rank_0_mp_rank_00_optim_states.pt", "carry_rank0.pt"],
)
def test_planted_pickle_payload_is_refused_and_never_runs(trained, tmp_path, planted):
    runs, run, ck = copy_run(trained, tmp_path)
    marker = tmp_path / "payload-ran"
    plant(ck / planted, marker)
    # the planted file is live: an unguarded load (what DeepSpeed does) runs the payload
    live = tmp_path / "live.pt"
    shutil.copy(ck / planted, live)
    torch.load(live, map_location="cpu", weights_only=False)
    assert marker.exists(), "the payload should run under weights_only=False"
    marker.unlink()

    cfg = make_cfg(runs, train__steps=3, train__ema_decay=0.9, engine__zero_stage=1)
    with pytest.raises(UserError) as ei:
        train(cfg, run, resume_from=ck, progress=False)
    msg = str(ei.value)
    assert str(ck / planted) in msg and "builtins.exec" in msg and "\n" not in msg, msg
    assert not marker.exists(), "the payload ran"
    assert checkpoint.latest(run) == ck  # nothing was written over the refused checkpoint


def test_cli_resume_from_a_poisoned_checkpoint_is_one_line_exit_2(trained, tmp_path, capsys):
    runs, run, ck = copy_run(trained, tmp_path)
    marker = tmp_path / "payload-ran"
    plant(ck / "ds" / "mp_rank_00_model_states.pt", marker)
    exp = tmp_path / "exp.yaml"
    cfg = make_cfg(runs, train__steps=3, train__ema_decay=0.9, engine__zero_stage=1)
    exp.write_text(cfg.to_yaml())  # the experiment that trained `run`, as a file
    code = main(["run", str(exp), "--run-dir", str(run), "--resume", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "mp_rank_00_model_states.pt" in err, err
    assert not marker.exists()


def test_a_file_that_is_not_a_torch_file_is_refused_by_name(trained, tmp_path):
    _, _, ck = copy_run(trained, tmp_path)
    (ck / "ema.pt").write_bytes(b"not a zip file")
    with pytest.raises(UserError, match="ema.pt: refusing to load"):
        checkpoint.verify_safe(ck)
