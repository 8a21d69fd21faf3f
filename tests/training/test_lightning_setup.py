"""The Lightning set-up of a run: the determinism setting and the quieted loggers."""

from __future__ import annotations

import logging

import pytest
import torch

from alzmri.training.lightning_setup import quiet_lightning, resolve_deterministic


@pytest.mark.parametrize("cuda, accelerator, setting, expected", [
    (False, "auto", None, True), (False, "cpu", False, False), (False, "auto", True, True),
    (True, "auto", None, False), (True, "gpu", True, "warn"), (True, "cuda", False, False),
    (True, "cpu", None, True), (True, "cpu", True, True),  # a CPU run on a GPU machine
])
def test_resolve_deterministic(monkeypatch, cuda, accelerator, setting, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    result = resolve_deterministic(setting, accelerator)
    assert (result, type(result)) == (expected, type(expected))


def test_quiet_lightning_raises_the_info_loggers_to_warning():
    name = "lightning.pytorch.utilities.rank_zero"
    before = logging.getLogger(name).level
    try:
        logging.getLogger(name).setLevel(logging.INFO)
        quiet_lightning()
        assert logging.getLogger(name).level == logging.WARNING
    finally:
        logging.getLogger(name).setLevel(before)
