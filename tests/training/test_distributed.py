"""DDP on CPU (gloo), 2 processes, launched through the CLI on a real subset of alzheimer-mri-6400.

Lightning's subprocess launcher re-runs the command line for rank 1, so every multi-process
run here is an ``alzmri`` subprocess (pytest itself must not be re-run per rank).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from _train_hooks import SCRIPT as HOOKS_SCRIPT
from _helpers import DATA_6400, copy_subset, require

from alzmri.cli import main
from alzmri.data.classes import CLASS_NAMES
from alzmri.evaluation.distributed import merge_gathered
from alzmri.pipeline import evaluate as evaluate_run
from alzmri.evaluation.metrics import classification_metrics
from alzmri.runs import predict_proba
from alzmri.runs import load_model

EPOCHS = 6
BATCH = 4
# dropout off so that 70 training slices show learning within a few epochs
MODEL_KWARGS = {"fc_dropout": 0.0, "conv_dropout": 0.0, "init": "he"}
TRAIN_ARGS = ["--model", "altzcnn", "--image-size", "32", "--batch-size", str(BATCH), "--lr", "3e-4", "--seed", "0",
              "--split-strategy", "stratified", "--accelerator", "cpu", "--no-progress"]


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "LOCAL_RANK", "RANK", "NODE_RANK", "MASTER_PORT", "MASTER_ADDR")}
    env["ALZMRI_CACHE_DIR"] = str(cache)
    return env


def _alzmri(args: list[str], *, cwd: Path, cache: Path, timeout: float = 170) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alzmri", *args], cwd=cwd, env=_env(cache), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory) -> Path:
    """100 real slices (26 per class, every 3rd file; 22 ModerateDemented): 70 train / 15 val / 15 test (stratified, seed 0)."""
    return copy_subset(require(DATA_6400), tmp_path_factory.mktemp("ddp") / "data", 26, stride=3)


@pytest.fixture(scope="module")
def ddp_run(ddp_data, tmp_path_factory):
    """`alzmri train --devices 2` (2 processes, gloo): the run folder, the CLI's output and the cache folder."""
    work = tmp_path_factory.mktemp("ddp-run")
    cache = work / "cache"
    (work / "run.yaml").write_text(yaml.safe_dump({"model_kwargs": MODEL_KWARGS}))
    proc = _alzmri(["train", "--config", "run.yaml", "--data", str(ddp_data), "--out", "run", "--epochs", str(EPOCHS),
                    "--devices", "2", "--strategy", "ddp", *TRAIN_ARGS], cwd=work, cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work / "run", proc, cache


def _manifest(run: Path, split: str) -> list[str]:
    return [r["path"] for r in csv.DictReader((run / "manifest.csv").open()) if r["split"] == split]


@pytest.mark.slow
def test_two_process_training_learns_and_only_rank_0_writes(ddp_run, ddp_data):
    run, proc, cache = ddp_run
    # one process wrote each artifact once: the single-process run folder, nothing more
    files = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert files == {
        "MODEL_CARD.md", "config.yaml", "manifest.csv", "environment.json", "run.json", "model.safetensors", "history.csv",
        "training_curves.png", "metrics.json", "predictions.csv", "confusion_matrix.png", "roc_curves.png",
        "checkpoints/best.ckpt", "checkpoints/last.ckpt",
    }
    # rank 1 printed nothing: one summary, each warning once
    assert proc.stdout.count("run folder:") == 1
    assert proc.stderr.count("warning: split strategy 'stratified'") == 1
    assert "Traceback" not in proc.stderr
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert (cfg["devices"], cfg["strategy"]) == (2, "ddp")
    # the decode-once cache: rank 1 took the node lock and found the arrays rank 0 wrote; no temporaries
    from alzmri.data.cache import cache_key
    from alzmri.data.discovery import discover

    assert (cache / "arrays" / f"{cache_key(discover(ddp_data), 32)}.npz").is_file()
    assert (cache / ".alzmri-build.lock").exists()
    assert not list(cache.rglob("*.tmp"))

    # two processes split each epoch: rank-local steps = ceil(ceil(n_train / 2) / batch)
    n_train = len(_manifest(run, "train"))
    steps = math.ceil(math.ceil(n_train / 2) / BATCH)
    assert steps < math.ceil(n_train / BATCH)
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == (state["epoch"] + 1) * steps
    assert any(k.startswith("model.") for k in state["state_dict"])

    history = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in history] == list(range(1, EPOCHS + 1))  # one row per epoch
    losses = [float(r["train_loss"]) for r in history]
    assert min(losses[-2:]) < 0.9 * losses[0], losses


