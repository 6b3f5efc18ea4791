"""The report as ONE self-contained HTML file: figures embedded as base64 PNG, inline CSS, no
script and no network. Sections: headline, per task (figures, configurations at the final and at
the best-on-validation checkpoint, fits, exchange rates, hold-out checks, published numbers),
failed and missing runs, method (intervals, fits, FLOP formulas), and every run's config and commit."""

from __future__ import annotations

import json
import math
import time

import pandas as pd

from reports import fits
from reports.htmlkit import CSS, esc, num, pct, table, times
from reports.htmlrecursion import headline, ladder_section
from reports.published import published_for


def config_table(cf: pd.DataFrame) -> str:
    rows = []
    for r in cf.itertuples():
        interval = f"{pct(r.low)} – {pct(r.high)}"
        pooled = (
            f"{pct(r.pooled_low)} – {pct(r.pooled_high)}"
            if hasattr(r, "pooled_low") and not pd.isna(r.pooled_low)
            else "–"
        )
        rows.append(
            [
                esc(r.family),
                esc(r.recursion),
                num(r.num_parameters),
                num(r.puzzle_emb_parameters),
                num(r.effective_depth, "{:g}"),
                num(r.train_flops, "{:.3g}"),
                num(r.inference_flops_per_example, "{:.3g}"),
                str(r.seeds),
                pct(r.accuracy),
                interval,
                esc(r.interval),
                pooled,
                esc(r.per_seed),
            ]
        )
    return table(
        [
            "family",
            "recursion",
            "params",
            "puzzle-emb. params",
            "eff. depth",
            "train FLOPs",
            "inference FLOPs / example",
            "seeds",
            "exact acc.",
            "95% interval",
            "interval method",
            "pooled binomial (too narrow)",
            "per seed (%)",
        ],
        rows,
        {2, 3, 4, 5, 6, 7, 8},
    )


def fit_rows(ta) -> list[list[str]]:
    rows = []
    items = (
        ([("transformer", ta.power)] if ta.power is not None else [])
        + [(f, x) for f, x in ta.depth.items()]
        + [(f"transformer + {f}", x) for f, x in ta.phi.items()]
    )
    for who, f in items:
        if not f.ok:
            rows.append(
                [esc(f.law), esc(who), esc(f.formula), f"<i>not fitted: {esc(f.reason)}</i>", "–", "–"]
            )
            continue
        vals = "<br>".join(f"{esc(n)} = {f.params[n]:.4g} [{f.lo[n]:.4g}, {f.hi[n]:.4g}]" for n in f.names)
        if "peak" in f.extra:
            pk = f.extra["peak"]
            lo_, hi_ = f.extra.get("peak_lo", math.nan), f.extra.get("peak_hi", math.nan)
            vals += "<br>peak depth = " + (
                f"{pk:.3g} [{lo_:.3g}, {'none' if math.isinf(hi_) else f'{hi_:.3g}'}]"
                if math.isfinite(pk)
                else "none (saturates)"
            )
        rows.append(
            [
                esc(f.law),
                esc(who),
                esc(f.formula),
                vals,
                str(f.n_points),
                "–" if math.isnan(f.converged) else f"{100 * f.converged:.0f}%",
            ]
        )
    return rows


