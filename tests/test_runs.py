"""The run folder: run.json, the weights file, rebuilding a run's model and its class probabilities."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from alzmri.errors import AlzmriError
from alzmri.runs import RUN_FILE, WEIGHTS_FILE, RunInfo, count_parameters, environment, load_model, model_size_mb, predict_proba, save_weights


def _info(**changes) -> RunInfo:
    values = dict(model="altzcnn", image_size=32, in_chans=1, mean=0.5, std=0.25, class_names=["a", "b", "c", "d"], task="4class",
                  split_strategy="subject", split_counts={"train": 7, "val": 2, "test": 3}, warnings=["one warning"],
                  copies={"n_copies": 2, "note": "two copies"}, best_epoch=3, model_kwargs={"fc_dropout": 0.1})
    return RunInfo(**{**values, **changes})


def test_run_info_round_trip(tmp_path):
    info = _info()
    path = info.save(tmp_path)
    assert path == tmp_path / RUN_FILE
    assert RunInfo.load(tmp_path) == info
    assert json.loads(path.read_text()) == asdict(info)


def test_older_and_newer_run_files_read(tmp_path):
    """Fields a run.json lacks take their defaults (4class, cross_entropy, slice); unknown fields are ignored."""
    (tmp_path / RUN_FILE).write_text(json.dumps({"model": "altzcnn", "image_size": 64, "in_chans": 1, "mean": 0.1, "std": 0.2,
                                                  "class_names": ["a", "b"], "added_by_a_later_version": 1}))
    info = RunInfo.load(tmp_path)
    assert (info.model, info.image_size, info.class_names) == ("altzcnn", 64, ["a", "b"])
    assert (info.task, info.loss, info.level, info.warnings, info.feature_cache) == ("4class", "cross_entropy", "slice", [], {})


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"not a finished run folder \(no run.json\); train it to the end"),
        ("{broken", r"run.json: unreadable run file \(.*\); retrain the run"),
        ('{"model": "altzcnn"}', r"run.json: unreadable run file \(.*missing.*\); retrain the run"),
        (b"\xff\xfe", r"run.json: unreadable run file"),
        ("[1, 2]", r"run.json: unreadable run file \(a JSON object expected, got list\); retrain the run"),
    ],
)
def test_missing_or_corrupt_run_file_names_the_file(tmp_path, content, message):
    if isinstance(content, bytes):
        (tmp_path / RUN_FILE).write_bytes(content)
    elif content is not None:
        (tmp_path / RUN_FILE).write_text(content)
    with pytest.raises(AlzmriError, match=message) as exc:
        RunInfo.load(tmp_path)
    assert str(tmp_path) in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(AlzmriError, match=r"nowhere: run folder not found"):
        RunInfo.load(tmp_path / "nowhere")


def test_parameters_and_size():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    assert count_parameters(model) == (8 + 4, 12)
    model[1].weight.requires_grad_(False)
    assert count_parameters(model) == (12, 10)
    # parameters and buffers (BatchNorm: running mean and var, float32; num_batches_tracked, int64), in MB
    assert model_size_mb(model) == pytest.approx((12 * 4 + 4 * 4 + 8) / 1e6)


def test_save_weights_writes_the_state_dict(tmp_path):
    model = torch.nn.Linear(4, 3)
    path = save_weights(model, tmp_path)
    assert path == tmp_path / WEIGHTS_FILE
    state = load_file(str(path))
    assert set(state) == {"weight", "bias"}
    for k, v in model.state_dict().items():
        assert torch.equal(state[k], v)


def test_load_model_rebuilds_the_tiny_run(tiny_run):
    model, info = load_model(tiny_run)
    assert not model.training and info.model == "altzcnn" and info.image_size == 32 and len(info.class_names) == 4
    assert sum(p.numel() for p in model.parameters()) == info.parameters
    saved = load_file(str(tiny_run / WEIGHTS_FILE))
    for k, v in model.state_dict().items():
        assert torch.equal(saved[k], v), k
    with torch.no_grad():
        out = model(torch.zeros(2, info.in_chans, 32, 32))
    assert out.shape == (2, 4)


def test_predict_proba_shapes_and_rows(tiny_run, small_data):
    from alzmri.inference.inputs import load_image_files

    model, info = load_model(tiny_run)
    images = load_image_files(sorted(small_data.rglob("*.jpg"))[::20], info.image_size)
    p = predict_proba(model, info, images)
    assert p.shape == (len(images), 4) and p.dtype == np.float64 and len(images) >= 5
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert (p > 0).all()
    # batching does not change the result
    np.testing.assert_allclose(predict_proba(model, info, images, batch_size=2), p, atol=1e-6)
    # temperature T: softmax(logits / T), the same classes, flatter rows
    t = predict_proba(model, info, images, temperature=2.0)
    expect = np.sqrt(p) / np.sqrt(p).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(t, expect, atol=1e-5)
    assert (t.argmax(1) == p.argmax(1)).all()
    empty = predict_proba(model, info, images[:0])
    assert empty.shape == (0, 4)


def test_load_model_refuses_damaged_runs(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints"))
    weights = run / WEIGHTS_FILE
    weights.write_bytes(b"\x80\x04 not safetensors, maybe a pickle")
    with pytest.raises(AlzmriError, match=r"model.safetensors: not a readable safetensors weights file") as exc:
        load_model(run)
    assert str(weights) in str(exc.value)
    save_weights(torch.nn.Linear(4, 3), run)
    with pytest.raises(AlzmriError, match=r"weights do not fit model 'altzcnn' of run.json"):
        load_model(run)
    weights.unlink()
    with pytest.raises(AlzmriError, match=r"model.safetensors: weights file missing"):
        load_model(run)
    info = json.loads((run / RUN_FILE).read_text())
    (run / RUN_FILE).write_text(json.dumps({**info, "level": "brain"}))
    with pytest.raises(AlzmriError, match=r"a brain-level run \(altzcnn\) predicts one class per brain"):
        load_model(run)


def test_environment_names_the_packages():
    env = environment()
    assert env["packages"]["torch"].startswith(torch.__version__.split("+")[0])
    assert env["torch_threads"] == torch.get_num_threads() and env["cuda"] == torch.cuda.is_available()
    assert {"python", "platform", "processor", "cpu_capability"} <= set(env)
