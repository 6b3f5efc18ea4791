"""The short Markdown summary: the headline per task and checkpoint, the fits, what failed."""

from __future__ import annotations

import re
import time

import pandas as pd

from reports.html import headline
from reports.recursion import describe_ladder


def plain(html_text: str) -> str:
    return re.sub(r"<[^>]+>", "", html_text).replace("&amp;", "&").replace("&#x27;", "'")


def markdown(*, title: str, source: str, table: pd.DataFrame, analyses: list, html_name: str) -> str:
    n = len(table)
    done = int((table["status"] == "FINISHED").sum()) if n else 0
    lines = [
        f"# {title}",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} from "
        f"{source}: {n} runs, {done} finished. Full report with figures: `{html_name}`.",
        "",
    ]
    if not analyses:
        lines.append("No finished runs with an evaluation yet.")
    for ta in analyses:
        lines += [f"## {ta.task} ({ta.checkpoint_name} checkpoint)", ""]
        lines += [f"- {plain(s)}" for s in headline(ta).split("<br>")]
        if ta.ladder:
            lines.append(f"- Which recursion the gain comes from: {describe_ladder(ta.ladder)}.")
        for f in ([ta.power] if ta.power is not None else []) + list(ta.depth.values()):
            lines.append(f"- {f.describe()}")
        lines.append("")
        lines += [
            "| configuration | params | eff. depth | seeds | exact acc. | 95% interval | per seed (%) |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        for r in ta.configs.itertuples():
            lines.append(
                f"| {r.label} | {int(r.num_parameters):,} | {r.effective_depth:g} | {r.seeds} | "
                f"{100 * r.accuracy:.1f}% | {100 * r.low:.1f}-{100 * r.high:.1f}% ({r.interval}) | "
                f"{r.per_seed} |"
            )
        lines.append("")
    bad = table[table["status"] != "FINISHED"] if n else table
    if len(bad):
        lines += ["## Failed or unfinished runs", ""]
        lines += [
            f"- {r.run_name} ({r.run_id[:8]}, {r.status}): {r.failure_reason or 'no reason recorded'}"
            for r in bad.itertuples()
        ]
    return "\n".join(lines) + "\n"
