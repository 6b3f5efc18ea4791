"""Reports: MLflow runs -> tidy run table -> intervals and fits -> figures -> HTML and Markdown.

table      MLflow (any URI) -> one tidy pandas row per run (+ histories, per-example bits)
intervals  two-level bootstrap over seeds and test puzzles
fits       Huber / L-BFGS scaling laws with bootstrap intervals
analysis   configurations (seeds pooled) + the fits per task
figures    matplotlib PNGs     html / summary   the report     build   build_report()
"""

from __future__ import annotations


def build_report(*args, **kwargs):
    """See reports.build.build_report (imported lazily: matplotlib and scipy are heavy)."""
    from reports.build import build_report as _build

    return _build(*args, **kwargs)
