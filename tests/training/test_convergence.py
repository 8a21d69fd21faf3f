"""Training to convergence: class-weighted loss, a minimum number of epochs before early stopping."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from alzmri.config import load_train_config
from alzmri.errors import AlzmriError
from alzmri.training.module import SliceClassifier, balanced_class_weights
from alzmri.pipeline import train


def test_balanced_class_weights_match_scikit_learn():
    y = np.array([0] * 50 + [1] * 35 + [2] * 14 + [3] * 1)
    w = balanced_class_weights(y, 4)
    assert w.dtype == torch.float32
    np.testing.assert_allclose(w.numpy(), compute_class_weight("balanced", classes=np.arange(4), y=y), rtol=1e-6)
    assert balanced_class_weights(np.array([0, 0, 1]), 3)[2].item() == 0.0  # an absent class adds nothing


def test_weighted_loss_is_the_weighted_cross_entropy():
    torch.manual_seed(0)
    out, y = torch.randn(10, 4), torch.tensor([0, 0, 0, 0, 0, 1, 1, 2, 3, 3])
    w = balanced_class_weights(y.numpy(), 4)
    module = SliceClassifier(torch.nn.Linear(2, 4), class_weights=w)
    assert torch.allclose(module.compute_loss(out, y), F.cross_entropy(out, y, weight=w))
    assert not torch.allclose(module.compute_loss(out, y), F.cross_entropy(out, y))
    assert "class_weights" not in module.state_dict()  # checkpoints keep their layout
    with pytest.raises(ValueError, match="applies to loss='cross_entropy'"):
        SliceClassifier(torch.nn.Linear(2, 4), class_weights=w, loss="ordinal")


@pytest.mark.slow
def test_min_epochs_holds_early_stopping_back(small_data, tmp_path):
    kw = dict(data=small_data, epochs=5, batch_size=16, lr=1e-5, image_size=32, augment=False, seed=0, split_strategy="stratified",
              patience=1, class_weight="balanced")
    run = train(load_train_config(out=tmp_path / "a", min_epochs=4, **kw), progress=False)
    info = json.loads((run / "run.json").read_text())
    hist = list(csv.DictReader(open(run / "history.csv")))
    assert info["epochs_run"] == len(hist) >= 4
    scores = [float(h["val_balanced_accuracy"]) for h in hist]
    best = info["best_epoch"]
    # stopped at the minimum, at the maximum, or patience epochs after the best epoch
    assert len(hist) in (4, 5) or len(hist) == best + 1
    assert scores[best - 1] == max(scores)
    with pytest.raises(AlzmriError, match="CORN"):
        train(load_train_config(out=tmp_path / "b", loss="ordinal", **kw), progress=False)
