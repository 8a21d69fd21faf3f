"""alzmri.training.resume: a killed run (or cross-validation) continued with --resume ends as if uninterrupted; what it refuses.

The runs are real ``alzmri train`` processes (tests/training/_killed_runs.py).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time

import pytest

import _killed_runs as kr
from alzmri.errors import AlzmriError


@pytest.mark.slow
def test_same_seed_twice_gives_identical_split_and_metrics(setup, reference, tmp_path):
    again = tmp_path / "again"
    res = kr.run(setup, "--out", str(again))
    assert res.returncode == 0, res.stderr
    # byte-identical manifest, history and weights; metrics equal but for timings
    kr.assert_same_as_reference(again, reference)
    m = kr.metrics(reference)
    assert 0.0 <= m["balanced_accuracy"] <= 1.0 and sum(map(sum, m["confusion_matrix"])) == m["n_samples"] > 0
    # and the seed matters: the split alzmri train makes with another seed differs
    from alzmri.config import load_train_config
    from alzmri.training.splitting import write_split_manifest

    cfg = load_train_config(setup[0], seed=1)
    assert write_split_manifest(cfg, tmp_path / "seed1.csv").read_bytes() != (reference / "manifest.csv").read_bytes()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_as_if_uninterrupted(setup, reference, tmp_path):
    out, err = tmp_path / "killed", tmp_path / "killed.err"
    proc = kr.start(setup, out, ("--step-delay", "0.3"), err)
    kr.wait_for(proc, err, "alzmri-test-hook: epoch 2 step 2")  # epoch 1 checkpointed, epoch 2 half done
    manifest, config, first_epoch = (out / "manifest.csv").read_bytes(), (out / "config.yaml").read_bytes(), kr.history(out)
    assert kr.kill(proc, signal.SIGKILL) == -signal.SIGKILL
    assert "epoch 2 step 4" not in err.read_text()  # killed before epoch 2 ended

    # what the killed run left: epoch 1 complete, nothing of epoch 2, no final artifacts
    last = kr.load(out / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 0 and len(last["callbacks"]["alzmri.RunState"]["history"]) == 1
    assert len(first_epoch) == 1 and kr.history(out) == first_epoch
    assert not (out / "run.json").exists() and not (out / "model.safetensors").exists()

    # a run folder may be moved before it is resumed
    moved = tmp_path / "moved"
    shutil.move(out, moved)
    res = kr.resume(setup, moved)
    assert res.returncode == 0, res.stderr
    assert (moved / "manifest.csv").read_bytes() == manifest and (moved / "config.yaml").read_bytes() == config
    assert kr.history(moved)[:1] == first_epoch
    kr.assert_same_as_reference(moved, reference)


@pytest.mark.slow
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
    res = kr.resume(setup, reference)
    assert res.returncode == 2 and kr.error_lines(res.stderr) == [
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


@pytest.mark.slow
def test_cross_validation_killed_in_a_fold_resumes_the_rest(setup, tmp_path):
    _, env = setup
    out, err = tmp_path / "cv", tmp_path / "cv.err"
    proc = kr.start(setup, out, ("--step-delay", "0.3"), err, "--folds", "2", "--epochs", "2")
    end = time.monotonic() + 240
    while not (out / "fold-1" / "checkpoints" / "last.ckpt").is_file():  # fold 0 done, fold 1 in epoch 2
        assert proc.poll() is None and time.monotonic() < end, err.read_text()
        time.sleep(0.05)
    assert kr.kill(proc, signal.SIGKILL) == -signal.SIGKILL
    done = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "fold-0").iterdir() if p.is_file()}
    assert "metrics.json" in done and not (out / "fold-1" / "run.json").exists() and not (out / "cv.json").exists()

    res = subprocess.run(kr.cmd("--folds", "2", "--out", str(out), "--resume", "--no-progress"), env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "fold-0").iterdir() if p.is_file()} == done  # kept as it was
    assert [int(r["epoch"]) for r in kr.history(out / "fold-1")] == [1, 2]
    cv = json.loads((out / "cv.json").read_text())
    assert [f["fold"] for f in cv["per_fold"]] == [0, 1] and cv["pooled"]["n_unique_images"] == cv["pooled"]["n_samples"] == 80
    res = subprocess.run(kr.cmd("--folds", "2", "--out", str(out), "--resume"), env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and kr.error_lines(res.stderr) == [
        f"error: {out}: this cross-validation already finished (cv.json is there), nothing to resume; start a new one with another --out"]