@pytest.mark.slow
def test_validation_metrics_under_ddp_count_each_slice_once(ddp_run):
    """The best epoch's logged validation scores equal a single-process scoring of the best weights on all val slices."""
    run, _, _ = ddp_run
    info_epoch = json.loads((run / "run.json").read_text())["best_epoch"]
    val = _manifest(run, "val")
    assert len(val) % 2 == 1  # odd: a padded sampler would count one slice twice
    logged = next(r for r in csv.DictReader((run / "history.csv").open()) if int(r["epoch"]) == info_epoch)
    model, info = load_model(run)
    from alzmri.data.cache import load_images
    from alzmri.data.discovery import discover

    index = discover(info.data)
    pos = {r.path: i for i, r in enumerate(index.records)}
    sel = np.array([pos[p] for p in val])
    images = load_images(index, info.image_size).images[sel]
    m = classification_metrics(index.labels[sel], predict_proba(model, info, images), class_names=info.class_names)
    # history.csv holds 6 significant digits
    assert float(logged["val_accuracy"]) == pytest.approx(m["accuracy"], rel=1e-5)
    assert float(logged["val_balanced_accuracy"]) == pytest.approx(m["balanced_accuracy"], rel=1e-5)


def _assert_same(a, b, path="") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-6, nan_ok=True), path
    else:
        assert a == b, path


