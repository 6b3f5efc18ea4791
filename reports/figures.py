"""Figures (matplotlib, Agg): each is a PNG (bytes) with a caption that states what is plotted,
which checkpoint, and the formula behind any fitted curve or FLOP axis."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports import fits
from reports.analysis import TaskAnalysis, pareto

FLOPS_NOTE = {
    "train_flops": "Training FLOPs = optimizer steps x batch x (6 x MACs of every block call that takes "
    "gradients + 2 x MACs of every no-grad call + the heads)",
    "inference_flops_per_example": "Inference FLOPs per example = halt_max_steps x one segment's "
    "forward (2 x MACs of every block call + the heads); no early halting",
}


@dataclass
class Figure:
    name: str
    title: str
    caption: str
    png: bytes

    @property
    def base64(self) -> str:
        return base64.b64encode(self.png).decode("ascii")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, name, title, caption) -> Figure:
    from matplotlib.ticker import NullFormatter

    for ax in fig.axes:  # log axes: label the decades only
        if ax.get_xscale() == "log":
            ax.xaxis.set_minor_formatter(NullFormatter())
        if "accuracy, %" in ax.get_ylabel():  # a percent axis: 0 at the bottom, at least 0-10%
            lo, hi = ax.get_ylim()
            ax.set_ylim(max(-2.0, min(lo, 0.0)), min(102.0, max(hi, 10.0)))
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    _plt().close(fig)
    return Figure(name, title, caption, buf.getvalue())


def family_colors(families) -> dict[str, str]:
    """One colour per family in every figure: the transformers first, the rest sorted."""
    fams = sorted(set(families), key=lambda f: (f != "transformer", f))
    return {f: f"C{i % 10}" for i, f in enumerate(fams)}


def _errorbar(ax, x, cf: pd.DataFrame, **kw):
    y = 100 * cf["accuracy"].to_numpy(float)
    lo = 100 * cf["low"].to_numpy(float)
    hi = 100 * cf["high"].to_numpy(float)
    err = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
    err = np.nan_to_num(err)
    ax.errorbar(x, y, yerr=err, fmt="o", capsize=3, **kw)


def _note(ax, text):
    ax.text(0.02, 0.02, text, transform=ax.transAxes, fontsize=8, color="#a33", va="bottom", wrap=True)


def configurations_figure(ta: TaskAnalysis, slug: str) -> Figure | None:
    """The headline: every configuration's accuracy (mean, 95% interval, each seed), one row each,
    grouped by family; the ladder's rungs (direct, outer loop, inner loop, parameters) named."""
    plt = _plt()
    cf = ta.configs
    if cf.empty:
        return None
    col = family_colors(cf["family"])
    rung = {r.index: r.stage for r in ta.ladder}
    order = list(
        cf.sort_values(["kind", "family", "num_parameters", "effective_depth"], ascending=False).index
    )
    fig, ax = plt.subplots(figsize=(7.6, 0.42 * len(order) + 1.3))
    for y, i in enumerate(order):
        r = cf.loc[i]
        c = col[r["family"]]
        ax.barh(y, 100 * r["accuracy"], color=c, alpha=0.35, height=0.7)
        lo, hi = 100 * np.nan_to_num(r["low"]), 100 * np.nan_to_num(r["high"])
        ax.plot([lo, hi], [y, y], color=c, lw=2)
        seeds = [float(v) for v in str(r["per_seed"]).split(", ") if v]
        ax.scatter(seeds, [y] * len(seeds), color=c, edgecolor="black", s=22, zorder=3)
    labels = [cf.loc[i, "label"] + (f"  [{rung[i]}]" if i in rung else "") for i in order]
    ax.set_yticks(range(len(order)), labels, fontsize=8)
    ax.set_xlabel(f"exact accuracy, % ({ta.checkpoint_name} checkpoint)")
    ax.set_xlim(0, 100)
    ax.set_title("every configuration at equal training FLOPs")
    ax.grid(axis="x", alpha=0.3)
    cap = (
        f"Each configuration, {ta.checkpoint_name} checkpoint: bar = mean over seeds, line = 95% "
        "interval (seeds x puzzles bootstrap), dots = each seed. Brackets name the ladder's rungs: "
        "direct (no recursion), outer loop (deep supervision added), inner loop (the best recursive "
        "model), parameters (the best larger transformer)."
    )
    return _save(fig, f"{slug}-configurations", f"{ta.task}: every configuration", cap)


