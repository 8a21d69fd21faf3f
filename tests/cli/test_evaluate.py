"""`alzmri evaluate` and `alzmri calibrate` on folders that are not finished runs: one line, exit code 2."""

from _helpers import assert_one_line_error, run_cli


def test_evaluate_bad_input(capsys, tmp_path, earlier_run):
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "no-run")
    assert_one_line_error(code, err, r"run folder not found")
    code, _, err = run_cli(capsys, "evaluate", earlier_run)
    assert_one_line_error(code, err, r"not a finished run folder \(no run.json\)")
    code, _, err = run_cli(capsys, "evaluate", earlier_run, "--split", "dev")
    assert_one_line_error(code, err, r"--split must be test, val or train; got 'dev'")


def test_calibrate_bad_input(capsys, tmp_path):
    code, _, err = run_cli(capsys, "calibrate", tmp_path / "no-run")
    assert_one_line_error(code, err, r"run folder not found")
