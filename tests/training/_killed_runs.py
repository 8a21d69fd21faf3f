"""Real ``alzmri train`` processes that tests kill, interrupt or poison, and what they leave behind.

Shared by tests/training/test_checkpointing.py, test_resume.py and test_signals.py. Every
run is a real ``alzmri train`` process on 80 real slices of alzheimer-mri-6400 (20 per
class, every 3rd file), 32 x 32, AltzCNN, batch 16, 3 epochs of 4 steps. The test hooks
of tests/_train_hooks.py slow a run down, stall a checkpoint write or put NaN in the
weights, so that it can be killed at a chosen moment; they change no number.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from _train_hooks import SCRIPT as HOOKS_SCRIPT
from _helpers import copy_subset

EPOCHS = 3
#: metrics.json keys that may differ between two identical runs: wall-clock, memory, the folder
VOLATILE = {"run", "train_time_s", "peak_memory_mb"}


def run_setup(data_6400: Path, tmp_path_factory) -> tuple[Path, dict]:
    """(config file, environment for the subprocesses); made once per session, in the session's temp folder."""
    root = tmp_path_factory.getbasetemp() / "killed-runs"
    cfg = root / "run.yaml"
    if not cfg.is_file():
        data = copy_subset(data_6400, root / "data", 20, stride=3)
        cfg.write_text(yaml.safe_dump({
            "data": str(data), "epochs": EPOCHS, "batch_size": 16, "image_size": 32, "lr": 3e-4, "seed": 0,
            "model_kwargs": {"init": "he"},  # dropout on: the resumed run must restore the generators
        }))
    env = dict(os.environ)
    # the session's cache (as tests/conftest.py's autouse fixture), one thread: the runs are
    # tiny and the machine may be busy; the same setting for every run keeps them comparable
    env.update(ALZMRI_CACHE_DIR=str(tmp_path_factory.getbasetemp() / "alzmri-cache"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return cfg, env


def reference_run(setup, tmp_path_factory) -> Path:
    """The run, uninterrupted; trained once per session."""
    out = tmp_path_factory.getbasetemp() / "killed-runs" / "reference"
    if not (out / "metrics.json").is_file():
        res = run(setup, "--out", str(out))
        assert res.returncode == 0, res.stderr
    return out


def cmd(*args: str, hooks: tuple[str, ...] = ()) -> list[str]:
    """``alzmri train ARGS`` in a new Python process; through the hook launcher when ``hooks`` are given."""
    if hooks:
        return [sys.executable, HOOKS_SCRIPT, *hooks, "train", *args]
    return [sys.executable, "-m", "alzmri", "train", *args]


def run(setup, *args: str, hooks: tuple[str, ...] = (), timeout: float = 300) -> subprocess.CompletedProcess:
    cfg, env = setup
    return subprocess.run(cmd("--config", str(cfg), "--no-progress", *args, hooks=hooks), env=env, capture_output=True, text=True,
                          timeout=timeout)


def resume(setup, out: Path) -> subprocess.CompletedProcess:
    _, env = setup
    return subprocess.run(cmd("--out", str(out), "--resume", "--no-progress"), env=env, capture_output=True, text=True, timeout=300)


def start(setup, out: Path, hooks: tuple[str, ...], err_file: Path, *args: str) -> subprocess.Popen:
    """Start ``alzmri train`` with ``hooks`` into ``out`` (stderr to ``err_file``); the launcher resets SIGINT to Ctrl-C."""
    cfg, env = setup
    with err_file.open("w") as err:
        return subprocess.Popen(cmd("--config", str(cfg), "--out", str(out), "--no-progress", *args, hooks=hooks), env=env,
                                stdout=subprocess.DEVNULL, stderr=err)


def wait_for(proc: subprocess.Popen, err_file: Path, marker: str, timeout: float = 240) -> str:
    """Poll the process's stderr until ``marker`` appears; the text so far."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = err_file.read_text()
        if marker in text:
            return text
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {marker!r}:\n{text}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no {marker!r} within {timeout} s:\n{err_file.read_text()}")


def kill(proc: subprocess.Popen, sig: int) -> int:
    """Send ``sig``; the exit code (killed anyway if it has not ended after 120 s)."""
    try:
        os.kill(proc.pid, sig)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("alzmri-test-hook:")]


def history(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open() as f:
        return list(csv.DictReader(f))


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def metrics(run_dir: Path):
    def strip(d):
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in VOLATILE}
        return [strip(v) for v in d] if isinstance(d, list) else d

    return strip(json.loads((run_dir / "metrics.json").read_text()))


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_same_as_reference(run_dir: Path, reference: Path) -> None:
    assert (run_dir / "manifest.csv").read_bytes() == (reference / "manifest.csv").read_bytes()
    assert (run_dir / "history.csv").read_bytes() == (reference / "history.csv").read_bytes()
    assert len(history(run_dir)) == EPOCHS
    assert (run_dir / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert same_weights(load(run_dir / "checkpoints" / "last.ckpt")["state_dict"], load(reference / "checkpoints" / "last.ckpt")["state_dict"])
    assert metrics(run_dir) == metrics(reference)
    info, ref_info = (json.loads((r / "run.json").read_text()) for r in (run_dir, reference))
    assert info["epochs_run"] == EPOCHS and info["best_epoch"] == ref_info["best_epoch"]
