"""`rbench data list|build|show|export`."""

from __future__ import annotations


from harness.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_tasks_and_shapes(capsys):
    code, out, _ = run(capsys, "data", "list")
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("sudoku-extreme "))
    assert line.split()[1:4] == ["81", "11", "1"]
    assert any(x.startswith("arc-agi-2 ") for x in out.splitlines())


def test_build_twice_then_show(capsys, tmp_path):
    args = ["sudoku-4x4", "train_size=30", "test_size=5", "--runs-dir", str(tmp_path)]
    code, out, _ = run(capsys, "data", "build", *args)
    assert code == 0 and "built in" in out and "train 30, test 5" in out
    code, out, _ = run(capsys, "data", "build", *args)
    assert code == 0 and "cached (nothing to do)" in out
    code, out, _ = run(capsys, "data", "show", *args, "-n", "2")
    assert code == 0 and out.count("puzzle id") == 2 and "-+-" in out and "solution" in out


def test_experiment_file_and_task_prefix(capsys, tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"runs_dir: {tmp_path / 'r'}\nmodel: {{arch: transformer}}\n"
        "task: {name: parity-24, train_size: 50, test_size: 10}\n"
    )
    code, out, err = run(capsys, "data", "build", str(exp), "task.test_size=12")
    assert code == 0, err
    assert "test 12" in out and str(tmp_path / "r" / "data") in out


def test_user_errors_are_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "data", "build", "sudoku-4x4", "colour=3", "--runs-dir", str(tmp_path))
    assert code == 2 and "task.colour" in err and err.count("\n") == 1
    code, _, err = run(capsys, "data", "build", "sudoku-extreme", "--runs-dir", str(tmp_path))
    assert code == 2 and "--from" in err and err.count("\n") == 1
    code, _, err = run(
        capsys, "data", "export", "parity-24", "--out", str(tmp_path / "x.csv"), "--runs-dir", str(tmp_path)
    )
    assert code == 2 and "export" in err


def test_from_file_options_in_any_order(capsys, tmp_path):
    f = tmp_path / "s.csv"
    f.write_text(
        "source,question,answer,rating\n"
        + "".join(f"r{i},1..........3....,1234341221434321,{i}\n" for i in range(6))
    )
    code, out, err = run(
        capsys,
        "data",
        "build",
        "sudoku-extreme",
        "--from",
        str(f),
        "size=4",
        "train_size=4",
        "augmentations=1",
        "--runs-dir",
        str(tmp_path),
    )
    assert code == 0, err
    assert "train 8, test 2" in out