def task_section(ta, best, figs: list, runs: pd.DataFrame) -> str:
    ck = ta.checkpoint_name
    out = [f"<h2 id='task-{esc(ta.task)}'>Task <code>{esc(ta.task)}</code></h2>"]
    out.append(f"<div class='headline'>{headline(ta)}</div>")
    for f in figs:
        out.append(
            f"<figure><img alt='{esc(f.title)}' src='data:image/png;base64,{f.base64}'>"
            f"<figcaption><b>{esc(f.title)}.</b> {esc(f.caption)}</figcaption></figure>"
        )
    out.append(ladder_section(ta))
    out.append(f"<h3>Configurations, <span class='ck'>{ck} checkpoint</span></h3>")
    out.append(config_table(ta.configs))
    if best is not None and not best.configs.empty:
        out.append(
            "<h3>Configurations, <span class='ck'>best-on-validation checkpoint</span></h3>"
            "<p>The checkpoint with the highest exact accuracy on the validation split held out "
            "of the training data (<code>train.val_examples</code>); its TEST accuracy is shown.</p>"
        )
        out.append(config_table(best.configs))
    else:
        out.append(
            "<p class='warn'>No validation split (<code>train.val_examples</code> unset): only "
            "final checkpoints are reported; the test set is never used to choose one.</p>"
        )
    out.append(f"<h3>Fits, <span class='ck'>{ck} checkpoint</span></h3>")
    out.append(
        table(
            ["law", "data", "form", "fitted (95% bootstrap interval)", "points", "refits converged"],
            fit_rows(ta),
        )
    )
    if not ta.exchange.empty:
        rows = [
            [
                esc(r.family),
                esc(r.configuration),
                pct(r.accuracy),
                num(r.num_parameters),
                times(r.multiple),
                f"{times(r.lo)} – {times(r.hi)}",
                "yes: beyond the transformers measured" if r.extrapolated else "no",
            ]
            for r in ta.exchange.itertuples()
        ]
        out.append(
            f"<h3>Exchange rate, <span class='ck'>{ck} checkpoint</span></h3><p>Parameters a "
            "transformer needs (by its fitted power law) to match each recursive configuration, "
            "as a multiple of the recursive model's parameters.</p>"
        )
        out.append(
            table(
                [
                    "family",
                    "configuration",
                    "exact acc.",
                    "params",
                    "transformer needs",
                    "95% interval",
                    "extrapolated",
                ],
                rows,
                {2, 3, 4},
            )
        )
    else:
        out.append(
            "<p>Exchange rate: not computed (it needs a fitted transformer power law and a "
            "recursive family on this task).</p>"
        )
    rows = []
    for h in ta.holdouts:
        if h["ok"]:
            rows.append(
                [
                    esc(h["law"]),
                    num(h["at"], "{:,.4g}"),
                    pct(h["predicted"]),
                    f"{pct(h['lo'])} – {pct(h['hi'])}",
                    pct(h["observed"]),
                    f"{100 * h['error']:+.1f} points",
                ]
            )
        else:
            rows.append([esc(h["law"]), "–", f"<i>{esc(h['reason'])}</i>", "–", "–", "–"])
    if rows:
        out.append("<h3>Hold-out check: fit on the smaller budgets, predict the largest</h3>")
        out.append(
            table(
                ["law", "held-out budget", "predicted", "95% interval", "observed", "observed − predicted"],
                rows,
            )
        )
    pub, original = published_for(ta.task)
    if pub:
        note = (
            ""
            if original == ta.task
            else (
                f" (published on <code>{esc(original)}</code>; this "
                "task is a look-alike made here, not the same puzzles)"
            )
        )
        ours = ta.configs.sort_values("accuracy", ascending=False).head(3)
        rows = [[esc(p["model"]), f"{p['exact_accuracy']:.2f}%", esc(p["source"])] for p in pub]
        rows += [
            [
                f"this study: {esc(r.label)} ({ck})",
                f"{pct(r.accuracy)} [{pct(r.low)}, {pct(r.high)}]",
                "this report",
            ]
            for r in ours.itertuples()
        ]
        out.append(f"<h3>Published numbers{note}</h3>")
        out.append(table(["model", "exact accuracy", "source"], rows))
    return "\n".join(out)


def failed_section(table_: pd.DataFrame, expected: int | None) -> str:
    out = ["<h2 id='failed'>Failed and missing runs</h2>"]
    bad = table_[table_["status"] != "FINISHED"] if not table_.empty else table_
    if bad.empty:
        out.append("<p>None: every run finished.</p>")
    else:
        rows = [
            [
                esc(r.run_name),
                f"<code>{esc(r.run_id[:12])}</code>",
                esc(r.status),
                esc(r.family),
                num(r.seed, "{:g}"),
                esc(
                    r.failure_reason
                    or ("unfinished (still running or killed)" if r.status == "RUNNING" else "")
                ),
            ]
            for r in bad.itertuples()
        ]
        out.append(table(["run", "id", "status", "family", "seed", "reason"], rows))
    no_eval = (
        table_[(table_["status"] == "FINISHED") & table_["final_exact_accuracy"].isna()]
        if not table_.empty
        else table_
    )
    if len(no_eval):
        out.append(
            "<p class='warn'>Finished without an evaluation (excluded): "
            + ", ".join(esc(n) for n in no_eval["run_name"])
            + "</p>"
        )
    if expected is not None:
        missing = expected - len(table_)
        out.append(
            f"<p>The sweep asked for {expected} trials; {len(table_)} have an MLflow run"
            + (f": <b>{missing} missing</b>.</p>" if missing > 0 else ".</p>")
        )
    if "trial_number" in table_ and table_["trial_number"].notna().any():
        nums = set(int(x) for x in table_["trial_number"].dropna())
        gaps = sorted(set(range(max(nums) + 1)) - nums)
        if gaps:
            out.append(f"<p>Trial numbers with no run: {', '.join(map(str, gaps))}.</p>")
    return "\n".join(out)


