"""Batch preprocessing shared by training, evaluation and inference: uint8 slices to normalised float input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from alzmri.data.preprocess import prepare_batch


def _slices() -> torch.Tensor:
    return torch.from_numpy(np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4) * 7)


def test_grayscale_batch_is_scaled_then_normalised():
    x = _slices()
    before = x.clone()
    out = prepare_batch(x, mean=0.2, std=0.5, in_chans=1)
    assert out.shape == (2, 1, 4, 4) and out.dtype == torch.float32 and out.is_contiguous()
    expect = (before.numpy().astype(np.float32) / 255.0 - 0.2) / 0.5
    np.testing.assert_allclose(out[:, 0].numpy(), expect, rtol=1e-6, atol=1e-6)
    assert torch.equal(x, before)  # the input batch is left as it was
    # (batch, 1, H, W) input gives the same result
    assert torch.equal(prepare_batch(x.unsqueeze(1), mean=0.2, std=0.5, in_chans=1), out)


def test_three_channels_copy_the_slice():
    out = prepare_batch(_slices(), mean=0.5, std=0.25, in_chans=3)
    assert out.shape == (2, 3, 4, 4) and out.is_contiguous()
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert out[0, 0, 0, 0].item() == pytest.approx(-2.0)  # pixel 0: (0 - 0.5) / 0.25


def test_augmentation_sees_the_zero_to_one_batch_before_normalisation():
    seen = []

    class Record(nn.Module):
        def forward(self, x):
            seen.append((float(x.min()), float(x.max()), tuple(x.shape)))
            return torch.zeros_like(x)

    out = prepare_batch(_slices(), mean=0.1, std=0.5, in_chans=1, augment=Record())
    assert seen == [(0.0, pytest.approx(31 * 7 / 255), (2, 1, 4, 4))]
    assert torch.allclose(out, torch.full((2, 1, 4, 4), -0.2))  # the augmented (all-zero) batch, normalised
