"""Which kind of recursion a gain comes from: the outer loop or the inner one.

rbench gives every architecture the OUTER loop: deep supervision, the carried state refined over
`halt_max_steps` supervision segments. The INNER loop is an architecture's own recursion inside
one segment (TRM's T and n, HRM's cycles, the looped transformer's loops). The ARC Prize analysis
of HRM found the outer loop drives most of its gain, so a study must separate the two. On one task
the report climbs a ladder of configurations:

    direct      a transformer with one segment (halt_max_steps = 1): no recursion at all
    outer loop  a transformer of the same size with segments > 1: the outer loop only
    inner loop  the best recursive architecture (its inner loop on top of the outer one)

and, beside it, the other way to spend a budget:

    parameters  the best larger transformer (more parameters; its gain is measured against the
                same-size rung with its own segment count)

Each rung's gain over the rung below is the difference of their mean exact accuracies, with a 95%
interval from the paired bootstrap replicates (reports.intervals draws ONE puzzle sample per task
for every configuration, so a replicate's difference is a difference on the same puzzles). The
headline compares the best recursive configuration with the best transformer of any size or
segment count the same way. Every comparison states whether the training FLOPs were equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.intervals import percentile_interval

FLOPS_TOLERANCE = 0.05  # budgets within 5% count as "equal training FLOPs"


@dataclass
class Rung:
    stage: str  # "direct" | "outer loop" | "inner loop" | "parameters"
    what: str  # what this rung adds, in words
    label: str  # the configuration
    index: int  # its row in TaskAnalysis.configs / column of TaskAnalysis.draws
    accuracy: float
    low: float
    high: float
    num_parameters: float
    train_flops: float
    per_seed: str
    versus: str | None = None  # the stage its gain is measured against
    gain: float = math.nan
    gain_low: float = math.nan
    gain_high: float = math.nan

    @property
    def resolved(self) -> bool:
        """The gain's interval excludes 0."""
        return self.gain_low > 0 or self.gain_high < 0


@dataclass
class Comparison:
    """Best recursive configuration vs best transformer: the headline figure."""

    recursive: Rung
    transformer: Rung
    gain: float
    gain_low: float
    gain_high: float
    equal_flops: bool

    @property
    def resolved(self) -> bool:
        return self.gain_low > 0 or self.gain_high < 0

    @property
    def verdict(self) -> str:
        if not self.resolved:
            return "not resolved: the interval contains 0"
        return "recursion wins" if self.gain > 0 else "the transformer wins"


def segments(cf: pd.DataFrame) -> np.ndarray:
    """Each configuration's supervision segments (the outer loop); NaN where unknown."""
    if "segments" not in cf:
        return np.full(len(cf), np.nan)
    return pd.to_numeric(cf["segments"], errors="coerce").to_numpy(float)


def _rung(cf: pd.DataFrame, i: int, stage: str, what: str) -> Rung:
    r = cf.iloc[i]
    return Rung(
        stage=stage,
        what=what,
        label=str(r["label"]),
        index=int(i),
        accuracy=float(r["accuracy"]),
        low=float(r["low"]),
        high=float(r["high"]),
        num_parameters=float(r["num_parameters"]),
        train_flops=float(r["train_flops"]),
        per_seed=str(r.get("per_seed", "")),
    )


def _gain(draws: np.ndarray, cf: pd.DataFrame, i: int, j: int) -> tuple[float, float, float]:
    """Mean accuracy of configuration i minus j, and the 95% interval of the paired difference."""
    d = draws[:, i] - draws[:, j]
    lo, hi = percentile_interval(d[:, None])
    return float(cf["accuracy"].iloc[i] - cf["accuracy"].iloc[j]), float(lo[0]), float(hi[0])


