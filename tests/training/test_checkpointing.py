"""alzmri.training.checkpointing: atomic checkpoints and files, the last good checkpoint kept when a run is killed or diverges.

The runs are real ``alzmri train`` processes (tests/training/_killed_runs.py).
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
import torch

import _killed_runs as kr
from alzmri.runs import save_weights
from alzmri.training.checkpointing import AtomicCheckpointIO
from alzmri.utils.io import atomic_write_chunks


@pytest.mark.slow
def test_sigkill_during_checkpoint_write_keeps_previous_checkpoint(setup, reference, tmp_path):
    out, err = tmp_path / "stalled", tmp_path / "stalled.err"
    proc = kr.start(setup, out, ("--stall-checkpoint-epoch", "2"), err)
    text = kr.wait_for(proc, err, "alzmri-test-hook: stalled writing")
    target = Path(re.search(r"stalled writing (\S+)", text).group(1))
    assert kr.kill(proc, signal.SIGKILL) == -signal.SIGKILL

    ckpts = out / "checkpoints"
    partial = list(ckpts.glob(f".{target.name}.*.tmp"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < target.stat().st_size  # half written, under a temporary name
    for f in ckpts.glob("*.ckpt"):  # every file under a checkpoint name is complete
        assert kr.load(f)["epoch"] == 0, f
    assert kr.load(ckpts / "last.ckpt")["callbacks"]["alzmri.RunState"]["history"][0]["epoch"] == 1
    assert len(kr.history(out)) == 2  # history.csv was written for epoch 2 just before its checkpoint

    res = kr.resume(setup, out)
    assert res.returncode == 0, res.stderr
    assert not list(ckpts.glob(".*.tmp"))  # the stray temporary file is removed
    kr.assert_same_as_reference(out, reference)  # epoch 2 was trained again, not counted twice


@pytest.mark.slow
def test_nan_loss_stops_naming_epoch_and_step_and_keeps_last_good_checkpoint(setup, tmp_path):
    out = tmp_path / "nan"
    res = kr.run(setup, "--out", str(out), hooks=("--nan-at-epoch", "2"))
    assert res.returncode == 2
    lines = kr.error_lines(res.stderr)
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    m = re.fullmatch(r"error: training loss became nan at epoch (\d+), step (\d+) \(global step (\d+)\); training stopped, "
                     r"the last complete checkpoint is (\S+) \(epoch (\d+) of 3\); lower --lr or check the data", lines[0])
    assert m, lines[0]
    assert (m[1], m[2], m[3], m[5]) == ("2", "1", "5", "1")  # 4 steps per epoch: the 5th step overall
    last = kr.load(Path(m[4]))
    assert Path(m[4]) == out / "checkpoints" / "last.ckpt" and last["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())  # the good weights, not the NaN ones
    assert len(kr.history(out)) == 1 and (out / "manifest.csv").is_file() and (out / "config.yaml").is_file()
    assert not (out / "model.safetensors").exists()


@pytest.mark.slow
def test_absurd_learning_rate_diverges_with_one_clear_error(setup, tmp_path):
    res = kr.run(setup, "--out", str(tmp_path / "lr"), "--lr", "1e6")
    assert res.returncode == 2
    lines = kr.error_lines(res.stderr)
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert re.match(r"error: training loss became (nan|inf|-inf) at epoch \d+, step \d+ \(global step \d+\); training stopped", lines[0])


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
    assert torch.equal(kr.load(ckpt)["state_dict"]["w"], torch.arange(6.0))


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
