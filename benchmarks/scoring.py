"""Scoring predictions the papers' way.

Every task reports, over the rows given:
- exact_accuracy: fraction of rows whose every labelled token is right (the papers' headline for
  Sudoku / Maze / the small tasks);
- token_accuracy: fraction of labelled tokens that are right.
Families add their own (ARC: undo each augmentation, vote, pass@1/pass@2/pass@k per test input;
Maze: whether the predicted path is a valid shortest path even where it differs from the label).
"""

from __future__ import annotations

import numpy as np

from benchmarks.dataset import IGNORE_LABEL_ID, PuzzleDataset


def accuracy(labels: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    mask = labels != IGNORE_LABEL_ID
    right = (preds == labels) & mask
    n_tok = int(mask.sum())
    return {
        "exact_accuracy": float(np.mean(right.sum(1) == mask.sum(1))) if len(labels) else 0.0,
        "token_accuracy": float(right.sum() / n_tok) if n_tok else 0.0,
    }


def score(spec, dataset: PuzzleDataset, preds: np.ndarray, q_halt: np.ndarray) -> dict[str, float]:
    """Metrics of `preds` ([N, L] token ids) against `dataset`'s labels; q_halt [N] are the
    model's halting logits (ARC uses them to break voting ties)."""
    preds = np.asarray(preds)
    labels = np.asarray(dataset.labels)  # materialises compact (MappedRows) labels
    q_halt = np.asarray(q_halt, dtype=np.float64).reshape(-1)
    if preds.shape != labels.shape or q_halt.shape != (len(dataset),):
        raise ValueError(
            f"predictions {preds.shape} / q_halt {q_halt.shape} do not match the dataset {labels.shape}"
        )
    out = accuracy(labels, preds)
    out.update(spec.family.score(spec, dataset, preds, q_halt))
    return out
