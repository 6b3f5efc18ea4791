"""The report's answer in HTML: the headline comparison and the recursion ladder of one task."""

from __future__ import annotations

from reports import recursion as R
from reports.htmlkit import esc, num, pct, table, times


def _gain_cell(r) -> str:
    if r.versus is None:
        return "–"
    sure = "" if r.resolved else " <i>(not resolved)</i>"
    return (
        f"{100 * r.gain:+.1f} points vs {esc(r.versus)} "
        f"[{100 * r.gain_low:+.1f}, {100 * r.gain_high:+.1f}]{sure}"
    )


def ladder_section(ta) -> str:
    """Which recursion a gain comes from: direct -> outer loop -> inner loop (+ parameters)."""
    ck = ta.checkpoint_name
    head = f"<h3>Which recursion the gain comes from, <span class='ck'>{ck} checkpoint</span></h3>"
    if not ta.ladder:
        return head + "<p>Not computed: no transformer or recursive configuration on this task.</p>"
    rows = [
        [
            esc(r.stage),
            esc(r.what),
            esc(r.label),
            num(r.num_parameters),
            num(r.train_flops, "{:.3g}"),
            f"{pct(r.accuracy)} [{pct(r.low)}, {pct(r.high)}]",
            esc(r.per_seed),
            _gain_cell(r),
        ]
        for r in ta.ladder
    ]
    note = (
        ""
        if R.equal_flops(*ta.ladder)
        else "<p class='warn'>These configurations did not train for equal FLOPs.</p>"
    )
    return (
        head + "<p>The outer loop (deep supervision: the carried state refined over supervision "
        "segments) is given to every architecture; the inner loop is an architecture's own "
        "recursion within a segment (TRM's T and n, HRM's cycles, loops). Each gain is measured "
        "against the rung it names, with a 95% paired bootstrap interval (same puzzle draws).</p>"
        + table(
            [
                "rung",
                "adds",
                "configuration",
                "params",
                "train FLOPs",
                "exact acc. [95%]",
                "per seed (%)",
                "gain",
            ],
            rows,
            {3, 4},
        )
        + note
    )


def headline(ta) -> str:
    ck = f"<span class='ck'>{esc(ta.checkpoint_name)} checkpoint</span>"
    cf = ta.configs
    parts = []
    c = ta.comparison
    if c is not None:
        r, b = c.recursive, c.transformer
        parts.append(
            f"{ck}: best recursive <b>{esc(r.label)}</b> {pct(r.accuracy)} "
            f"[{pct(r.low)}, {pct(r.high)}] with {num(r.num_parameters)} parameters vs best "
            f"transformer <b>{esc(b.label)}</b> {pct(b.accuracy)} [{pct(b.low)}, "
            f"{pct(b.high)}] at {'equal' if c.equal_flops else '<b>unequal</b>'} training FLOPs: "
            f"difference {100 * c.gain:+.1f} points [{100 * c.gain_low:+.1f}, "
            f"{100 * c.gain_high:+.1f}] ({c.verdict})."
        )
    elif not cf.empty:
        r = cf.loc[cf["accuracy"].idxmax()]
        parts.append(
            f"{ck}: best configuration <b>{esc(r['label'])}</b> {pct(r['accuracy'])} "
            f"[{pct(r['low'])}, {pct(r['high'])}]."
        )
    for fam, f in ta.phi.items():
        if f.ok:
            parts.append(
                f"Recurrence-equivalence exponent for {esc(fam)} ({ck}): phi = {f.params['phi']:.2f} "
                f"[{f.lo['phi']:.2f}, {f.hi['phi']:.2f}] (1 = a loop is worth a copy of the weights, "
                f"0 = worth nothing; looped LMs: 0.46)."
            )
        else:
            parts.append(f"phi for {esc(fam)}: not fitted: {esc(f.reason)}.")
    if not ta.exchange.empty:
        e = ta.exchange.loc[ta.exchange["accuracy"].idxmax()]
        parts.append(
            f"Exchange rate ({ck}): to match {esc(e['configuration'])} a transformer needs "
            f"{times(e['multiple'])} [{times(e['lo'])}, {times(e['hi'])}] its parameters"
            f"{' (extrapolated beyond the transformers measured)' if e['extrapolated'] else ''}."
        )
    return "<br>".join(parts) or "No finished configuration on this task."
