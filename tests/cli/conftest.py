"""Fixtures and helpers of the command-line tests: run ``alzmri`` through :func:`alzmri.cli.main`."""

import pytest

from _helpers import copy_subset


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
