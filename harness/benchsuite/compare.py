"""`rbench bench compare BASELINE NEW`: one verdict per metric, improved / unchanged / regressed.

A metric regresses only when BOTH hold: a test on the two sample sets says the difference is not
noise, and the difference is at least the metric kind's minimum effect. Rules per kind:

    time, throughput, ratio   two-sided Mann-Whitney U on the samples, p < alpha (default 0.01),
                              and the ratio of medians beyond 1 + min effect (default 10%) in the
                              worse direction (time and overhead ratios: lower is better;
                              throughput and fraction-of-matmul: higher is better)
    accuracy                  Welch 95% interval of the difference of means (one sample per seed)
                              excludes 0, and the difference is at least min effect (default 0.02)
    count                     exact: any change in a FLOP or parameter count (or row count) is a
                              regression, until the baseline is refreshed on purpose

BASELINE may be several results files of good runs (a folder): timing samples are pooled and the
minimum effect counts from the worst (or, for an improvement, the best) of the runs' medians, so
drift between good runs is not flagged; accuracies and counts come from the latest run.

A metric in BASELINE that NEW lacks is a regression (a benchmark that silently stopped running
must not pass); one only in NEW is reported as new. Machines that differ (CPU model, cores,
memory, GPU, torch threads) get a warning: timings across machines mean little; so does a run on
a busy machine (load average above its cores), whose timings drift between runs by more than the
samples within one run show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.benchsuite.results import machine_differences, metrics_by_key, summarize

MIN_EFFECT = {"time": 0.10, "throughput": 0.10, "ratio": 0.10, "accuracy": 0.02}
ALPHA = 0.01
ACCURACY_CONFIDENCE = 0.95


@dataclass
class Row:
    key: str
    kind: str
    base: str
    new: str
    change: str
    p: float | None
    verdict: str  # improved | unchanged | regressed | new
    note: str = ""


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _spread(m: dict) -> str:
    s = m["summary"]
    return _fmt(s["median"]) + (f" ±{s['stderr']:.2g}" if s["n"] > 1 else "") + f" (n={s['n']})"


def min_p(n1: int, n2: int) -> float:
    """The smallest two-sided p an exact Mann-Whitney U test can give with these sample sizes."""
    return min(1.0, 2 / math.comb(n1 + n2, n1))


def _worse(new: float, ref: float, lower: bool) -> float:
    """How many times worse `new` is than `ref` (> 1: worse, < 1: better)."""
    if lower:
        return new / ref if ref else math.inf
    return ref / new if new else math.inf


def _relative(key: str, b: dict, n: dict, alpha: float, effect: float) -> Row:
    from scipy.stats import mannwhitneyu

    xb, xn = b["samples"], n["samples"]
    mb, mn = b["summary"]["median"], n["summary"]["median"]
    if len(set(xb) | set(xn)) == 1:
        p = 1.0
    else:
        p = float(mannwhitneyu(xn, xb, alternative="two-sided").pvalue)
    # several baseline runs: the minimum effect counts from the worst of their medians (for a
    # regression) or the best (for an improvement), so drift between good runs is tolerated
    meds = b.get("run_medians") or [mb]
    lower = n["better"] == "lower"
    worst, best = (max(meds), min(meds)) if lower else (min(meds), max(meds))
    regress = _worse(mn, worst, lower) >= 1 + effect
    improve = _worse(mn, best, lower) <= 1 / (1 + effect)
    verdict, note = "unchanged", ""
    if p < alpha and (regress or improve):
        verdict = "regressed" if regress else "improved"
    elif regress or improve:
        note = f"not significant (p={p:.3g} >= {alpha:g})"
        if min_p(len(xb), len(xn)) >= alpha:
            note = f"too few samples to test (n={len(xb)}+{len(xn)}: p >= {min_p(len(xb), len(xn)):.3g})"
    elif p < alpha:
        note = f"significant but below the {effect:.0%} minimum effect"
        if len(meds) > 1:
            note += f" beyond the {len(meds)} baseline runs (medians x{max(meds) / min(meds):.3f} apart)"
    ratio = mn / mb if mb else math.inf
    return Row(key, n["kind"], _spread(b), _spread(n), f"x{ratio:.3f}", p, verdict, note)


def welch_interval(b: dict, n: dict, confidence: float = ACCURACY_CONFIDENCE) -> tuple[float, float]:
    """(difference of means new - baseline, half-width of its Welch interval)."""
    from scipy.stats import t

    sb, sn = b["summary"], n["summary"]
    d = sn["mean"] - sb["mean"]
    vb, vn = sb["stderr"] ** 2, sn["stderr"] ** 2
    if vb + vn == 0:
        return d, 0.0
    terms = [v**2 / (k - 1) for v, k in ((vb, sb["n"]), (vn, sn["n"])) if k > 1 and v > 0]
    df = (vb + vn) ** 2 / sum(terms) if terms else 1.0
    return d, float(t.ppf(0.5 + confidence / 2, df)) * math.sqrt(vb + vn)


def _accuracy(key: str, b: dict, n: dict, effect: float) -> Row:
    d, half = welch_interval(b, n)
    gain = d if n["better"] == "higher" else -d
    spread = lambda m: f"{_fmt(m['summary']['mean'])} ±{m['summary']['stderr']:.2g} (n={m['summary']['n']})"
    verdict, note = "unchanged", ""
    outside = abs(d) > half
    if outside and abs(d) >= effect:
        verdict = "improved" if gain > 0 else "regressed"
    elif abs(d) >= effect:
        note = f"within the {ACCURACY_CONFIDENCE:.0%} interval (±{half:.3g})"
    elif outside:
        note = f"outside the interval but below the {effect:g} minimum effect"
    return Row(key, n["kind"], spread(b), spread(n), f"{d:+.4f}", None, verdict, note)


def _count(key: str, b: dict, n: dict) -> Row:
    vb, vn = sorted(set(b["samples"])), sorted(set(n["samples"]))
    show = lambda vs: ", ".join(f"{v:,.0f}" if float(v).is_integer() else _fmt(v) for v in vs)
    same = vb == vn
    change = "=" if same else (f"x{vn[0] / vb[0]:.4f}" if len(vb) == len(vn) == 1 and vb[0] else "changed")
    note = "" if same else "counts compare exactly: refresh the baseline if the change is intended"
    return Row(key, "count", show(vb), show(vn), change, None, "unchanged" if same else "regressed", note)


RELATIVE = ("time", "throughput", "ratio")


def pooled(bases: list[dict]) -> dict[str, dict]:
    """The baseline's metrics from one or more results files of good runs: the latest run's
    entries; for timings, every run's samples pooled and each run's median kept (run_medians)."""
    bases = sorted(bases, key=lambda d: d["created"])
    out = {}
    for key, m in metrics_by_key(bases[-1]).items():
        if m["kind"] in RELATIVE and len(bases) > 1:
            runs = [metrics_by_key(d).get(key) for d in bases]
            runs = [r for r in runs if r is not None and (r["kind"], r["better"]) == (m["kind"], m["better"])]
            samples = [x for r in runs for x in r["samples"]]
            m = {**m, "samples": samples, "summary": summarize(samples)}
            m["run_medians"] = [r["summary"]["median"] for r in runs]
        out[key] = m
    return out


def compare(
    base: dict | list[dict], new: dict, alpha: float = ALPHA, min_effect: dict | None = None
) -> list[Row]:
    """Rows of verdicts. `base`: one results document, or several of good runs (pooled)."""
    effects = {**MIN_EFFECT, **(min_effect or {})}
    mb, mn = pooled(base if isinstance(base, list) else [base]), metrics_by_key(new)
    rows = []
    for key, b in mb.items():
        n = mn.get(key)
        if n is None:
            rows.append(Row(key, b["kind"], _spread(b), "-", "", None, "regressed", "absent from NEW"))
        elif b["kind"] != n["kind"] or b["better"] != n["better"]:
            rows.append(
                Row(key, n["kind"], _spread(b), _spread(n), "", None, "regressed",
                    f"kind changed ({b['kind']}/{b['better']} -> {n['kind']}/{n['better']})")
            )  # fmt: skip
        elif n["kind"] == "count":
            rows.append(_count(key, b, n))
        elif n["kind"] == "accuracy":
            rows.append(_accuracy(key, b, n, effects["accuracy"]))
        else:
            rows.append(_relative(key, b, n, alpha, effects[n["kind"]]))
    for key, n in mn.items():
        if key not in mb:
            rows.append(Row(key, n["kind"], "-", _spread(n), "", None, "new", "not in BASELINE"))
    return rows


def _ident(doc: dict) -> str:
    dirty = " (dirty)" if doc["git"]["dirty"] else ""
    return f"{doc['suite']} @ {doc['git']['commit'][:10]}{dirty} {doc['created']}"


def header(base: dict | list[dict], new: dict) -> list[str]:
    bases = sorted(base if isinstance(base, list) else [base], key=lambda d: d["created"])
    base = bases[-1]  # machine and load checks: against the latest baseline run
    lines = [f"baseline: {_ident(base)}", f"new:      {_ident(new)}"]
    if len(bases) > 1:
        lines[0] += f" (latest of {len(bases)} runs pooled, from {bases[0]['created']})"
    if base["suite"] != new["suite"]:
        lines.append(f"warning: different suites ({base['suite']} vs {new['suite']})")
    diff = machine_differences(base["machine"], new["machine"])
    if diff:
        lines.append("warning: the machines differ, timings are not comparable: " + "; ".join(diff))
    for label, doc in (("baseline", base), ("new", new)):
        m = doc["machine"]
        load = max(m.get("load_average_start", 0.0), m.get("load_average_end", 0.0))
        if load > m["cpus"]:
            lines.append(
                f"warning: the {label} run was on a busy machine (load average {load:.1f} on {m['cpus']} "
                "cores): other work slows its timings, often by more than the minimum effect"
            )
    return lines


COLUMNS = ("metric", "kind", "baseline", "new", "change", "p", "verdict", "note")


def _cells(r: Row) -> tuple[str, ...]:
    return (r.key, r.kind, r.base, r.new, r.change, "" if r.p is None else f"{r.p:.3g}", r.verdict.upper()
            if r.verdict == "regressed" else r.verdict, r.note)  # fmt: skip


def table(rows: list[Row]) -> str:
    cells = [COLUMNS, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: list[Row], head: list[str]) -> str:
    out = ["# rbench bench compare", "", *(f"- {h}" for h in head), ""]
    out.append("| " + " | ".join(COLUMNS) + " |")
    out.append("|" + "---|" * len(COLUMNS))
    out += ["| " + " | ".join(c.replace("|", "/") for c in _cells(r)) + " |" for r in rows]
    counts = {v: sum(r.verdict == v for r in rows) for v in ("regressed", "improved", "unchanged", "new")}
    out += ["", ", ".join(f"{n} {v}" for v, n in counts.items())]
    return "\n".join(out) + "\n"
