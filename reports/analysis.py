"""Run table -> configurations with intervals -> fits: the numbers every figure and table shows.

A configuration is one (task, family, parameters, recursion) point; its seeds are the runs. For
each checkpoint choice ("final", and "best" = best on the validation split when the runs have one)
it gets the mean exact accuracy, the per-seed values and a 95% interval:

- "seeds x puzzles": the two-level bootstrap (reports.intervals) on per-example bits;
- "seeds only": when some run logged no bits, seeds are resampled alone (too narrow: it ignores
  puzzle sampling; labelled so);
- "binomial": one seed and no bits: Wilson on its eval_examples (labelled so); also when every
  seed got every puzzle right (or every one wrong), where the bootstrap would say 0-0%.

Fits (reports.fits) run per task on the chosen checkpoint's bootstrap replicates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from reports import fits
from reports import recursion as R
from reports.intervals import Cell, bootstrap, percentile_interval, pooled_binomial, seed_only
from reports.table import RunData

CONFIG_KEYS = ("task", "family", "kind", "num_parameters", "effective_depth", "recursion")
CHECKPOINTS = {"final": "final_exact_accuracy", "best": "best_exact_accuracy"}


@dataclass
class TaskAnalysis:
    task: str
    checkpoint: str
    configs: pd.DataFrame
    power: fits.Fit | None = None
    depth: dict[str, fits.Fit] = field(default_factory=dict)
    phi: dict[str, fits.Fit] = field(default_factory=dict)
    exchange: pd.DataFrame = field(default_factory=pd.DataFrame)
    holdouts: list[dict] = field(default_factory=list)
    draws: np.ndarray | None = None  # [n_boot, configs]: bootstrap replicates of each accuracy
    ladder: list = field(default_factory=list)  # reports.recursion.Rung: which loop a gain is from
    comparison: R.Comparison | None = None  # best recursive vs best transformer

    @property
    def checkpoint_name(self) -> str:
        """What every headline and axis says: "final" or "best-on-validation"."""
        return "best-on-validation" if self.checkpoint == "best" else self.checkpoint


def finished(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty or "status" not in table:
        return table.iloc[0:0]
    return table[(table["status"] == "FINISHED") & table["final_exact_accuracy"].notna()]


def _cell(runs: pd.DataFrame, data: RunData, checkpoint: str, task: str) -> Cell | None:
    rows, ids = [], None
    for r in runs.itertuples():
        bits = data.correctness.get(r.run_id)
        if bits is None or "test" not in bits["splits"]:
            return None
        correct, pid = bits["splits"]["test"]
        steps = list(bits["steps"])
        step = steps[-1] if checkpoint == "final" else r.best_step
        if step not in steps:
            return None
        if ids is not None and (len(pid) != len(ids) or not np.array_equal(pid, ids)):
            return None  # seeds evaluated on different puzzles: no shared draw
        ids = pid
        rows.append(correct[steps.index(step)])
    return Cell(np.stack(rows), ids, key=f"{task}:{len(ids)}:{hash(ids.tobytes())}", seeds=list(runs["seed"]))


def configurations(
    data: RunData, checkpoint: str = "final", n_boot: int = 2000, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray]:
    """-> (one row per configuration, bootstrap replicates [n_boot, rows] of its accuracy)."""
    col = CHECKPOINTS[checkpoint]
    done = finished(data.table)
    if checkpoint == "best" and not done.empty:
        done = done[done["best_exact_accuracy"].notna()]
    if done.empty:
        return pd.DataFrame(), np.zeros((n_boot, 0))
    keys = [k for k in CONFIG_KEYS if k in done.columns]
    groups = list(done.groupby(keys, dropna=False, sort=False))
    cells, rows = [], []
    for group, g in groups:
        cell = _cell(g, data, checkpoint, str(g["task"].iloc[0]))
        per_seed = g[col].to_numpy(float)
        row = dict(zip(keys, group))
        row["segments"] = (
            float(g["segments"].iloc[0]) if "segments" in g and g["segments"].notna().any() else math.nan
        )
        row.update(
            label=_label(row),
            seeds=len(g),
            seed_list=", ".join(str(s) for s in g["seed"]),
            per_seed=", ".join(f"{100 * v:.1f}" for v in per_seed),
            puzzle_emb_parameters=g["puzzle_emb_parameters"].max()
            if "puzzle_emb_parameters" in g
            else math.nan,
            recurrences=float(g["recurrences"].iloc[0]) if g["recurrences"].iloc[0] is not None else math.nan,
            train_flops=float(g["train_flops"].mean()),
            inference_flops_per_example=float(g["inference_flops_per_example"].mean())
            if g["inference_flops_per_example"].notna().any()
            else math.nan,
            eval_examples=float(g["eval_examples"].max()),
            run_ids=list(g["run_id"]),
        )
        row["accuracy"] = float(cell.mean) if cell is not None else float(per_seed.mean())
        if cell is not None:
            row["interval"] = "seeds x puzzles"
            row["pooled_low"], row["pooled_high"] = pooled_binomial(cell)
        else:
            row["interval"] = "seeds only" if len(g) > 1 else "binomial"
        cells.append(cell)
        rows.append(row)
    draws = np.full((n_boot, len(rows)), np.nan)
    have = [i for i, c in enumerate(cells) if c is not None]
    if have:
        draws[:, have] = bootstrap([cells[i] for i in have], n_boot, seed)
    for i, row in enumerate(rows):
        if cells[i] is None:
            if row["interval"] == "seeds only":
                draws[:, i] = seed_only(
                    done.loc[done["run_id"].isin(row["run_ids"]), col].to_numpy(float), n_boot, seed + i
                )
            else:
                n = int(row["eval_examples"] or 0)
                if n:
                    ci = binomtest(int(round(row["accuracy"] * n)), n).proportion_ci(method="wilson")
                    row["low"], row["high"] = float(ci.low), float(ci.high)
                    # replicates for the fits: the binomial sampling distribution
                    draws[:, i] = np.random.default_rng(seed + i).binomial(n, row["accuracy"], n_boot) / n
    for i, row in enumerate(rows):
        c = cells[i]
        if c is not None and c.mean in (0.0, 1.0):
            # every seed got every puzzle equally right (or wrong): the bootstrap is degenerate
            # (0-0%); Wilson on the number of distinct puzzles says how sure that can be
            n = len(np.unique(c.puzzle_ids))
            ci = binomtest(int(round(c.mean * n)), n).proportion_ci(method="wilson")
            row.update(interval="binomial (all outcomes equal)", low=float(ci.low), high=float(ci.high))
    lo, hi = percentile_interval(draws)
    df = pd.DataFrame(rows)
    fixed = df["interval"].str.startswith("binomial").to_numpy()
    df["low"] = np.where(fixed, df.get("low", np.nan), lo)
    df["high"] = np.where(fixed, df.get("high", np.nan), hi)
    df["checkpoint"] = checkpoint
    order = df.sort_values(["task", "kind", "family", "num_parameters", "effective_depth"]).index
    return df.loc[order].reset_index(drop=True), draws[:, order]


def _label(row: dict) -> str:
    if row.get("kind") == "transformer":
        seg = row.get("segments", math.nan)
        how = "" if not math.isfinite(seg) else (", direct" if seg == 1 else f", {seg:g} segments")
        return f"transformer {int(row['num_parameters']):,} params{how}"
    return f"{row['family']} {row.get('recursion', '')} (depth {row.get('effective_depth')})".strip()


def _power_group(cf: pd.DataFrame) -> np.ndarray:
    """The transformers one power law is fitted on: those sharing one segment count (the outer
    loop changes what a parameter buys), the count with the most distinct sizes."""
    tf = (cf["kind"] == "transformer").to_numpy()
    seg = R.segments(cf)
    N = cf["num_parameters"].to_numpy(float)
    best, key = tf & np.isnan(seg), (-1, -math.inf)
    for s in np.unique(seg[tf & ~np.isnan(seg)]):
        m = tf & (seg == s)
        k = (len(np.unique(N[m])), s)
        if k > key:
            best, key = m, k
    return np.flatnonzero(best if best.any() else tf)


def analyse(
    data: RunData, checkpoint: str = "final", n_boot: int = 2000, seed: int = 0
) -> list[TaskAnalysis]:
    configs, draws = configurations(data, checkpoint, n_boot, seed)
    out = []
    if configs.empty:
        return out
    for task in configs["task"].unique():
        idx = np.flatnonzero((configs["task"] == task).to_numpy())
        cf, dr = configs.iloc[idx].reset_index(drop=True), draws[:, idx]
        ta = TaskAnalysis(str(task), checkpoint, cf, draws=dr)
        ta.ladder, ta.comparison = R.ladder(cf, dr), R.comparison(cf, dr)
        floor = 0.5 / max(1.0, float(np.nanmax(cf["eval_examples"].to_numpy(float))))
        tf = _power_group(cf)
        N, acc = cf["num_parameters"].to_numpy(float), cf["accuracy"].to_numpy(float)
        if len(tf):
            ta.power = fits.power_law(N[tf], acc[tf], dr[:, tf], floor=floor)
            ta.holdouts.append(
                {"law": "power law (transformers)", **fits.holdout("power", N[tf], acc[tf], dr[:, tf])}
            )
        ex = []
        for fam in cf.loc[cf["kind"] == "recursive", "family"].unique():
            fi = np.flatnonzero(((cf["family"] == fam) & (cf["kind"] == "recursive")).to_numpy())
            d = cf["effective_depth"].to_numpy(float)
            ta.depth[fam] = fits.saturating(d[fi], acc[fi], dr[:, fi])
            ta.holdouts.append(
                {"law": f"depth law ({fam})", **fits.holdout("depth", d[fi], acc[fi], dr[:, fi])}
            )
            both = np.concatenate([tf, fi])
            r = cf["recurrences"].to_numpy(float)
            r = np.where(cf["kind"].to_numpy() == "transformer", 1.0, r)
            ta.phi[fam] = fits.equivalence(N[both], r[both], acc[both], dr[:, both], floor=floor)
            if ta.power is not None and ta.power.ok:
                lo_n, hi_n = N[tf].min(), N[tf].max()
                for i in fi:
                    e = fits.exchange_rate(ta.power, N[i], acc[i], dr[:, i])
                    need = e["multiple"] * N[i]
                    ex.append(
                        {
                            "family": fam,
                            "configuration": cf.loc[i, "label"],
                            "effective_depth": cf.loc[i, "effective_depth"],
                            "num_parameters": N[i],
                            "accuracy": acc[i],
                            **e,
                            "extrapolated": not (lo_n <= need <= hi_n),
                        }
                    )
        ta.exchange = pd.DataFrame(ex)
        out.append(ta)
    return out


def pareto(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (less x and more y), ordered by x."""
    order = np.lexsort((-y, x))
    keep, best = [], -math.inf
    for i in order:
        if y[i] > best:
            keep.append(i)
            best = y[i]
    return np.array(keep, int)
