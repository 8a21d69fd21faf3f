"""Fixtures and helpers of the command-line tests: run ``alzmri`` through :func:`alzmri.cli.main`."""

import hashlib
import re

import pytest

from alzmri.cli import main
from conftest import copy_subset


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_one_line_error(code, err, pattern):
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]


def tree_digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def data(tmp_path, data_6400):
    return copy_subset(data_6400, tmp_path / "data", 6)


@pytest.fixture
def earlier_run(tmp_path):
    run = tmp_path / "runs" / "earlier"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"accuracy": 0.9}')
    (run / "model.safetensors").write_bytes(b"weights")
    return run
