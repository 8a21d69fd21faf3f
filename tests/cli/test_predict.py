"""`alzmri predict` and `alzmri export` on bad input: one line, exit code 2."""

from _helpers import assert_one_line_error, run_cli


def test_predict_bad_input(capsys, tmp_path, earlier_run):
    code, _, err = run_cli(capsys, "predict", earlier_run, tmp_path / "x.jpg")
    assert_one_line_error(code, err, r"not a finished run folder")
    code, _, err = run_cli(capsys, "predict", earlier_run, tmp_path / "x.jpg", "--brain", "--cam", tmp_path / "cams")
    assert_one_line_error(code, err, r"--cam explains single slices; drop it with --brain")


def test_export_bad_input(capsys, tmp_path, earlier_run):
    code, _, err = run_cli(capsys, "export", earlier_run, "--onnx", tmp_path / "m.onnx")
    assert_one_line_error(code, err, r"not a finished run folder")
    assert not (tmp_path / "m.onnx").exists()