def _best(cf: pd.DataFrame, mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    if not len(idx):
        return None
    return int(idx[np.argmax(cf["accuracy"].to_numpy(float)[idx])])


def equal_flops(*rungs: Rung) -> bool:
    f = [r.train_flops for r in rungs if math.isfinite(r.train_flops)]
    return len(f) == len(rungs) and max(f) <= (1 + FLOPS_TOLERANCE) * min(f)


def ladder(cf: pd.DataFrame, draws: np.ndarray) -> list[Rung]:
    """The rungs present on this task (any may be missing), each with its gain over the one below."""
    if cf.empty:
        return []
    kind = cf["kind"].to_numpy()
    seg = segments(cf)
    N = cf["num_parameters"].to_numpy(float)
    tf, rec = kind == "transformer", kind == "recursive"
    inner = _best(cf, rec)
    # "The same size" as the recursive models: the transformer size closest to theirs (in log).
    ref = float(np.median(N[rec])) if rec.any() else (float(N[tf].min()) if tf.any() else math.nan)
    sizes = np.unique(N[tf])
    base = sizes[np.argmin(np.abs(np.log(sizes) - math.log(ref)))] if len(sizes) else math.nan
    same = tf & (N == base)
    direct = _best(cf, same & (seg == 1))
    outer = _best(cf, same & (seg > 1))
    rungs: list[Rung] = []
    if direct is not None:
        rungs.append(_rung(cf, direct, "direct", "no recursion: one segment"))
    if outer is not None:
        rungs.append(_rung(cf, outer, "outer loop", "deep supervision over segments, same weights"))
    if inner is not None:
        rungs.append(_rung(cf, inner, "inner loop", "the architecture's own recursion per segment"))
    for below, r in zip(rungs, rungs[1:]):
        r.versus = below.stage
        r.gain, r.gain_low, r.gain_high = _gain(draws, cf, r.index, below.index)
    bigger = _best(cf, tf & (N > 1.5 * base)) if math.isfinite(base) else None
    if bigger is not None:
        # measured against the same-size transformer with the same outer loop (segments)
        r = _rung(cf, bigger, "parameters", "more parameters instead of recursion")
        anchor = direct if seg[bigger] == 1 else outer
        if anchor is not None:
            r.versus = "direct" if anchor == direct else "outer loop"
            r.gain, r.gain_low, r.gain_high = _gain(draws, cf, bigger, anchor)
        rungs.append(r)
    return rungs


def comparison(cf: pd.DataFrame, draws: np.ndarray) -> Comparison | None:
    """Best recursive configuration vs best transformer (any size, any segments)."""
    if cf.empty:
        return None
    kind = cf["kind"].to_numpy()
    i, j = _best(cf, kind == "recursive"), _best(cf, kind == "transformer")
    if i is None or j is None:
        return None
    r, t = _rung(cf, i, "recursive", ""), _rung(cf, j, "transformer", "")
    g, lo, hi = _gain(draws, cf, i, j)
    return Comparison(r, t, g, lo, hi, equal_flops(r, t))


def _pts(v: float) -> str:
    return f"{100 * v:+.1f}" if math.isfinite(v) else "n/a"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%" if math.isfinite(v) else "n/a"


def describe_comparison(c: Comparison) -> str:
    """One plain sentence for the console and the Markdown summary."""
    flops = "equal training FLOPs" if c.equal_flops else "UNEQUAL training FLOPs"
    return (
        f"best recursive {c.recursive.label} {_pct(c.recursive.accuracy)} "
        f"[{_pct(c.recursive.low)}, {_pct(c.recursive.high)}] (seeds: {c.recursive.per_seed}) vs best "
        f"transformer {c.transformer.label} {_pct(c.transformer.accuracy)} "
        f"[{_pct(c.transformer.low)}, {_pct(c.transformer.high)}] (seeds: {c.transformer.per_seed}) "
        f"at {flops}: difference {_pts(c.gain)} points [{_pts(c.gain_low)}, {_pts(c.gain_high)}]; "
        f"{c.verdict}."
    )


def describe_ladder(rungs: list[Rung]) -> str:
    """Where the gain comes from, in one sentence per rung."""
    out = []
    for r in rungs:
        s = f"{r.stage} ({r.label}): {_pct(r.accuracy)} [{_pct(r.low)}, {_pct(r.high)}]"
        if r.versus is not None:
            sign = "resolved" if r.resolved else "not resolved"
            s += f", {_pts(r.gain)} points vs {r.versus} [{_pts(r.gain_low)}, {_pts(r.gain_high)}] ({sign})"
        out.append(s)
    if rungs and not equal_flops(*rungs):
        out.append("note: these configurations did NOT train for equal FLOPs")
    return "; ".join(out)
