"""`build_report`: MLflow -> run table -> intervals and fits -> figures -> HTML + Markdown (+ CSV,
Parquet), logged on the sweep's MLflow parent run when there is one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from reports import figures as F
from reports import html as H
from reports.analysis import analyse
from reports.recursion import describe_comparison, describe_ladder
from reports.summary import markdown, plain
from reports.table import export, load_runs


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    csv: Path
    parquet: Path
    figures: list[Path]
    parent_run_id: str | None  # the sweep parent run the files were logged on, if any
    headlines: list[str] = field(default_factory=list)  # per task: the comparison and the ladder


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", s).strip("-") or "task"


def build_report(
    uri: str,
    out_dir: Path,
    *,
    experiment: str | None = None,
    sweep: str | None = None,
    filter_string: str = "",
    title: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    log_to_parent: bool = True,
) -> ReportFiles:
    """Write report.html, report.md, runs.csv, runs.parquet and figures/*.png under `out_dir`.

    `uri`: any MLflow tracking URI. Runs are those of `experiment` (every experiment when None),
    of sweep id `sweep` when given, matching the MLflow `filter_string`."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    data = load_runs(uri, experiment, sweep=sweep, filter_string=filter_string)
    source = (
        f"MLflow {uri}"
        + (f", experiment {experiment}" if experiment else "")
        + (f", sweep {sweep}" if sweep else "")
        + (f", filter {filter_string}" if filter_string else "")
    )
    title = title or (
        f"rbench scaling report: sweep {sweep}"
        if sweep
        else f"rbench scaling report: {experiment or 'all experiments'}"
    )
    finals = analyse(data, "final", n_boot, seed)
    bests = {ta.task: ta for ta in analyse(data, "best", n_boot, seed)}
    sections, paths, summary, headlines = [], [], [], []
    for ta in finals:
        if ta.comparison is not None:
            headlines.append(f"{ta.task} ({ta.checkpoint_name}): {describe_comparison(ta.comparison)}")
        if ta.ladder:
            headlines.append(f"{ta.task}: which recursion the gain comes from: {describe_ladder(ta.ladder)}")
        slug = _slug(ta.task)
        figs = [
            f
            for f in (
                F.configurations_figure(ta, slug),
                F.params_figure(ta, slug),
                F.depth_figure(ta, slug),
                F.compute_figure(ta, slug, "train_flops"),
                F.compute_figure(ta, slug, "inference_flops_per_example"),
                F.curves_figure(data.table, data.histories, ta.task, slug),
                F.test_time_figure(data.test_time, data.table, ta.task, slug),
            )
            if f is not None
        ]
        for f in figs:
            p = fig_dir / f"{f.name}.png"
            p.write_bytes(f.png)
            paths.append(p)
        best = bests.get(ta.task)
        sections.append(H.task_section(ta, best, figs, data.table))
        summary.append(f"<code>{H.esc(ta.task)}</code>: " + H.headline(ta))
        if best is not None:
            summary.append(f"<code>{H.esc(ta.task)}</code>: " + H.headline(best))
    if not finals:
        summary.append("No finished runs with an evaluation yet.")
    page = H.render(
        title=title,
        source=source,
        table_=data.table,
        sections=sections,
        expected=data.expected_trials,
        summary_lines=summary,
    )
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    html_path.write_text(page)
    md_path.write_text(
        markdown(
            title=title,
            source=source,
            table=data.table,
            analyses=finals + list(bests.values()),
            html_name=html_path.name,
        )
    )
    csv, pq = (
        export(data.table, out_dir)
        if not data.table.empty
        else (out_dir / "runs.csv", out_dir / "runs.parquet")
    )
    if data.table.empty:
        csv.write_text("")
        data.table.to_parquet(pq)
    logged = None
    if log_to_parent and data.parent_run_id:
        from harness.tracking import client

        c = client(uri)
        for p in (html_path, md_path, csv, pq):
            c.log_artifact(data.parent_run_id, str(p), "report")
        logged = data.parent_run_id
    return ReportFiles(html_path, md_path, csv, pq, paths, logged, headlines)


__all__ = ["build_report", "ReportFiles", "plain"]
