"""The entry point (alzmri.cli.main, python -m alzmri): usage and user errors exit 2 without a traceback."""

import os
import re
import subprocess
import sys

import pytest

from _helpers import run_cli


def test_console_script_exit_code_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "alzmri", "data", "inspect", str(tmp_path / "missing")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["predict", "somewhere"], ["train", "--bogus", "1"], ["fly"], ["train", "--epochs", "two"]])
def test_usage_errors_exit_2_without_traceback(capsys, args):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert "Traceback" not in out + err and "Usage" in out + err


def test_help_lists_the_commands_in_order_without_importing_torch():
    code = ("import sys; from alzmri.cli import main; code = main(['--help']); "
            "heavy = [m for m in ('torch', 'lightning') if m in sys.modules]; print(code, heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    assert proc.stdout.strip().endswith("0 []"), proc.stdout + proc.stderr
    commands = [m.group(1) for m in (re.match(r"│ (\w+) ", line) for line in proc.stdout.splitlines()) if m]
    assert commands == ["train", "evaluate", "predict", "export", "calibrate", "serve", "models", "compare", "data"]

