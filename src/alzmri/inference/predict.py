"""Class probabilities from a trained run for arrays or image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from alzmri.data.images import UnreadableImageError, decode_image
from alzmri.errors import AlzmriError
from alzmri.runs import RunInfo, load_model
from alzmri.training.module import prepare_batch


@torch.inference_mode()
def predict_proba(model: nn.Module, info: RunInfo, images: np.ndarray, *, batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
    """Softmax probabilities for preprocessed slices.

    Parameters
    ----------
    model : nn.Module
        In eval mode.
    info : RunInfo
        Gives normalisation and channels.
    images : ndarray of shape (n, image_size, image_size), dtype uint8

    Returns
    -------
    ndarray of shape (n, n_classes), dtype float64; rows sum to 1.
    """
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
        x = prepare_batch(x, mean=info.mean, std=info.std, in_chans=info.in_chans)
        out.append(torch.softmax(model(x).float(), dim=1).cpu().numpy())
    if not out:
        return np.zeros((0, len(info.class_names)))
    return np.concatenate(out).astype(np.float64)


def load_image_files(paths: list[str | Path], image_size: int) -> np.ndarray:
    """Decode image files the way training did: grayscale uint8, resized.

    Returns
    -------
    ndarray of shape (n, image_size, image_size), dtype uint8

    Raises
    ------
    AlzmriError
        A file is missing or unreadable (named in the message).
    """
    arrays = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise AlzmriError(f"{p}: image file not found")
        try:
            arrays.append(decode_image(p, image_size))
        except UnreadableImageError as exc:
            raise AlzmriError(f"{p}: {exc}; pass a JPEG or PNG slice") from None
    return np.stack(arrays) if arrays else np.zeros((0, image_size, image_size), np.uint8)


def predict_files(run_dir: str | Path, paths: list[str | Path]) -> list[dict]:
    """Predict image files with a run's model.

    Returns
    -------
    list of dict
        Per image: ``path``, ``predicted_class``, ``confidence`` (max probability) and
        ``probabilities`` (class name -> float).
    """
    model, info = load_model(run_dir)
    images = load_image_files(paths, info.image_size)
    probs = predict_proba(model, info, images)
    results = []
    for p, row in zip(paths, probs):
        k = int(np.argmax(row))
        results.append(
            {
                "path": str(p),
                "predicted_class": info.class_names[k],
                "confidence": float(row[k]),
                "probabilities": {c: float(v) for c, v in zip(info.class_names, row)},
            }
        )
    return results
