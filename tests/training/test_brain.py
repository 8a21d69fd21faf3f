"""Brain-level learning: bags, the MIL model, the feature cache, brain-level settings (runs: tests/pipeline/test_brains.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alzmri.config import load_train_config
from alzmri.data.bags import make_bags
from alzmri.errors import AlzmriError
from alzmri.models.mil import BrainClassifier


def test_make_bags_orders_by_position_and_refuses_mixed_classes():
    labels = np.array([1, 1, 1, 0, 0])
    groups = np.array([7, 7, 7, 3, 3])
    position = np.array([2, 0, 1, 1, 0])
    bags = make_bags(labels, groups, position=position, copy_of=np.array([-1, -1, -1, -1, 3]))
    assert bags.brain_ids.tolist() == [3, 7]
    assert [m.tolist() for m in bags.members] == [[3], [1, 2, 0]]  # copy 4 left out; brain 7 in position order
    assert bags.labels.tolist() == [0, 1]
    np.testing.assert_allclose(bags.positions[1], [0, 0.5, 1])
    with pytest.raises(AlzmriError, match="holds slices of 2 classes: VeryMildDemented, MildDemented"):
        make_bags(np.array([1, 2, 1]), np.array([7, 7, 7]))


def test_padding_does_not_change_a_bag_prediction():
    torch.manual_seed(0)
    for pooling in ("mean", "attention"):
        model = BrainClassifier(None, 16, 3, pooling=pooling, slice_position=True).eval()
        short = torch.randn(1, 5, 16)
        padded = torch.cat([short, torch.randn(1, 3, 16) * 100], dim=1)
        mask = torch.tensor([[True] * 5 + [False] * 3])
        pos_short = torch.linspace(0, 1, 5).unsqueeze(0)
        pos = torch.cat([pos_short, torch.zeros(1, 3)], dim=1)
        a, wa = model.forward_with_weights(short, None, pos_short)
        b, wb = model.forward_with_weights(padded, mask, pos)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(wb[0, 5:], torch.zeros(3))
        assert float(wb.sum().detach()) == pytest.approx(1.0, abs=1e-6)


def test_feature_cache_hits_and_invalidates(tmp_path):
    from alzmri.models import create_model
    from alzmri.training.features import slice_features

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 32, 32), dtype=np.uint8)
    enc = create_model("altzcnn", image_size=32)
    kw = dict(content_hash="abc", encoder_name="altzcnn", mean=0.5, std=0.5, cache_dir=tmp_path)
    first = slice_features(enc, images, **kw)
    assert not first.hit and first.features.shape[0] == 6 and first.path.is_file()
    again = slice_features(enc, images, **kw)
    assert again.hit and again.key == first.key
    np.testing.assert_array_equal(again.features, first.features)
    other_data = slice_features(enc, images, **{**kw, "content_hash": "abd"})
    assert not other_data.hit and other_data.key != first.key
    with torch.no_grad():
        next(enc.parameters()).add_(0.01)  # changed weights: a miss, never stale features
    changed = slice_features(enc, images, **kw)
    assert not changed.hit and changed.key != first.key
    assert not np.allclose(changed.features, first.features)
    # the cache file is a plain array: a pickle there is refused and recomputed, not run
    import pickle

    changed.path.write_bytes(pickle.dumps({"x": 1}))
    redo = slice_features(enc, images, **kw)
    assert not redo.hit
    np.testing.assert_allclose(redo.features, changed.features, rtol=1e-5, atol=1e-5)


def test_feature_cache_key_ignores_the_unused_head_and_encoders_are_seeded():
    from alzmri.models import create_model
    from alzmri.training.brain import _encoder, resolve_encoder_weights
    from alzmri.data.tasks import get_task
    from alzmri.training.features import encoder_fingerprint

    a = create_model("efficientnet_lite0", image_size=64, weights="imagenet")
    b = create_model("efficientnet_lite0", image_size=64, weights="imagenet")
    assert not torch.equal(a.head.weight, b.head.weight)  # a fresh random head in every build ...
    assert encoder_fingerprint(a) == encoder_fingerprint(b)  # ... which features never pass through
    cfg = load_train_config(None, level="brain", model="efficientnet_lite0", image_size=64)
    resolved, note = resolve_encoder_weights(cfg)
    assert resolved.model_kwargs["weights"] == "imagenet" and "ImageNet" in note  # a frozen encoder is not left random
    scratch, note = resolve_encoder_weights(load_train_config(None, level="brain", model="altzcnn", image_size=32))
    assert "weights" not in scratch.model_kwargs and "random" in note
    e1, _ = _encoder(scratch, get_task("binary"), 32)
    e2, _ = _encoder(scratch, get_task("binary"), 32)
    assert encoder_fingerprint(e1) == encoder_fingerprint(e2)  # a random encoder is seeded: the same in every build


def test_brain_settings_on_a_slice_run_are_refused():
    with pytest.raises(AlzmriError, match="pooling, slice_position: brain-level settings"):
        load_train_config(None, pooling="mean", slice_position=True)
