"""`rbench bench compare` on recorded sample sets, the results file's validation, and history.

tests/harness/bench_samples/smoke-{a,b}.json are two real `rbench bench run --suite smoke` runs of
the same code, one after the other on the shared 2-core development VM (load average ~6), and
smoke-c.json a third, half an hour later (load average 3). Nothing is timed inside the tests.
The planted regressions transform a copy of run b.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness.benchsuite import compare as cmp
from harness.benchsuite import results
from harness.cli import main
from harness.errors import UserError

SAMPLES = Path(__file__).resolve().parent / "bench_samples"
TIMINGS = ("time", "throughput", "ratio")
# the micro-benchmarks quiet enough (noise well under the 10% minimum effect) that a 20% slowdown
# must be caught on them
MUST_CATCH = [
    "matmul-384/flops_per_s",
    "train-step/trm/step_s",
    "train-step/trm/step_cpu_s",
    "train-step/trm/flops_per_s",
    "train-step/transformer/step_s",
    "train-step/transformer/step_cpu_s",
    "train-step/transformer/flops_per_s",
    "data-build/sudoku-4x4/build_cpu_s",
]


@pytest.fixture(scope="module")
def runs():
    return results.read(SAMPLES / "smoke-a.json"), results.read(SAMPLES / "smoke-b.json")


def planted(doc: dict, change) -> dict:
    """A copy of `doc` with change(metric) -> new samples applied to every metric (None: keep)."""
    out = copy.deepcopy(doc)
    for b in out["benchmarks"]:
        for m in b["metrics"]:
            new = change(m)
            if new is not None:
                m["samples"] = [float(x) for x in new]
                m["summary"] = results.summarize(m["samples"])
    return results.validate(out, "planted")


def slowdown(doc: dict, factor: float = 1.2) -> dict:
    """Everything takes `factor` times longer: times x factor, rates / factor; the fraction of
    matmul (both the step and the matmul slowed) is left, and so are counts and accuracies."""

    def change(m):
        if m["kind"] == "time" or (m["kind"] == "ratio" and m["better"] == "lower"):
            return [x * factor for x in m["samples"]]
        if m["kind"] == "throughput":
            return [x / factor for x in m["samples"]]
        return None

    return planted(doc, change)


def verdicts(rows) -> dict[str, str]:
    return {r.key: r.verdict for r in rows}


def test_two_runs_of_the_same_code_are_not_flagged(runs):
    a, b = runs
    rows = cmp.compare(a, b)
    assert len(rows) == len(results.metrics_by_key(a)) > 30
    assert [r.key for r in rows if r.verdict == "regressed"] == []
    # and the other way round
    assert [r.key for r in cmp.compare(b, a) if r.verdict == "regressed"] == []


def test_a_planted_20_percent_slowdown_is_flagged(runs):
    a, b = runs
    v = verdicts(cmp.compare(a, slowdown(b)))
    missed = [k for k in MUST_CATCH if v[k] != "regressed"]
    assert not missed, f"a 20% slowdown not flagged on {missed}"
    # nothing but timings regresses: counts and accuracies were not touched
    metrics = results.metrics_by_key(a)
    assert all(metrics[k]["kind"] in TIMINGS for k, x in v.items() if x == "regressed")
    # a 5% slowdown is below the minimum effect: nothing is flagged
    assert "regressed" not in verdicts(cmp.compare(a, slowdown(b, 1.05))).values()


def test_a_planted_accuracy_drop_is_flagged_and_a_small_one_is_not(runs):
    a, b = runs

    def drop(by):
        return lambda m: [x - by for x in m["samples"]] if m["name"] == "token_accuracy" else None

    key = "accuracy/trm-sudoku-4x4/token_accuracy"
    v = verdicts(cmp.compare(a, planted(b, drop(0.10))))
    assert v[key] == "regressed"
    assert [k for k, x in v.items() if x == "regressed"] == [key]
    assert verdicts(cmp.compare(a, planted(b, drop(-0.10))))[key] == "improved"
    assert verdicts(cmp.compare(a, planted(b, drop(0.01))))[key] == "unchanged"  # < 0.02 minimum
    # a drop the seeds' spread covers is not flagged either: spread the seeds of b widely
    wide = planted(b, lambda m: [0.55, 0.70, 0.85] if m["name"] == "token_accuracy" else None)
    row = next(r for r in cmp.compare(a, planted(wide, drop(0.05))) if r.key == key)
    assert row.verdict == "unchanged" and "interval" in row.note


def test_counts_compare_exactly(runs):
    a, b = runs
    key = "counts/hrm-sudoku-4x4/parameters"
    one_more = planted(b, lambda m: [m["samples"][0] + 1] if m["name"] == "parameters" else None)
    v = verdicts(cmp.compare(a, one_more))
    assert v[key] == "regressed"
    assert verdicts(cmp.compare(a, b))[key] == "unchanged"


def test_missing_metric_regresses_new_metric_does_not(runs):
    a, b = runs
    fewer = copy.deepcopy(b)
    fewer["benchmarks"] = [x for x in fewer["benchmarks"] if x["name"] != "matmul-384"]
    v = verdicts(cmp.compare(a, fewer))
    assert v["matmul-384/flops_per_s"] == "regressed"
    assert verdicts(cmp.compare(fewer, a))["matmul-384/flops_per_s"] == "new"


def test_several_baseline_runs_absorb_drift_between_good_runs(runs):
    a, b = runs
    c = results.read(SAMPLES / "smoke-c.json")
    # one baseline run on a quieter machine: the busier run b is flagged, on timings only
    alone = [r for r in cmp.compare(c, b) if r.verdict == "regressed"]
    assert alone and all(r.kind in TIMINGS for r in alone)
    # two good runs, a (busy) and c (quiet): the spread of their medians is tolerated ...
    assert [r.key for r in cmp.compare([a, c], b) if r.verdict == "regressed"] == []
    # ... and a 20% slowdown on top of the busier run is still caught
    v = verdicts(cmp.compare([c, a], slowdown(b)))
    assert [k for k in MUST_CATCH if v[k] != "regressed"] == []
    pooled = cmp.pooled([a, c])["train-step/trm/step_s"]
    assert pooled["summary"]["n"] == 12 and len(pooled["run_medians"]) == 2


def test_baseline_folder_on_the_command_line(tmp_path, capsys):
    folder = tmp_path / "good"
    folder.mkdir()
    for name in ("smoke-a.json", "smoke-c.json"):
        (folder / name).write_text((SAMPLES / name).read_text())
    assert main(["bench", "compare", str(folder), str(SAMPLES / "smoke-b.json")]) == 0
    assert "latest of 2 runs pooled" in capsys.readouterr().out
    other = json.loads((SAMPLES / "smoke-b.json").read_text())
    other["suite"] = "nightly"
    (folder / "other.json").write_text(json.dumps(other))
    assert main(["bench", "compare", str(folder), str(SAMPLES / "smoke-b.json")]) == 2
    assert "results of several suites" in capsys.readouterr().err


def test_too_few_samples_cannot_be_significant():
    assert cmp.min_p(3, 3) == pytest.approx(0.1)
    assert cmp.min_p(5, 5) < cmp.ALPHA


def test_cli_exit_codes_table_and_machine_warning(runs, tmp_path, capsys):
    a, b = runs
    assert main(["bench", "compare", str(SAMPLES / "smoke-a.json"), str(SAMPLES / "smoke-b.json")]) == 0
    out = capsys.readouterr()
    assert "matmul-384/flops_per_s" in out.out and "0 regressed" in out.out
    assert "machines differ" not in out.err

    slow = slowdown(b)
    slow["machine"]["cpu_model"] = "Some Other CPU"
    results.write(slow, tmp_path / "slow.json")
    report = tmp_path / "report.md"
    code = main(
        [
            "bench",
            "compare",
            str(SAMPLES / "smoke-a.json"),
            str(tmp_path / "slow.json"),
            "--report",
            str(report),
        ]
    )
    assert code == 1
    out = capsys.readouterr()
    assert "REGRESSED" in out.out
    assert "warning: the machines differ" in out.err and "Some Other CPU" in out.err
    # both recorded runs had load average ~6 on 2 cores
    assert "the baseline run was on a busy machine (load average 6.5 on 2 cores)" in out.err
    assert "| train-step/trm/step_s | time |" in report.read_text()
    # a larger minimum effect lets a 20% slowdown through
    code = main(
        [
            "bench",
            "compare",
            str(SAMPLES / "smoke-a.json"),
            str(tmp_path / "slow.json"),
            "--min-effect",
            "time=0.3",
            "--min-effect",
            "throughput=0.3",
            "--min-effect",
            "ratio=0.3",
        ]
    )
    assert code == 0
    capsys.readouterr()


def test_bad_files_are_one_line_exit_2(tmp_path, capsys):
    doc = json.loads((SAMPLES / "smoke-a.json").read_text())
    del doc["benchmarks"][1]["metrics"][0]["samples"]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"bad.json: benchmarks\[1\].metrics\[0\]: 'samples' is a required"):
        results.read(tmp_path / "bad.json")
    assert main(["bench", "compare", str(tmp_path / "bad.json"), str(SAMPLES / "smoke-b.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.json" in err[0]

    doc = json.loads((SAMPLES / "smoke-a.json").read_text())
    doc["benchmarks"][0]["metrics"][0]["summary"]["n"] = 99
    (tmp_path / "n.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"summary.n: expected 8"):
        results.read(tmp_path / "n.json")
    doc["schema_version"] = 2
    (tmp_path / "v2.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match="schema_version: expected 1"):
        results.read(tmp_path / "v2.json")
    with pytest.raises(UserError, match="file not found"):
        results.read(tmp_path / "none.json")
    doc = json.loads((SAMPLES / "smoke-a.json").read_text())
    doc["benchmarks"][0]["metrics"][0]["kind"] = "speed"
    with pytest.raises(UserError, match=r"kind: 'speed' is not one of"):
        results.write(doc, tmp_path / "w.json")  # validated on write too
    assert not (tmp_path / "w.json").exists()
    assert (
        main(
            [
                "bench",
                "compare",
                str(SAMPLES / "smoke-a.json"),
                str(SAMPLES / "smoke-b.json"),
                "--min-effect",
                "speed=1",
            ]
        )
        == 2
    )


def test_history_plots_a_metric_across_files(tmp_path, capsys):
    for name in ("smoke-a.json", "smoke-b.json"):
        (tmp_path / name).write_text((SAMPLES / name).read_text())
    assert main(["bench", "history", str(tmp_path), "--metric", "train-step/trm/step_s"]) == 0
    png = tmp_path / "train-step_trm_step_s.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "2 results files" in capsys.readouterr().out
    assert main(["bench", "history", str(tmp_path), "--metric", "no/such"]) == 2
    assert "metrics found" in capsys.readouterr().err


def test_missing_baseline_is_an_error_unless_told_to_warn(tmp_path, capsys):
    new, missing = str(SAMPLES / "smoke-b.json"), str(tmp_path / "baselines" / "nightly.json")
    assert main(["bench", "compare", missing, new]) == 2
    assert "file not found" in capsys.readouterr().err
    report = tmp_path / "report.md"
    code = main(["bench", "compare", missing, new, "--missing-baseline", "warn", "--report", str(report)])
    assert code == 0
    err = capsys.readouterr().err
    assert "no baseline" in err and "nothing compared" in err
    assert "No baseline" in report.read_text()
    # the new results are still validated: a broken file is not waved through
    (tmp_path / "bad.json").write_text("{}")
    assert main(["bench", "compare", missing, str(tmp_path / "bad.json"), "--missing-baseline", "warn"]) == 2
