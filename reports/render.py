"""Run table -> Markdown: one row per model configuration, seeds pooled, with intervals.

Exact accuracy is a proportion over evaluation puzzles, so each configuration gets a Wilson 95%
interval on its pooled correct count (scipy's binomtest), plus the spread across seeds when there
are several. Rows are ordered by training FLOPs so equal-compute comparisons read top to bottom.
"""
from __future__ import annotations

import math
import time

import pandas as pd
from scipy.stats import binomtest

# Config keys that distinguish model variants in a table row (absent ones are skipped).
VARIANT_KEYS = ("model.arch", "model.hidden", "model.layers", "model.T", "model.n", "model.H_cycles",
                "model.L_cycles", "model.loops", "model.mlp_t", "model.halt_max_steps")


def summarize(df: pd.DataFrame, metric: str = "exact_accuracy") -> pd.DataFrame:
    """One row per (task, model variant): seeds, params, depth, FLOPs, accuracy mean/std/CI."""
    done = df[(df["status"] == "FINISHED") & df[metric].notna()] if metric in df else df.iloc[0:0]
    if done.empty:
        return pd.DataFrame()
    keys = ["task"] + [k for k in VARIANT_KEYS if k in done.columns]
    out = []
    for group, g in done.groupby(keys, dropna=False, sort=False):
        n_eval = g["eval_examples"].fillna(0).astype(int) if "eval_examples" in g else pd.Series([0] * len(g))
        correct = int(round(float((g[metric] * n_eval).sum())))
        total = int(n_eval.sum())
        lo, hi = (binomtest(correct, total).proportion_ci(method="wilson") if total else (math.nan, math.nan))
        row = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        row.update(seeds=len(g), num_parameters=int(g["num_parameters"].iloc[0]),
                   effective_depth=g["effective_depth"].iloc[0], train_flops=float(g["flops"].mean()),
                   **{metric: float(g[metric].mean()), f"{metric}_std": float(g[metric].std(ddof=1)) if len(g) > 1 else math.nan,
                      "ci95_low": lo, "ci95_high": hi, "eval_examples": total // max(1, len(g))})
        out.append(row)
    return pd.DataFrame(out).sort_values(["task", "train_flops"]).reset_index(drop=True)


def _fmt(v) -> str:
    """Config values come back from pandas as floats when a column has gaps: 32.0 -> 32."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _variant(row: pd.Series) -> str:
    parts = [str(row.get("model.arch"))]
    for k in VARIANT_KEYS[1:]:
        v = row.get(k)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            parts.append(f"{k.split('.', 1)[1]}={_fmt(v)}")
    return " ".join(parts)


def markdown(df: pd.DataFrame, *, title: str, metric: str = "exact_accuracy",
             notes: list[str] | None = None) -> str:
    s = summarize(df, metric)
    lines = [f"# {title}", "", f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from {len(df)} MLflow runs "
             f"({int((df['status'] == 'FINISHED').sum()) if 'status' in df else 0} finished).", ""]
    for note in notes or []:
        lines += [note, ""]
    if s.empty:
        return "\n".join(lines + ["No finished runs with an evaluation yet."]) + "\n"
    for task, t in s.groupby("task", sort=False):
        lines += [f"## {task}", "",
                  "| model | params | eff. depth | train FLOPs | seeds | exact acc. | 95% CI (Wilson) |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for _, r in t.iterrows():
            std = "" if math.isnan(r[f"{metric}_std"]) else f" ± {100 * r[f'{metric}_std']:.1f}"
            lines.append(f"| {_variant(r)} | {r['num_parameters']:,} | {_fmt(r['effective_depth'])} | "
                         f"{r['train_flops']:.3g} | {r['seeds']} | {100 * r[metric]:.1f}%{std} | "
                         f"{100 * r['ci95_low']:.1f}-{100 * r['ci95_high']:.1f}% |")
        lines += ["", *_verdict(t, metric), ""]
    failed = df[df["status"] == "FAILED"] if "status" in df else df.iloc[0:0]
    if len(failed):
        lines += ["## Failed runs", ""] + [f"- {r.run_name} ({r.run_id[:8]}): {r.failure_reason}"
                                            for r in failed.itertuples()] + [""]
    return "\n".join(lines)


def _verdict(t: pd.DataFrame, metric: str) -> list[str]:
    """The research question in one comparison: best recursive model vs best plain transformer."""
    from models.registry import RECURSIVE_ARCHS   # the architectures, listed once

    rec = t[t["model.arch"].isin(RECURSIVE_ARCHS)]
    base = t[~t["model.arch"].isin(RECURSIVE_ARCHS)]
    if rec.empty or base.empty:
        return []
    r, b = rec.loc[rec[metric].idxmax()], base.loc[base[metric].idxmax()]
    separated = r["ci95_low"] > b["ci95_high"] or b["ci95_low"] > r["ci95_high"]
    return [f"Best recursive model: {_variant(r)} at {100 * r[metric]:.1f}% with "
            f"{r['num_parameters']:,} parameters and {r['train_flops']:.3g} training FLOPs; best "
            f"transformer: {_variant(b)} at {100 * b[metric]:.1f}% with {b['num_parameters']:,} "
            f"parameters ({b['num_parameters'] / r['num_parameters']:.1f}x) and "
            f"{b['train_flops']:.3g} FLOPs. The 95% intervals "
            f"{'do not overlap' if separated else 'overlap: the difference is not resolved'}."]
