"""Batch preprocessing shared by training, evaluation and inference: uint8 slices to model input.

It lives on the data side (not beside the LightningModule) so that predicting, with
PyTorch or ONNX Runtime, never imports the training framework.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["prepare_batch"]


def prepare_batch(x: Tensor, *, mean: float, std: float, in_chans: int, augment: nn.Module | None = None) -> Tensor:
    """uint8 slices to normalised float model input.

    Parameters
    ----------
    x : uint8 tensor of shape (batch, H, W) or (batch, 1, H, W)
    mean, std : float
        Normalisation of [0, 1] intensities.
    in_chans : int
        1, or 3 to copy the slice into RGB channels.
    augment : module, optional
        Applied to the [0, 1] batch before normalisation.

    Returns
    -------
    float32 tensor of shape (batch, in_chans, H, W)
    """
    if x.ndim == 3:
        x = x.unsqueeze(1)
    x = x.float().div_(255.0)
    if augment is not None:
        x = augment(x)
    x = (x - mean) / std
    if in_chans == 3:
        x = x.expand(-1, 3, -1, -1)
    return x.contiguous()
