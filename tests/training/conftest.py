"""Fixtures of the killed-run tests (test_checkpointing.py, test_resume.py, test_signals.py): real ``alzmri train`` processes."""

from __future__ import annotations

from pathlib import Path

import pytest

import _killed_runs as kr


@pytest.fixture(scope="module")
def setup(data_6400, tmp_path_factory):
    """The data and settings of a killed-run test module (:func:`_killed_runs.run_setup`)."""
    return kr.run_setup(data_6400, tmp_path_factory)


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory) -> Path:
    """The uninterrupted run the killed and resumed ones must equal (:func:`_killed_runs.reference_run`)."""
    return kr.reference_run(setup, tmp_path_factory)
