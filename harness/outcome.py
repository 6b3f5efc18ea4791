"""What a training job or sweep trial produced: ONE typed object passed from the engine's caller
(harness.launch's worker loop, or a sweep trial) to the sweep's searcher, its Tune callback and
tracking.

It travels through Ray (Train reports, Tune results, the "final" marker checkpoint) inside a
result dict under one key, `OUTCOME_KEY`, as JSON; the same report also carries the objective
metrics flat, because Tune's searcher and schedulers read them by name. A report without the key
is an intermediate (checkpoint) report; `TrialOutcome.from_report` tells the two apart.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

OUTCOME_KEY = "rbench_outcome"


@dataclass
class TrialOutcome:
    status: Literal["finished", "failed"]
    step: int = 0  # last optimizer step (failed: where it stopped)
    metrics: dict[str, float] = field(default_factory=dict)  # final evaluation
    train: dict[str, float] = field(default_factory=dict)  # the last training log
    flops: float = 0.0  # cumulative training FLOPs (all workers)
    num_parameters: int | None = None
    effective_depth: int | None = None
    puzzle_embedding_entries: int | None = None  # the puzzle-embedding table (not in num_parameters)
    checkpoint: str | None = None  # the final model checkpoint
    resumed_from_step: float = 0.0  # 0: trained from scratch
    failure_reason: str | None = None  # one line (failed)
    user_error: bool = False  # failed by a user mistake (shown as one line)
    extra: dict[str, float] = field(default_factory=dict)  # caller's labels (trial_number)

    @property
    def ok(self) -> bool:
        return self.status == "finished"

    @property
    def checkpoint_dir(self) -> Path | None:
        return Path(self.checkpoint) if self.checkpoint else None

    @classmethod
    def failed(
        cls, reason: str, *, step: int = -1, user_error: bool = False, extra: dict[str, float] | None = None
    ) -> TrialOutcome:
        return cls(
            status="failed",
            step=step,
            failure_reason=reason[:2000],
            user_error=user_error,
            extra=dict(extra or {}),
        )

    # -- through Ray -------------------------------------------------------------------------
    def to_report(self) -> dict[str, Any]:
        """A Tune / Ray Train report: scheduler- and searcher-visible metrics flat, plus the
        whole outcome under OUTCOME_KEY."""
        flat: dict[str, Any] = {
            **self.extra,
            **{f"train_{k}": v for k, v in self.train.items()},
            "step": float(self.step),
            "resumed_from_step": self.resumed_from_step,
        }
        if self.ok:
            flat.update(self.metrics)
            flat.update({"flops": self.flops, "flops_cumulative": self.flops})
        flat[OUTCOME_KEY] = json.dumps(asdict(self))
        return flat

    @classmethod
    def from_report(cls, report: dict[str, Any] | None) -> TrialOutcome | None:
        """The outcome a report carries, or None for an intermediate report."""
        raw = (report or {}).get(OUTCOME_KEY)
        if not raw:
            return None
        return cls(**json.loads(raw))

    def with_checkpoint(self, path: str | None) -> TrialOutcome:
        data = asdict(self)
        data["checkpoint"] = path
        return TrialOutcome(**data)
