"""The report end to end on a synthetic MLflow study: tables, figures, fits, failures, the CLI."""

from __future__ import annotations

import base64
import io
import re

import pandas as pd

from reports import build_report
from tests.reports.conftest import SWEEP, TRANSFORMERS, TRM_DEPTHS


def test_run_table_is_tidy_and_exported(study, report):
    uri, files = report
    t = pd.read_parquet(files.parquet)
    assert len(t) == len(pd.read_csv(files.csv)) == 2 * (len(TRANSFORMERS) + len(TRM_DEPTHS)) + 1
    for col in (
        "family",
        "num_parameters",
        "puzzle_emb_parameters",
        "recursion",
        "effective_depth",
        "train_flops",
        "inference_flops_per_example",
        "seed",
        "final_exact_accuracy",
        "best_exact_accuracy",
        "best_val_exact_accuracy",
        "status",
        "failure_reason",
        "git_commit",
    ):
        assert col in t.columns, col
    trm = t[(t["arch"] == "trm") & (t["status"] == "FINISHED")]
    assert set(trm["family"]) == {"trm hidden=32 layers=2"} and set(
        t.loc[t.arch == "transformer", "family"]
    ) == {"transformer"}
    # chosen on the validation split: not the final step, and not the test set's best (20) for seed 1
    assert list(trm.sort_values("seed")["best_step"].drop_duplicates()) == [20, 10]
    assert (
        trm.loc[trm.seed == 1, "best_exact_accuracy"] < trm.loc[trm.seed == 1, "final_exact_accuracy"]
    ).all()
    assert set(trm["recurrences"]) == {T * (n + 1) for T, n in TRM_DEPTHS}


def _figures(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([^']+)'", page)]


def test_html_is_self_contained_with_every_figure_non_empty(report):
    import matplotlib.image as mpimg

    _, files = report
    page = files.html.read_text()
    assert not re.search(r"(src|href)=['\"]https?:", page)  # no network
    figs = _figures(page)
    assert len(figs) == len(files.figures) == 6  # configurations, params, depth, 2 x FLOPs, curves
    assert files.figures[0].name.endswith("-configurations.png")  # the headline comes first
    for png in figs:
        img = mpimg.imread(io.BytesIO(png))
        assert img.shape[0] > 200 and img[..., :3].std() > 0.05  # drawn, not blank


def test_tables_hold_the_runs_they_should(report):
    _, files = report
    page = files.html.read_text()
    final = page.split("Configurations, <span class='ck'>final checkpoint")[1].split("</table>")[0]
    best = page.split("Configurations, <span class='ck'>best-on-validation checkpoint")[1].split("</table>")[
        0
    ]
    n_configs = len(TRANSFORMERS) + len(TRM_DEPTHS)
    assert final.count("<tr>") - 1 == n_configs and best.count("<tr>") - 1 == n_configs
    assert final.count("seeds x puzzles") == n_configs  # every interval is two-level
    runs = page.split("id='runs'")[1]
    assert runs.count("<details>") == 2 * n_configs + 1 and "0123456789abcdef" in runs
    failed = page.split("id='failed'")[1].split("<h2")[0]
    assert "trm-diverged" in failed and "loss is nan" in failed
    assert "<b>1 missing</b>" in failed and "Trial numbers with no run: 16." in failed
    assert "look-alike" in page and "87.4" in page  # published numbers beside


def test_fits_are_reported_or_refused_in_words(report):
    _, files = report
    page = files.html.read_text()
    assert "power law in parameters" in page and "saturating law in effective depth" in page
    # only 3 transformer sizes: the phi law has enough points, the transformer hold-out does not
    assert "without the largest budget the fit needs transformers at 3 or more" in page
    assert "Exchange rate" in page and "transformer needs" in page
    md = files.markdown.read_text()
    assert "final checkpoint" in md and "best-on-validation checkpoint" in md and "trm-diverged" in md


def test_report_is_logged_on_the_sweep_parent_run(study, report):
    from harness.tracking import client

    uri, files = report
    arts = {a.path for a in client(uri).list_artifacts(files.parent_run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/runs.csv", "report/runs.parquet"} <= arts


def test_cli_writes_the_report_and_rejects_a_missing_database(study, tmp_path, capsys):
    from harness.cli import main

    runs, uri = study
    assert (
        main(
            [
                "report",
                "--sweep",
                SWEEP,
                "--uri",
                uri,
                "--out",
                str(tmp_path / "r"),
                "--bootstrap",
                "50",
                "--no-log",
            ]
        )
        == 0
    )
    assert (tmp_path / "r" / "report.html").is_file()
    assert main(["report", "--experiment", "x", "--runs-dir", str(tmp_path / "none")]) == 2
    assert "no such MLflow database" in capsys.readouterr().err


def test_an_empty_selection_still_renders(study, tmp_path):
    runs, uri = study
    files = build_report(uri, tmp_path, sweep="no-such-sweep", n_boot=20)
    assert "No finished runs" in files.html.read_text()


def test_test_time_curves_are_drawn_when_a_run_logged_them():
    from reports.figures import test_time_figure

    table = pd.DataFrame(
        [
            {"task": "t", "run_name": "r", "run_id": "a"},
            {"task": "u", "run_name": "other task", "run_id": "b"},
        ]
    )
    pts = pd.DataFrame(
        [
            {
                "run_id": "a",
                "steps": s,
                "samples": k,
                "trained_steps": 2,
                "exact_accuracy": 0.1 * s + 0.01 * k,
                "inference_flops_per_example": 1e6 * s * k,
            }
            for s, k in ((1, 1), (2, 1), (4, 1), (2, 4), (2, 16))
        ]
    )
    fig = test_time_figure(pts, table, "t", "t")
    assert fig is not None and len(fig.png) > 5000
    assert test_time_figure(pts.iloc[0:0], table, "t", "t") is None  # no grid: no figure
    assert test_time_figure(pts, table, "u", "u") is None  # not this task's runs


def test_an_explicit_family_tag_wins_over_the_derived_family():
    from reports.table import family_of

    assert family_of("trm", {"model.hidden": "64"}, "trm-wide") == ("trm-wide", "recursive")
    assert family_of("trm", {"model.hidden": "64", "model.layers": "2"}, None) == (
        "trm hidden=64 layers=2",
        "recursive",
    )
    assert family_of("transformer", {"model.hidden": "64"}, None) == ("transformer", "transformer")