@pytest.mark.slow
def test_two_process_evaluation_equals_one_process(ddp_run, tmp_path):
    run, _, cache = ddp_run
    one, two = shutil.copytree(run, tmp_path / "one"), shutil.copytree(run, tmp_path / "two")
    m1 = evaluate_run(one)
    proc = _alzmri(["evaluate", str(two), "--devices", "2", "--accelerator", "cpu", "--json"], cwd=tmp_path, cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m2 = json.loads(proc.stdout)  # rank 1 printed nothing
    assert json.loads((two / "metrics.json").read_text()) == m2

    test = _manifest(run, "test")
    assert len(test) % 2 == 1  # odd: DistributedSampler padding would add a slice
    assert m1["n_samples"] == m2["n_samples"] == len(test)
    assert sum(sum(row) for row in m2["confusion_matrix"]) == len(test)
    _assert_same({k: v for k, v in m1.items() if k != "run"}, {k: v for k, v in m2.items() if k != "run"})

    # predictions: every test slice once, in the manifest's (dataset) order, same probabilities
    p1 = list(csv.DictReader((one / "predictions.csv").open()))
    p2 = list(csv.DictReader((two / "predictions.csv").open()))
    assert [r["path"] for r in p2] == [r["path"] for r in p1] == test
    cols = [f"p_{c}" for c in CLASS_NAMES]
    np.testing.assert_allclose([[float(r[c]) for c in cols] for r in p2], [[float(r[c]) for c in cols] for r in p1], atol=2e-6)
    assert [r["predicted"] for r in p2] == [r["predicted"] for r in p1]


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.slow
def test_a_killed_rank_stops_the_run_with_one_line_keeps_the_checkpoint_and_resumes(ddp_data, tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"model_kwargs": MODEL_KWARGS}))
    out = tmp_path / "run"
    # the training-step delay hook (tests/_train_hooks.py, in both ranks) keeps epochs 2-3 running while rank 1 is killed
    cmd = [sys.executable, HOOKS_SCRIPT, "--step-delay", "0.4", "train", "--config", "run.yaml", "--data", str(ddp_data), "--out", str(out),
           "--epochs", "3", "--devices", "2", *TRAIN_ARGS]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        while not (out / "checkpoints" / "last.ckpt").is_file():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 150 s"
            time.sleep(0.2)
        time.sleep(0.5)
        ranks = _children(proc.pid)  # Lightning's launcher starts rank 1 as a child of rank 0
        assert len(ranks) == 1, ranks
        os.kill(ranks[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 2, err[-3000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert "rank 0 of 2: another process of this 2-process run stopped" in errors[0]
    assert str(out / "checkpoints" / "last.ckpt") in errors[0] and f"alzmri train --out {out} --resume" in errors[0]
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    done = int(state["epoch"]) + 1
    assert 1 <= done < 3 and any(k.startswith("model.") for k in state["state_dict"])
    assert not (out / "run.json").exists()  # the run did not finish: no final artifacts
    before = (out / "history.csv").read_text().splitlines()
    assert len(before) == 1 + done

    # --resume continues with the saved settings (2 processes) from the kept checkpoint
    proc = _alzmri(["train", "--out", str(out), "--resume", "--no-progress"], cwd=tmp_path, cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = (out / "history.csv").read_text().splitlines()
    assert after[: len(before)] == before and [int(r.split(",")[0]) for r in after[1:]] == [1, 2, 3]
    assert (out / "metrics.json").is_file() and json.loads((out / "run.json").read_text())["epochs_run"] == 3


_LOCK_SCRIPT = """
import sys, time
from pathlib import Path
from alzmri.data.cache import load_images
from alzmri.data.discovery import discover
from alzmri.data.locations import default_cache_dir
from alzmri.utils.distributed import node_cache_lock
index = discover(sys.argv[1])
ready = Path(sys.argv[2])
(ready / sys.argv[3]).touch()
while len(list(ready.iterdir())) < 2:  # both processes enter together, as torchrun or srun start them
    time.sleep(0.05)
with node_cache_lock(default_cache_dir()):
    print(int(load_images(index, 40).hit))
"""


def test_processes_started_together_decode_the_cache_once(ddp_data, tmp_path):
    """Two processes of one launch (WORLD_SIZE=2) reach the cache at the same moment: one decodes, the other reads its file."""
    ready = tmp_path / "ready"
    ready.mkdir()
    env = {**_env(tmp_path / "cache"), "WORLD_SIZE": "2"}
    procs = [subprocess.Popen([sys.executable, "-c", _LOCK_SCRIPT, str(ddp_data), str(ready), f"rank{r}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=150) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert sorted(int(o[0].strip()) for o in outs) == [0, 1]  # one miss (decoded), one hit
    assert len(list((tmp_path / "cache" / "arrays").glob("*.npz"))) == 1


def test_merge_gathered_drops_the_padding_of_a_distributed_sampler():
    """Gathered (index, probabilities) of a padded DistributedSampler (19 slices, 2 ranks: slice 0 twice) -> each slice once, in order."""
    from torch.utils.data import DistributedSampler

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=19)
    idx = np.concatenate([list(DistributedSampler(range(19), num_replicas=2, rank=r, shuffle=False)) for r in (0, 1)])
    assert len(idx) == 20 and len(np.unique(idx)) == 19
    merged = merge_gathered(idx, probs[idx], 19)
    np.testing.assert_array_equal(merged, probs)
    with pytest.raises(RuntimeError, match="cover 18 of 19"):
        merge_gathered(idx[idx != 7], probs[idx[idx != 7]], 19)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--strategy", "ddp_spawn"], "'strategy'"),
        (["train", "--devices", "0"], "'devices'"),
        (["train", "--devices", "2", "--folds", "3"], "--folds"),
        (["train", "--devices", "2", "--accelerator", "tpu-please"], "cannot run accelerator='tpu-please'"),
        (["evaluate", "norun", "--strategy", "fsdp"], "--strategy must be one of auto, ddp"),
    ],
)
def test_bad_process_layouts_are_one_line_errors(args, message, ddp_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if args[0] == "train":
        args = [*args, "--data", str(ddp_data), "--out", str(tmp_path / "run"), "--epochs", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not (tmp_path / "run").exists()


def test_compare_command_line_layout_wins_over_the_file(tmp_path):
    from alzmri.comparison.config import load_compare_config

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "out": "cmp", "defaults": {"epochs": 1, "devices": 1},
        "models": [{"name": "a", "model": "altzcnn"}, {"name": "b", "model": "altzcnn", "devices": 3, "strategy": "ddp"}],
    }))
    cfg = load_compare_config(tmp_path / "c.yaml")
    assert [(c.devices, c.strategy) for _, c in cfg.train_configs()] == [(1, "auto"), (3, "ddp")]
    over = cfg.with_train_settings(devices=2, num_nodes=None)
    assert [(c.devices, c.num_nodes, c.strategy) for _, c in over.train_configs()] == [(2, 1, "auto"), (2, 1, "ddp")]
