"""`alzmri serve` on bad input: one line, exit code 2, nothing served."""

from _helpers import assert_one_line_error, run_cli


def test_serve_bad_input(capsys, tmp_path):
    code, _, err = run_cli(capsys, "serve", tmp_path / "missing", "--port", "8765")
    assert_one_line_error(code, err, r"run folder not found")
    code, out, err = run_cli(capsys, "serve", tmp_path, "--max-request-mb", "0")
    assert code == 2 and "Usage" in out + err and "--max-request-mb" in out + err
