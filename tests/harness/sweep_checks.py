"""Checks shared by the sweep fault tests (a plain module, not a test file): what a checkpoint
folder holds, compared tensor by tensor, and the steps of a run's MLflow metric history."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from harness import checkpoint


def checkpoint_tensors(step_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint folder (DeepSpeed's module and optimizer states, the EMA, the
    carry), keyed `<file>:<path inside it>`; loaded with weights_only=True."""
    out: dict[str, torch.Tensor] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, torch.Tensor):
            out[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}/{i}", v)

    with torch.serialization.safe_globals(checkpoint._deepspeed_data_classes()):
        for f in sorted(Path(step_dir).rglob("*.pt")):
            walk(f"{f.relative_to(step_dir)}:", torch.load(f, map_location="cpu", weights_only=True))
    return out


def assert_same_checkpoint(got_dir: Path, want_dir: Path) -> None:
    """The two checkpoints hold the same tensors (module weights, EMA, optimizer state, carry)
    within float tolerance; each of module, EMA and optimizer state is present."""
    got, want = checkpoint_tensors(got_dir), checkpoint_tensors(want_dir)
    assert got.keys() == want.keys(), sorted(set(got) ^ set(want))
    # module weights; EMA; Adam's moments (in model_states.pt at ZeRO 0, optim_states.pt above)
    for part in ("model_states.pt:/module/", "ema.pt:", "/exp_avg_sq"):
        assert any(part in k for k in got), f"no {part!r} tensors in {got_dir}"
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=name)


def file_fingerprints(root: Path) -> dict[str, tuple[str, int]]:
    """relative path -> (sha256, mtime_ns) of every file under root."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def metric_steps(tracking_uri: str, run_id: str, key: str) -> list[int]:
    """The steps of every entry of one metric in an MLflow run's history, sorted."""
    from mlflow.tracking import MlflowClient

    return sorted(m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, key))
