"""Batched training augmentation on the device (kornia): the notebook's set.

The original notebook used, for its transfer-learning runs::

    RandomAffine(5 deg, translate 0.1, scale 0.75-1.05, p=0.1), RandomPerspective(0.1, p=0.1),
    RandomHorizontalFlip(p=0.1), RandomVerticalFlip(p=0.1),
    RandomGaussianBlur(kernel 5x5 .. 9x9, sigma 1e-4-0.5, p=0.4), RandomSharpness(p=0.1)

applied to whole batches of float tensors (batch, channels, H, W) in [0, 1] on whatever
device they live on. (It trained AltzCNN itself without augmentation.)
"""

from __future__ import annotations

import kornia.augmentation as K
from torch import nn


def notebook_augmentation() -> nn.Module:
    """The notebook's augmentation as one kornia module.

    Input and output: float tensor (batch, channels, H, W) in [0, 1]; random per sample.
    """
    return K.AugmentationSequential(
        K.RandomAffine(degrees=5.0, translate=(0.1, 0.1), scale=(0.75, 1.05), p=0.1),
        K.RandomPerspective(distortion_scale=0.1, p=0.1),
        K.RandomHorizontalFlip(p=0.1),
        K.RandomVerticalFlip(p=0.1),
        K.RandomGaussianBlur(kernel_size=(5, 5), sigma=(0.0001, 0.5), p=0.4),
        K.RandomSharpness(p=0.1),
        data_keys=["input"],
        same_on_batch=False,
    )
