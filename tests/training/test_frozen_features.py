"""Frozen-backbone slice runs train their head on cached backbone features (training/frozen.py).

Real subset of alzheimer-mri-6400 (120 slices, 32 x 32), EfficientNet-Lite0 with the
ImageNet weights of the installed weight package (offline), two epochs.
"""

import csv

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from _train_hooks import add_trainer_callbacks
from alzmri.config import load_train_config
from alzmri.models import create_model
from alzmri.training.module import head_forward
from alzmri.models.ordinal import make_ordinal
from alzmri.runs import RunInfo
from alzmri.training import frozen
from alzmri.pipeline import train


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread (faster on a busy 2-core machine); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cfg(data, out, **kw):
    base = {"data": data, "out": out, "model": "efficientnet_lite0", "epochs": 2, "batch_size": 16, "lr": 1e-2, "image_size": 32, "augment": False,
            "seed": 0, "precision": "32", "split_strategy": "stratified", "model_kwargs": {"weights": "imagenet", "finetune": "adapter"}}
    return load_train_config(**{**base, **kw})


def _history(run):
    return list(csv.DictReader((run / "history.csv").open()))


def _head(run):
    return {k: v for k, v in load_file(str(run / "model.safetensors")).items() if k.startswith("head.")}


@pytest.fixture(autouse=True, scope="module")
def _offline_cache(tmp_path_factory):
    """No download, and this module's own cache folder (module fixtures run before conftest's per-test one)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALZMRI_OFFLINE", "1")
        mp.setenv("ALZMRI_CACHE_DIR", str(tmp_path_factory.mktemp("frozen-cache")))
        yield


@pytest.fixture(scope="module")
def feature_runs(small_data, tmp_path_factory, _offline_cache):
    """The same adapter run twice: the first computes the features, the second reads them."""
    root = tmp_path_factory.mktemp("frozen")
    return train(_cfg(small_data, root / "first"), progress=False), train(_cfg(small_data, root / "second"), progress=False)


@pytest.mark.slow
def test_adapter_run_trains_on_features_and_records_it(feature_runs):
    first, second = feature_runs
    a, b = RunInfo.load(first), RunInfo.load(second)
    assert a.feature_cache["used"] and not a.feature_cache["hit"] and a.feature_cache["seconds"] > 0
    # the second run reads the cache: the extraction costs nothing and is not in its train time
    assert b.feature_cache == {**a.feature_cache, "hit": True, "seconds": 0.0}
    assert a.epochs_run == b.epochs_run == 2 and len(_history(first)) == 2
    assert a.trainable_parameters == 4 * 1280 + 4 * 4 + 4  # DoRA on the head only (r=4, 1280 features, 4 classes)
    # the whole model is saved and evaluated on images as any run
    for run in (first, second):
        assert (run / "metrics.json").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert {k: v.tolist() for k, v in _head(first).items()} == {k: v.tolist() for k, v in _head(second).items()}


@pytest.mark.slow
def test_feature_path_gives_the_image_path_model(feature_runs, small_data, tmp_path, monkeypatch):
    """Same seed, same batches, same dropout masks: the head ends where training from images ends.

    Not bit for bit: the backbone runs once over batches of 256 in the feature path and in
    every training batch (16 slices, channels-last on CPU) in the image path, so the features
    differ by float32 rounding (about 1e-6), which Adam carries into the weights.
    """
    monkeypatch.setattr(frozen, "use_cached_features", lambda cfg, model: False)
    images = train(_cfg(small_data, tmp_path / "images"), progress=False)
    assert RunInfo.load(images).feature_cache == {"used": False, "reason": ""}  # forced; the predicate itself says yes
    features = feature_runs[0]
    ha, hb = _head(features), _head(images)
    assert set(ha) == set(hb) and any("lora_" in k for k in ha)
    assert ha["head.lora_B.default.weight"].abs().max() > 1e-3  # trained (DoRA's B starts at zero), so the match means something
    for k in ha:
        assert torch.allclose(ha[k], hb[k], atol=1e-4, rtol=0), (k, (ha[k] - hb[k]).abs().max())
    # the last epoch too (the saved weights are the best epoch's)
    last = [{k: v for k, v in torch.load(r / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"].items() if k.startswith("model.head.")}
            for r in (features, images)]
    assert all(torch.allclose(last[0][k], last[1][k], atol=1e-4, rtol=0) for k in last[0])
    fa, fb = _history(features), _history(images)
    assert [r["val_balanced_accuracy"] for r in fa] == [r["val_balanced_accuracy"] for r in fb]
    for ra, rb in zip(fa, fb):
        for col in ("train_loss", "val_loss"):
            assert float(ra[col]) == pytest.approx(float(rb[col]), abs=1e-4)


def test_augmented_run_trains_from_images(small_data, tmp_path):
    run = train(_cfg(small_data, tmp_path / "aug", augment=True, epochs=1, evaluate=False), progress=False)
    rec = RunInfo.load(run).feature_cache
    assert rec["used"] is False and "augment" in rec["reason"]


@pytest.mark.parametrize(("kwargs", "cfg_kw", "expected"), [
    ({"finetune": "linear"}, {}, True),
    ({"finetune": "adapter"}, {}, True),
    ({"finetune": "full"}, {}, False),
    ({"finetune": "adapter", "adapter_targets": ["head", "features.18.0"]}, {}, False),  # an adapter in the backbone
    ({"finetune": "linear"}, {"augment": True}, False),
    ({"finetune": "linear"}, {"balance_augment": True}, False),
    ({"finetune": "linear"}, {"devices": 2}, False),
])
def test_which_runs_use_cached_features(small_data, tmp_path, kwargs, cfg_kw, expected):
    model = create_model("mobilenet_v2", image_size=32, **kwargs)
    cfg = _cfg(small_data, tmp_path / "x", model_kwargs=kwargs, **cfg_kw)
    assert frozen.use_cached_features(cfg, model) is expected
    assert bool(frozen.image_path_reason(cfg, model)) is not expected


def test_ordinal_head_forward_matches_the_model():
    torch.manual_seed(0)
    model = make_ordinal(create_model("mobilenet_v2", num_classes=3, image_size=32, finetune="linear")).eval()
    assert frozen.head_only(model)
    x = torch.randn(5, 1, 32, 32)
    with torch.no_grad():
        full, head = model(x), head_forward(model, model.forward_features(x))
    assert full.shape == (5, 4)
    np.testing.assert_allclose(head.numpy(), full.numpy(), atol=1e-6)
    model.register_forward_hook(lambda m, a, out: out * 2)  # another hook: the head alone is not the model
    assert not frozen.head_only(model)


class _StopAtSecondEpoch(Callback):
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            raise RuntimeError("stopped by the test")


@pytest.mark.slow
def test_resumed_feature_run_ends_as_the_uninterrupted_one(feature_runs, small_data, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    with monkeypatch.context() as mp:
        add_trainer_callbacks(mp.setattr, [_StopAtSecondEpoch()])
        with pytest.raises(RuntimeError, match="stopped by the test"):
            train(_cfg(small_data, out), progress=False)
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0 and not (out / "run.json").exists()
    train(load_train_config(out=out, resume=True), progress=False)
    assert RunInfo.load(out).feature_cache["used"] and _history(out) == _history(feature_runs[0])
    ha, hb = _head(out), _head(feature_runs[0])
    assert all(torch.allclose(ha[k], hb[k], atol=1e-6, rtol=0) for k in ha)
