"""The brain-level LightningModule's validation score (early stopping) and bag batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alzmri.models.mil import BrainClassifier
from alzmri.training.brain_module import BagDataset, BrainModule, collate_bags


def _val_score(binary: bool, y, p) -> float:
    """The val_score BrainModule logs for validation probabilities ``p`` and labels ``y``."""
    module = BrainModule(BrainClassifier(None, 4, np.shape(p)[1], pooling="mean"), binary=binary)
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, value)
    module._val.append((torch.as_tensor(np.asarray(p, dtype=np.float32)), torch.as_tensor(y)))
    module.on_validation_epoch_end()
    assert module._val == []
    return logged["val_score"]


def test_validation_score_is_roc_auc_binary_and_balanced_accuracy_ordinal():
    p = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.65, 0.35]]
    assert _val_score(True, [0, 0, 1, 1], p) == pytest.approx(0.75)  # ROC-AUC of P(demented)
    # ordinal: mean recall over the classes present among the validation brains (class 3 absent, predicted once)
    p4 = np.eye(4)[[0, 0, 3, 1, 2, 2]] * 0.7 + 0.075
    assert _val_score(False, [0, 0, 0, 1, 2, 2], p4) == pytest.approx((2 / 3 + 1 + 1) / 3)


def test_validation_score_of_one_class_is_the_mean_log_likelihood():
    p = [[0.8, 0.2], [0.5, 0.5]]
    assert _val_score(True, [0, 0], p) == pytest.approx(np.mean(np.log([0.8, 0.5])), rel=1e-6)


def test_collate_pads_bags_and_masks_the_padding():
    source = torch.arange(10, dtype=torch.float32).reshape(5, 2)
    ds = BagDataset(source, [[0, 1, 2], [3]], [[0.0, 0.5, 1.0], [0.0]], [1, 0])
    x, mask, pos, y = collate_bags([ds[0], ds[1]])
    assert x.shape == (2, 3, 2) and mask.tolist() == [[True, True, True], [True, False, False]]
    torch.testing.assert_close(x[1, 0], source[3])
    assert float(x[1, 1:].abs().sum()) == 0.0 and y.tolist() == [1, 0] and pos[0].tolist() == [0.0, 0.5, 1.0]