def params_figure(ta: TaskAnalysis, slug: str) -> Figure | None:
    plt = _plt()
    cf = ta.configs
    tf = cf[cf["kind"] == "transformer"]
    if tf.empty:
        return None
    col = family_colors(cf["family"])
    fig, ax = plt.subplots(figsize=(6.4, 4))
    _errorbar(
        ax, tf["num_parameters"], tf, label="transformer (mean, 95% interval)", color=col["transformer"]
    )
    rec = cf[cf["kind"] == "recursive"]
    for fam, g in rec.groupby("family", sort=False):
        ax.scatter(
            g["num_parameters"],
            100 * g["accuracy"],
            marker="*",
            s=90,
            color=col[fam],
            label=f"{fam} (every depth)",
        )
    p = ta.power
    if p is not None and p.ok:
        xs = np.geomspace(tf["num_parameters"].min() / 1.5, tf["num_parameters"].max() * 1.5, 100)
        ax.plot(
            xs,
            100 * np.clip(fits.power_predict(p, xs), 0, 1),
            "--",
            color=col["transformer"],
            label=f"fit: alpha = {p.params['alpha']:.2f} [{p.lo['alpha']:.2f}, {p.hi['alpha']:.2f}]",
        )
    elif p is not None:
        _note(ax, "No fit drawn: " + p.reason)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (without the puzzle-embedding table)")
    ax.set_ylabel(f"exact accuracy, % ({ta.checkpoint_name} checkpoint)")
    ax.set_title("accuracy vs parameters")
    ax.legend(fontsize=7)
    cap = (
        f"Transformer family, {ta.checkpoint_name} checkpoint. Fit: {fits.POWER_FORMULA} (Huber, "
        f"log error); {p.describe() if p is not None else ''}"
    )
    return _save(fig, f"{slug}-params", f"{ta.task}: accuracy vs parameters", cap)


def depth_figure(ta: TaskAnalysis, slug: str) -> Figure | None:
    plt = _plt()
    cf = ta.configs
    rec = cf[cf["kind"] == "recursive"]
    if rec.empty:
        return None
    col = family_colors(cf["family"])
    fig, ax = plt.subplots(figsize=(6.4, 4))
    notes, caps = [], []
    for fam, g in rec.groupby("family", sort=False):
        color = col[fam]
        _errorbar(ax, g["effective_depth"], g, color=color, label=fam)
        f = ta.depth.get(fam)
        if f is not None and f.ok:
            xs = np.linspace(0.5, g["effective_depth"].max() * 1.2, 200)
            ax.plot(
                xs,
                100 * fits.depth_predict(f, xs),
                "--",
                color=color,
                label=f"fit ({fam}); peak at {f.extra['peak']:.3g}"
                if math.isfinite(f.extra["peak"])
                else f"fit ({fam}); saturates at {100 * f.params['c']:.1f}%",
            )
        elif f is not None:
            notes.append(f"{fam}: no fit drawn: {f.reason}")
        caps.append(f.describe() if f is not None else "")
    if notes:
        _note(ax, "\n".join(notes))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("effective depth (blocks applied in sequence per supervision step)")
    ax.set_ylabel(f"exact accuracy, % ({ta.checkpoint_name} checkpoint)")
    ax.set_title("accuracy vs effective depth (parameters fixed per family)")
    ax.legend(fontsize=7)
    cap = (
        f"Each recursive family at fixed parameters, {ta.checkpoint_name} checkpoint. Fit: "
        f"{fits.DEPTH_FORMULA} (Huber on accuracy). " + "; ".join(caps)
    )
    return _save(fig, f"{slug}-depth", f"{ta.task}: accuracy vs effective depth", cap)


def compute_figure(ta: TaskAnalysis, slug: str, axis: str) -> Figure | None:
    plt = _plt()
    cf = ta.configs[ta.configs[axis].notna()] if axis in ta.configs else ta.configs.iloc[0:0]
    if cf.empty:
        return None
    col = family_colors(ta.configs["family"])
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for fam, g in cf.groupby("family", sort=False):
        color = col[fam]
        _errorbar(ax, g[axis], g, color=color, label=fam, alpha=0.85)
        x, y = g[axis].to_numpy(float), g["accuracy"].to_numpy(float)
        front = pareto(x, y)
        ax.step(x[front], 100 * y[front], where="post", color=color, lw=1)
    ax.set_xscale("log")
    what = "training FLOPs" if axis == "train_flops" else "inference FLOPs per example"
    ax.set_xlabel(what)
    ax.set_ylabel(f"exact accuracy, % ({ta.checkpoint_name} checkpoint)")
    ax.set_title(f"accuracy vs {what}")
    ax.legend(fontsize=7)
    return _save(
        fig,
        f"{slug}-{'train' if axis == 'train_flops' else 'inference'}-flops",
        f"{ta.task}: accuracy vs {what}",
        f"Lines: each family's Pareto frontier (no point of the family "
        f"is both cheaper and more accurate). {FLOPS_NOTE[axis]}. {ta.checkpoint_name} checkpoint.",
    )


