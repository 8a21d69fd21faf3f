"""Batched training augmentation on the device (kornia), the notebook's set.

Small affine (rotation up to 10 degrees, 5 % shift, 0.95-1.05 scale), perspective,
horizontal and vertical flips, Gaussian blur and sharpness, applied to whole batches of
float tensors (batch, channels, H, W) in [0, 1] on whatever device they live on.
"""

from __future__ import annotations

import kornia.augmentation as K
from torch import nn


def notebook_augmentation() -> nn.Module:
    """The notebook's augmentation as one kornia module.

    Input and output: float tensor (batch, channels, H, W) in [0, 1]; random per sample.
    """
    return K.AugmentationSequential(
        K.RandomAffine(degrees=10.0, translate=(0.05, 0.05), scale=(0.95, 1.05), p=0.5),
        K.RandomPerspective(distortion_scale=0.1, p=0.2),
        K.RandomHorizontalFlip(p=0.5),
        K.RandomVerticalFlip(p=0.2),
        K.RandomGaussianBlur(kernel_size=(3, 3), sigma=(0.1, 1.0), p=0.2),
        K.RandomSharpness(sharpness=0.5, p=0.2),
        data_keys=["input"],
    )
