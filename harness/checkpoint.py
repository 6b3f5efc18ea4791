"""Checkpoint directories: layout, completeness, discovery and pruning.

A checkpoint is a directory `checkpoints/step_%08d/` holding
  ds/                 DeepSpeed's model, optimizer and scheduler states (sharded per rank for ZeRO)
  carry_rank{r}.pt    the deep-supervision carry of rank r (latents, steps, halted, current data)
  ema.pt              EMA weights, when train.ema_decay is set
  state.json          written LAST by rank 0 once every rank has finished: the completeness marker
A directory without state.json is an interrupted save and is never resumed from.

Checkpoints never run code: DeepSpeed loads its files with `torch.load(..., weights_only=False)`,
which executes whatever a pickle asks for, so before a resume every `*.pt` file of the folder must
pass a `weights_only=True` load (`verify_safe`); a file that does not is refused by name.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from harness.errors import UserError

DS_TAG = "ds"
STATE_FILE = "state.json"


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}"


def is_complete(path: Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


def latest(run_dir: Path) -> Path | None:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    done = sorted(p for p in root.iterdir() if p.name.startswith("step_") and is_complete(p))
    return done[-1] if done else None


def write_state(path: Path, state: dict) -> None:
    tmp = Path(path) / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, Path(path) / STATE_FILE)


def read_state(path: Path) -> dict:
    return json.loads((Path(path) / STATE_FILE).read_text())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({k: v.detach().cpu() for k, v in tensors.items()}, tmp)
    os.replace(tmp, path)


def load_tensors(path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}


def _deepspeed_data_classes() -> list:
    """The plain-data classes DeepSpeed pickles into its ZeRO optimizer states (an int enum, a
    dataclass, the loss scaler's attribute bag). Allowing them lets `weights_only=True` rebuild
    them; it still refuses every other global, which is what a code-running payload needs."""
    classes = []
    for module, name in (
        ("deepspeed.runtime.fp16.loss_scaler", "LossScaler"),
        ("deepspeed.runtime.zero.config", "ZeroStageEnum"),
        ("deepspeed.utils.tensor_fragment", "fragment_address"),
    ):
        try:
            classes.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return classes


def verify_safe(path: Path) -> None:
    """Load every `*.pt` file under checkpoint folder `path` with `weights_only=True`; raise a
    one-line UserError naming the first file that holds anything else (it could run code)."""
    files = sorted(Path(path).rglob("*.pt"))
    with torch.serialization.safe_globals(_deepspeed_data_classes()):
        for f in files:
            try:
                torch.load(f, map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001 - any failure means "not plain tensors"
                try:
                    found = torch.serialization.get_unsafe_globals_in_checkpoint(f)
                except Exception:  # noqa: BLE001 - not even a torch zip file
                    found = []
                what = (
                    f"it references {', '.join(found)}"
                    if found
                    else f"it is not a plain torch tensor file ({type(err).__name__})"
                )
                raise UserError(
                    f"{f}: refusing to load this checkpoint file: {what}; only tensors "
                    "and plain data are loaded, since a pickled object can run code"
                ) from None


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints (and any stale incomplete ones)."""
    root = Path(run_dir) / "checkpoints"
    if keep <= 0 or not root.is_dir():
        return
    dirs = sorted(p for p in root.iterdir() if p.name.startswith("step_"))
    complete = [p for p in dirs if is_complete(p)]
    newest = complete[-1] if complete else None
    for p in complete[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    for p in dirs:
        if not is_complete(p) and newest is not None and p.name < newest.name:
            shutil.rmtree(p, ignore_errors=True)