def curves_figure(table: pd.DataFrame, histories: dict, task: str, slug: str) -> Figure | None:
    plt = _plt()
    runs = table[(table["task"] == task)]
    runs = runs[runs["run_id"].map(lambda r: r in histories and not histories[r].empty)]
    if runs.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4))
    col = family_colors(runs["family"])
    for r in runs.itertuples():
        h = histories[r.run_id]
        color = col[r.family]
        if "exact_accuracy" in h:
            ax.plot(h.index, 100 * h["exact_accuracy"], "-", color=color, lw=1, alpha=0.8)
            ax.plot(h.index[-1:], 100 * h["exact_accuracy"].iloc[-1:], "s", color=color, ms=5)
        if "val_exact_accuracy" in h:
            ax.plot(h.index, 100 * h["val_exact_accuracy"], ":", color=color, lw=1, alpha=0.8)
        if isinstance(r.best_step, (int, float)) and not math.isnan(r.best_step) and r.best_step in h.index:
            ax.plot([r.best_step], [100 * h.loc[r.best_step, "exact_accuracy"]], "*", color=color, ms=10)
    for f, c in col.items():
        ax.plot([], [], color=c, label=f)
    ax.plot([], [], "ks", label="final checkpoint")
    ax.plot([], [], "k*", label="best on validation")
    ax.plot([], [], "k:", label="validation split")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("exact accuracy, % (test: solid)")
    ax.set_title("evaluation over training, every run")
    ax.legend(fontsize=7)
    return _save(
        fig,
        f"{slug}-curves",
        f"{task}: evaluation accuracy over training",
        "Test exact accuracy at every evaluation (solid), validation (dotted, held out of the "
        "training data); squares mark the final checkpoint, stars the checkpoint chosen on "
        "validation.",
    )


def test_time_figure(points: pd.DataFrame, table: pd.DataFrame, task: str, slug: str) -> Figure | None:
    """Accuracy vs inference FLOPs per example for each checkpoint that has a test-time grid
    (`rbench eval`, or a sweep's `test_time:`): along depth (more supervision steps, one sample)
    and along breadth (K trajectories at the trained number of steps)."""
    if points is None or not len(points) or not len(table):
        return None
    names = table[table["task"] == task].set_index("run_id")["run_name"].to_dict()
    pts = points[points["run_id"].isin(names)]
    if not len(pts):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5), sharey=True)
    drawn = False
    for run_id, g in pts.groupby("run_id"):
        trained = g["trained_steps"].dropna()
        trained = int(trained.iloc[0]) if len(trained) else int(g["steps"].max())
        depth = g[g["samples"] == 1].sort_values("steps")
        breadth = g[g["steps"] == trained].sort_values("samples")
        for ax, line, label in ((axes[0], depth, "steps"), (axes[1], breadth, "samples")):
            if not len(line):
                continue
            drawn = True
            ax.plot(
                line["inference_flops_per_example"], 100 * line["exact_accuracy"], "o-", label=names[run_id]
            )
            for _, r in line.iterrows():
                ax.annotate(
                    str(int(r[label])),
                    (r["inference_flops_per_example"], 100 * r["exact_accuracy"]),
                    fontsize=6,
                    xytext=(2, 2),
                    textcoords="offset points",
                )
    if not drawn:
        plt.close(fig)
        return None
    for ax, kind in zip(
        axes, ("depth: supervision steps (1 sample)", "breadth: trajectories K (trained steps)")
    ):
        ax.set_xscale("log")
        ax.set_xlabel("inference FLOPs per example")
        ax.set_title(kind, fontsize=9)
    axes[0].set_ylabel("exact accuracy, %")
    axes[0].legend(fontsize=6)
    return _save(
        fig,
        f"{slug}-test-time",
        f"{task}: test-time depth and breadth",
        "The same checkpoint evaluated with more or fewer supervision steps (depth; labels: "
        "steps) or with K noisy trajectories per puzzle (breadth; labels: K), against the "
        "inference FLOPs each costs.",
    )
