"""SliceClassifier's performance default: channels-last layout on CPUs."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn

from alzmri.data.datamodule import SliceDataModule
from alzmri.models import create_model
from alzmri.training.module import SliceClassifier


def _fit(**kwargs) -> tuple[nn.Module, L.Trainer, SliceClassifier]:
    """AltzCNN trained 2 epochs (4 steps) on 16 random 32 x 32 slices, validated on 8."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(24, 32, 32), dtype=np.uint8)
    labels = np.arange(24) % 4
    splits = np.array(["train"] * 16 + ["val"] * 8)
    L.seed_everything(0, verbose=False)
    model = create_model("altzcnn", image_size=32, fc_dropout=0.0, conv_dropout=0.0)
    module = SliceClassifier(model, lr=1e-3, mean=0.0, std=1.0, **kwargs)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, deterministic=True, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=SliceDataModule(images, labels, splits, batch_size=8, seed=0))
    return model, trainer, module


def _conv_weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d) and m.in_channels > 1]


def test_cpu_default_is_channels_last_and_trains_as_nchw_does():
    fast, _, module = _fit()
    assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in _conv_weights(fast))
    assert module._memory_format is torch.channels_last

    plain, _, module = _fit(channels_last=False)
    assert all(w.is_contiguous() for w in _conv_weights(plain))
    assert module._memory_format is torch.contiguous_format
    # 4 Adam steps from the same start: the same training up to floating-point rounding, which
    # Adam's normalised step enlarges only where a gradient is near zero; so every tensor's
    # difference is under 5 % of how far training moved it (measured: at most 0.6 %)
    L.seed_everything(0, verbose=False)
    start = create_model("altzcnn", image_size=32, fc_dropout=0.0, conv_dropout=0.0).state_dict()
    a, b = fast.state_dict(), plain.state_dict()
    for k in start:
        moved = float((b[k] - start[k]).norm())
        assert moved > 0, k
        assert float((a[k] - b[k]).norm()) < 0.05 * moved, k