METHOD = f"""
<h2 id='method'>Method</h2>
<p><b>Metric.</b> Exact accuracy: the fraction of test puzzles whose every labelled token is right
(never per-cell accuracy). <b>Checkpoints.</b> Every number says whether it is the
<span class='ck'>final</span> checkpoint or the <span class='ck'>best-on-validation</span> one: the
evaluation with the highest exact accuracy on a split held out of the training data (whole
puzzle groups, <code>train.val_examples</code>);
the test set never chooses a checkpoint.</p>
<p><b>Intervals.</b> Seeds of one configuration are evaluated on the same test puzzles, so they are not
independent samples. Each 95% interval is the percentile interval of a two-level bootstrap: every
replicate draws the test puzzles with replacement (augmented variants of one puzzle move together;
one draw per task, shared by all configurations) and then each configuration's seeds with replacement,
from the per-example correctness every evaluation logs (<code>eval/correctness.npz</code>). The pooled
binomial interval (every seed x puzzle as independent) is shown beside it for comparison only. Runs
without per-example bits fall back to resampling seeds only, or, with one seed, to a Wilson interval;
the table says which.</p>
<p><b>Fits.</b> Error e = 1 − exact accuracy, floored at half an example. Minimise the sum of Huber losses
(delta {fits.DELTA_LOG} on log-error residuals, {fits.DELTA_ACC} on accuracy residuals) with L-BFGS-B
from a grid of starts, keeping the best (Chinchilla's approach 3); refit on every bootstrap replicate of
the accuracies and report percentile intervals on every constant, with the share of refits that converged.
Laws: <code>{fits.POWER_FORMULA}</code> for transformers (N = parameters without the puzzle-embedding
table); <code>{fits.PHI_FORMULA}</code> fitted jointly on the transformers (r = 1) and one recursive family
(r = effective depth / unique layers), after Schwethelm et al.'s looped-LM law (phi = 0.46 there);
<code>{fits.DEPTH_FORMULA}</code> per recursive family at fixed parameters, which allows TRM's
peak-and-fall (peak at d* = tau ln(1 + 1/(lam tau)); lam = 0 is pure saturation). The exchange rate
inverts the transformer power law at a recursive configuration's error. The hold-out check fits on
every budget but the largest and predicts the largest. A law is only fitted when the data have enough
distinct points; otherwise the report says so instead of drawing it.</p>
<p><b>FLOPs.</b> Analytic matmul FLOPs, 2 per multiply-accumulate forward and 6 forward + backward.
Per example and supervision step in training: 6 x MACs for every block call that takes gradients
(TRM: the last of T recursions; HRM: the last L and H step), 2 x MACs for the no-grad calls, plus the
output and halting heads; training FLOPs = that x batch size x optimizer steps. Inference FLOPs per
example = halt_max_steps x (2 x MACs of every block call + heads): evaluation never halts early, so
every configuration is compared at its stated compute.</p>
"""


def runs_section(table_: pd.DataFrame) -> str:
    out = ["<h2 id='runs'>Every run: config and commit</h2>"]
    if table_.empty:
        return out[0] + "<p>No runs.</p>"
    for r in table_.sort_values(["task", "family", "run_name"]).itertuples():
        try:
            cfg = json.dumps(json.loads(r.config), indent=1)
        except (TypeError, ValueError):
            cfg = str(r.config)
        dirty = " (uncommitted changes)" if str(getattr(r, "git_dirty", "")) == "True" else ""
        out.append(
            f"<details><summary><b>{esc(r.run_name)}</b> <code>{esc(r.run_id)}</code> · {esc(r.status)} · "
            f"{esc(r.family)} · seed {esc(r.seed)} · commit <code>{esc(r.git_commit)}</code>{dirty}</summary>"
            f"<pre>{esc(cfg)}</pre></details>"
        )
    return "\n".join(out)


def render(
    *,
    title: str,
    source: str,
    table_: pd.DataFrame,
    sections: list[str],
    expected: int | None,
    summary_lines: list[str],
) -> str:
    n = len(table_)
    done = int((table_["status"] == "FINISHED").sum()) if n else 0
    toc = " · ".join(
        [
            "<a href='#method'>method</a>",
            "<a href='#failed'>failed and missing runs</a>",
            "<a href='#runs'>every run</a>",
        ]
    )
    body = [
        f"<h1>{esc(title)}</h1>",
        f"<p class='meta'>Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} "
        f"from {esc(source)}: "
        f"{n} runs, {done} finished. {toc}</p>",
        "<h2>Is recursion a scaling law?</h2>",
        "<ul>" + "".join(f"<li>{s}</li>" for s in summary_lines) + "</ul>",
        *sections,
        failed_section(table_, expected),
        METHOD,
        runs_section(table_),
    ]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        "<link rel='icon' href='data:,'></head><body>" + "\n".join(body) + "</body></html>"
    )
