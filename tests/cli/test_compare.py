"""`alzmri compare` on a bad config: one line, exit code 2 (full runs: tests/comparison/)."""

from _helpers import assert_one_line_error, run_cli


def test_compare_bad_config(capsys, tmp_path):
    code, _, err = run_cli(capsys, "compare", "--config", tmp_path / "missing.yaml")
    assert_one_line_error(code, err, r"missing.yaml: config file not found")
    (tmp_path / "c.yaml").write_text("- a list\n")
    code, _, err = run_cli(capsys, "compare", "--config", tmp_path / "c.yaml")
    assert_one_line_error(code, err, r"c.yaml: a config must be a YAML mapping")
