"""Per-example exact correctness of every evaluation, stored compactly beside a run.

One file per run, `<run_dir>/eval/correctness.npz`, rewritten (atomically) after each evaluation:

    steps                 [E] int64        the optimizer step of each evaluation
    <split>_correct       [E, ceil(N/8)]   uint8, np.packbits of the [E, N] exact-correct bits
    <split>_n             ()               N, the number of examples evaluated
    <split>_puzzle_ids    [N] int64        the group id (original puzzle) of each example

for split in "test" and, when `train.val_examples` is set, "val". The report's two-level bootstrap
resamples seeds and these puzzle ids. Written by the engine on rank 0; read by reports/.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

RELPATH = Path("eval") / "correctness.npz"


def path_in(run_dir: Path) -> Path:
    return Path(run_dir) / RELPATH


def record(run_dir: Path, step: int, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Append one evaluation: `splits` maps split -> (correct [N] bool, puzzle_ids [N]).
    Evaluations at or after `step` already in the file (left by a run that was resumed from an
    earlier checkpoint) are replaced."""
    path = path_in(run_dir)
    old = read(path) if path.is_file() else {}
    keep = old["steps"] < step if old else np.zeros(0, bool)
    out: dict[str, np.ndarray] = {
        "steps": np.append(old["steps"][keep] if old else np.zeros(0, np.int64), step).astype(np.int64)
    }
    for split, (correct, ids) in splits.items():
        correct = np.asarray(correct, bool).reshape(1, -1)
        if old and split in old["splits"] and old["splits"][split][0].shape[1] == correct.shape[1]:
            correct = np.concatenate([old["splits"][split][0][keep], correct])
        elif len(out["steps"]) != 1:  # a split that appeared mid-run: earlier rows unknown
            out["steps"] = out["steps"][-1:]
        out[f"{split}_correct"] = np.packbits(correct, axis=1)
        out[f"{split}_n"] = np.array(correct.shape[1])
        out[f"{split}_puzzle_ids"] = np.asarray(ids, np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    return path


def read(path: Path) -> dict:
    """-> {"steps": [E], "splits": {split: (correct [E, N] bool, puzzle_ids [N])}}."""
    with np.load(path, allow_pickle=False) as z:
        splits = {}
        for key in z.files:
            if key.endswith("_correct"):
                s = key[: -len("_correct")]
                n = int(z[f"{s}_n"])
                bits = np.unpackbits(z[key], axis=1, count=n).astype(bool)
                splits[s] = (bits, z[f"{s}_puzzle_ids"])
        steps = z["steps"]
    for s, (bits, _) in splits.items():  # a split that appeared mid-run covers the last rows
        if len(bits) != len(steps):
            raise ValueError(f"{path}: {s} has {len(bits)} evaluations, steps has {len(steps)}")
    return {"steps": steps, "splits": splits}


def upload(tracker, run_dir: Path) -> None:
    """Log the run's correctness file (if it has one) on `tracker`'s run, under eval/."""
    path = path_in(run_dir)
    if path.is_file():
        tracker.log_file(path, RELPATH.parent.as_posix())
