"""Training progress for people: a bar on an interactive terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, start: int = 0, enabled: bool = True, stream=None):
        self.total, self.enabled = total, enabled
        self.stream = stream or sys.stderr
        self.t0, self.start = time.perf_counter(), start
        self.bar = None
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=start, file=self.stream, unit="step", dynamic_ncols=True, leave=True
            )

    def update(self, step: int, metrics: dict[str, float]) -> None:
        """Called at log steps with the 1-based number of finished steps."""
        if not self.enabled:
            return
        shown = {k: metrics[k] for k in ("loss", "exact_accuracy") if k in metrics}
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=True)
            return
        elapsed = time.perf_counter() - self.t0
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        parts = " ".join(f"{k}={v:.4g}" for k, v in shown.items())
        print(
            f"step {step}/{self.total} {parts} ({rate:.1f} steps/s, eta {eta:.0f}s)",
            file=self.stream,
            flush=True,
        )

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
