"""Runs that are killed, interrupted or diverge: atomic writes, --resume, determinism, NaN stop.

Every run is a real ``alzmri train`` process on 80 real slices of alzheimer-mri-6400
(20 per class, every 3rd file), 32 x 32, AltzCNN, batch 16, 3 epochs of 4 steps. The
test hooks of :mod:`alzmri.training.reliability` (environment variables, unset by
default) slow a run down or stall a checkpoint write so that it can be killed at a chosen
moment; they change no number.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import copy_subset

from alzmri.errors import AlzmriError
from alzmri.runs import save_weights
from alzmri.training.reliability import NAN_AT_EPOCH_ENV, STALL_CHECKPOINT_ENV, STEP_DELAY_ENV, AtomicCheckpointIO
from alzmri.utils.io import atomic_write_chunks

EPOCHS = 3
HOOKS = (STEP_DELAY_ENV, STALL_CHECKPOINT_ENV, NAN_AT_EPOCH_ENV)
#: metrics.json keys that may differ between two identical runs: wall-clock, memory, the folder
VOLATILE = {"run", "train_time_s", "peak_memory_mb"}


@pytest.fixture(scope="module")
def setup(data_6400, tmp_path_factory):
    """(config file, environment for the subprocesses)."""
    root = tmp_path_factory.mktemp("reliability")
    data = copy_subset(data_6400, root / "data", 20, stride=3)
    cfg = root / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": str(data), "epochs": EPOCHS, "batch_size": 16, "image_size": 32, "lr": 3e-4, "seed": 0,
        "model_kwargs": {"init": "he"},  # dropout on: the resumed run must restore the generators
    }))
    env = {k: v for k, v in os.environ.items() if k not in HOOKS}
    # the session's cache (as tests/conftest.py's autouse fixture), one thread: the runs are
    # tiny and the machine may be busy; the same setting for every run keeps them comparable
    env.update(ALZMRI_CACHE_DIR=str(tmp_path_factory.getbasetemp() / "alzmri-cache"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return cfg, env


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "alzmri", "train", *args]


def _run(setup, *args: str, hooks: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    cfg, env = setup
    return subprocess.run(_cmd("--config", str(cfg), "--no-progress", *args), env={**env, **(hooks or {})},
                          capture_output=True, text=True, timeout=timeout)


def _resume(setup, out: Path) -> subprocess.CompletedProcess:
    _, env = setup
    return subprocess.run(_cmd("--out", str(out), "--resume", "--no-progress"), env=env, capture_output=True, text=True, timeout=300)


def _start(setup, out: Path, hooks: dict, err_file: Path) -> subprocess.Popen:
    cfg, env = setup
    with err_file.open("w") as err:
        return subprocess.Popen(_cmd("--config", str(cfg), "--out", str(out), "--no-progress"), env={**env, **hooks},
                                stdout=subprocess.DEVNULL, stderr=err)


def _wait_for(proc: subprocess.Popen, err_file: Path, marker: str, timeout: float = 240) -> str:
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


def _kill(proc: subprocess.Popen, sig: int) -> int:
    try:
        os.kill(proc.pid, sig)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("alzmri-test-hook:")]


def _history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _metrics(run: Path):
    def strip(d):
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in VOLATILE}
        return [strip(v) for v in d] if isinstance(d, list) else d

    return strip(json.loads((run / "metrics.json").read_text()))


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory) -> Path:
    """The run, uninterrupted."""
    out = tmp_path_factory.mktemp("ref") / "run"
    res = _run(setup, "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


def _assert_same_as_reference(run: Path, reference: Path) -> None:
    assert (run / "manifest.csv").read_bytes() == (reference / "manifest.csv").read_bytes()
    assert (run / "history.csv").read_bytes() == (reference / "history.csv").read_bytes()
    assert len(_history(run)) == EPOCHS
    assert (run / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert _same_weights(_load(run / "checkpoints" / "last.ckpt")["state_dict"], _load(reference / "checkpoints" / "last.ckpt")["state_dict"])
    assert _metrics(run) == _metrics(reference)
    info, ref_info = (json.loads((r / "run.json").read_text()) for r in (run, reference))
    assert info["epochs_run"] == EPOCHS and info["best_epoch"] == ref_info["best_epoch"]


def test_same_seed_twice_gives_identical_split_and_metrics(setup, reference, tmp_path):
    again = tmp_path / "again"
    res = _run(setup, "--out", str(again))
    assert res.returncode == 0, res.stderr
    # byte-identical manifest, history and weights; metrics equal but for timings
    _assert_same_as_reference(again, reference)
    m = _metrics(reference)
    assert 0.0 <= m["balanced_accuracy"] <= 1.0 and sum(map(sum, m["confusion_matrix"])) == m["n_samples"] > 0
    # and the seed matters: the split alzmri train makes with another seed differs
    from alzmri.config import load_train_config
    from alzmri.training.train import write_split_manifest

    cfg = load_train_config(setup[0], seed=1)
    assert write_split_manifest(cfg, tmp_path / "seed1.csv").read_bytes() != (reference / "manifest.csv").read_bytes()


def test_sigkill_mid_epoch_then_resume_ends_as_if_uninterrupted(setup, reference, tmp_path):
    out, err = tmp_path / "killed", tmp_path / "killed.err"
    proc = _start(setup, out, {STEP_DELAY_ENV: "0.3"}, err)
    _wait_for(proc, err, "alzmri-test-hook: epoch 2 step 2")  # epoch 1 checkpointed, epoch 2 half done
    manifest, config, first_epoch = (out / "manifest.csv").read_bytes(), (out / "config.yaml").read_bytes(), _history(out)
    assert _kill(proc, signal.SIGKILL) == -signal.SIGKILL
    assert "epoch 2 step 4" not in err.read_text()  # killed before epoch 2 ended

    # what the killed run left: epoch 1 complete, nothing of epoch 2, no final artifacts
    last = _load(out / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 0 and len(last["callbacks"]["alzmri.RunState"]["history"]) == 1
    assert len(first_epoch) == 1 and _history(out) == first_epoch
    assert not (out / "run.json").exists() and not (out / "model.safetensors").exists()

    # a run folder may be moved before it is resumed
    moved = tmp_path / "moved"
    shutil.move(out, moved)
    res = _resume(setup, moved)
    assert res.returncode == 0, res.stderr
    assert (moved / "manifest.csv").read_bytes() == manifest and (moved / "config.yaml").read_bytes() == config
    assert _history(moved)[:1] == first_epoch
    _assert_same_as_reference(moved, reference)


def test_sigkill_during_checkpoint_write_keeps_previous_checkpoint(setup, reference, tmp_path):
    out, err = tmp_path / "stalled", tmp_path / "stalled.err"
    proc = _start(setup, out, {STALL_CHECKPOINT_ENV: "2"}, err)
    text = _wait_for(proc, err, "alzmri-test-hook: stalled writing")
    target = Path(re.search(r"stalled writing (\S+)", text).group(1))
    assert _kill(proc, signal.SIGKILL) == -signal.SIGKILL

    ckpts = out / "checkpoints"
    partial = list(ckpts.glob(f".{target.name}.*.tmp"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < target.stat().st_size  # half written, under a temporary name
    for f in ckpts.glob("*.ckpt"):  # every file under a checkpoint name is complete
        assert _load(f)["epoch"] == 0, f
    assert _load(ckpts / "last.ckpt")["callbacks"]["alzmri.RunState"]["history"][0]["epoch"] == 1
    assert len(_history(out)) == 2  # history.csv was written for epoch 2 just before its checkpoint

    res = _resume(setup, out)
    assert res.returncode == 0, res.stderr
    assert not list(ckpts.glob(".*.tmp"))  # the stray temporary file is removed
    _assert_same_as_reference(out, reference)  # epoch 2 was trained again, not counted twice


@pytest.mark.parametrize("sig, code, how", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_interrupt_prints_one_line_with_resume_command(setup, tmp_path, sig, code, how):
    out, err = tmp_path / "interrupted", tmp_path / "interrupted.err"
    proc = _start(setup, out, {STEP_DELAY_ENV: "0.3"}, err)
    _wait_for(proc, err, "alzmri-test-hook: epoch 2 step 1")
    assert _kill(proc, sig) == code
    lines = _error_lines(err.read_text())
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: training interrupted ({how}); the last complete checkpoint is {out / 'checkpoints' / 'last.ckpt'} (epoch 1 of 3)")
    assert lines[0].endswith(f"continue with: alzmri train --out {out} --resume")
    assert _load(out / "checkpoints" / "last.ckpt")["epoch"] == 0
    assert len(_history(out)) == 1


def test_nan_loss_stops_naming_epoch_and_step_and_keeps_last_good_checkpoint(setup, tmp_path):
    out = tmp_path / "nan"
    res = _run(setup, "--out", str(out), hooks={NAN_AT_EPOCH_ENV: "2"})
    assert res.returncode == 2
    lines = _error_lines(res.stderr)
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    m = re.fullmatch(r"error: training loss became nan at epoch (\d+), step (\d+) \(global step (\d+)\); training stopped, "
                     r"the last complete checkpoint is (\S+) \(epoch (\d+) of 3\); lower --lr or check the data", lines[0])
    assert m, lines[0]
    assert (m[1], m[2], m[3], m[5]) == ("2", "1", "5", "1")  # 4 steps per epoch: the 5th step overall
    last = _load(Path(m[4]))
    assert Path(m[4]) == out / "checkpoints" / "last.ckpt" and last["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())  # the good weights, not the NaN ones
    assert len(_history(out)) == 1 and (out / "manifest.csv").is_file() and (out / "config.yaml").is_file()
    assert not (out / "model.safetensors").exists()


def test_absurd_learning_rate_diverges_with_one_clear_error(setup, tmp_path):
    res = _run(setup, "--out", str(tmp_path / "lr"), "--lr", "1e6")
    assert res.returncode == 2
    lines = _error_lines(res.stderr)
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert re.match(r"error: training loss became (nan|inf|-inf) at epoch \d+, step \d+ \(global step \d+\); training stopped", lines[0])


def test_resume_refuses_what_it_cannot_continue(setup, reference, tmp_path):
    from alzmri.config import load_train_config
    from alzmri.training.train import train

    def resume(out, **opts):
        with pytest.raises(AlzmriError) as info:
            train(load_train_config(out=out, resume=True, **opts), progress=False)
        return str(info.value)

    assert "no such run folder" in resume(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "never started (no config.yaml)" in resume(tmp_path / "empty")
    assert "already finished" in resume(reference)
    # the CLI says it in one line, exit code 2
    res = _resume(setup, reference)
    assert res.returncode == 2 and _error_lines(res.stderr) == [
        f"error: {reference}: this run already finished (run.json and metrics.json are there), nothing to resume; start a new run with another --out"]

    # an unfinished copy of the reference run
    run = tmp_path / "unfinished"
    shutil.copytree(reference, run)
    for name in ("run.json", "metrics.json", "model.safetensors"):
        (run / name).unlink()
    msg = resume(run, lr=0.1)
    assert "lr is 0.0003 there but 0.1 was given" in msg
    rows = (run / "manifest.csv").read_text().splitlines()
    (run / "manifest.csv").write_text("\n".join([rows[0], *rows[2:], rows[1]]) + "\n")  # same rows, another order
    assert "differs from this manifest" in resume(run)
    shutil.copy(reference / "manifest.csv", run / "manifest.csv")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    assert "not a readable checkpoint" in resume(run)


def test_cross_validation_killed_in_a_fold_resumes_the_rest(setup, tmp_path):
    cfg, env = setup
    out, err = tmp_path / "cv", tmp_path / "cv.err"
    with err.open("w") as f:
        proc = subprocess.Popen(_cmd("--config", str(cfg), "--out", str(out), "--folds", "2", "--epochs", "2", "--no-progress"),
                                env={**env, STEP_DELAY_ENV: "0.3"}, stdout=subprocess.DEVNULL, stderr=f)
    end = time.monotonic() + 240
    while not (out / "fold-1" / "checkpoints" / "last.ckpt").is_file():  # fold 0 done, fold 1 in epoch 2
        assert proc.poll() is None and time.monotonic() < end, err.read_text()
        time.sleep(0.05)
    assert _kill(proc, signal.SIGKILL) == -signal.SIGKILL
    done = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "fold-0").iterdir() if p.is_file()}
    assert "metrics.json" in done and not (out / "fold-1" / "run.json").exists() and not (out / "cv.json").exists()

    res = subprocess.run(_cmd("--folds", "2", "--out", str(out), "--resume", "--no-progress"), env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "fold-0").iterdir() if p.is_file()} == done  # kept as it was
    assert [int(r["epoch"]) for r in _history(out / "fold-1")] == [1, 2]
    cv = json.loads((out / "cv.json").read_text())
    assert [f["fold"] for f in cv["per_fold"]] == [0, 1] and cv["pooled"]["n_unique_images"] == cv["pooled"]["n_samples"] == 80
    res = subprocess.run(_cmd("--folds", "2", "--out", str(out), "--resume"), env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and _error_lines(res.stderr) == [
        f"error: {out}: this cross-validation already finished (cv.json is there), nothing to resume; start a new one with another --out"]


def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def failing():
        yield b"new, part one"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_chunks(target, failing())
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]

    # checkpoints: the temporary file is created beside the target (same file system), then renamed
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((Path(src), Path(dst)))
        real_replace(src, dst)

    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    state = {"epoch": 0, "state_dict": {"w": torch.arange(6.0)}}
    monkeypatch.setattr(os, "replace", spy)
    AtomicCheckpointIO().save_checkpoint(state, ckpt)
    monkeypatch.undo()
    assert renames == [(renames[0][0], ckpt)] and renames[0][0].parent == ckpt.parent and renames[0][0].name.startswith(".last.ckpt.")
    assert torch.equal(_load(ckpt)["state_dict"]["w"], torch.arange(6.0))


def test_atomic_writes_get_the_mode_a_plain_open_would_give(tmp_path):
    """mkstemp makes 0600 files; results written atomically follow the umask like open() does."""
    old = os.umask(0o027)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        atomic = atomic_write_chunks(tmp_path / "atomic.txt", [b"x"])
        weights = save_weights(torch.nn.Linear(2, 2), tmp_path)
    finally:
        os.umask(old)
    assert (atomic.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777) == (weights.stat().st_mode & 0o777) == 0o640
