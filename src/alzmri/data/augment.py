"""Training augmentation with kornia: the notebook's set, on batches or as a balanced augmented set.

The original notebook used, for its transfer-learning runs::

    RandomAffine(5 deg, translate 0.1, scale 0.75-1.05, p=0.1), RandomPerspective(0.1, p=0.1),
    RandomHorizontalFlip(p=0.1), RandomVerticalFlip(p=0.1),
    RandomGaussianBlur(kernel 5x5 .. 9x9, sigma 1e-4-0.5, p=0.4), RandomSharpness(p=0.1)

applied to whole batches of float tensors (batch, channels, H, W) in [0, 1] on whatever
device they live on (:func:`notebook_augmentation`). (It trained AltzCNN itself without
augmentation.) The notebook also built a *balanced augmented set*, augmenting the minority
classes up to the size of the largest; :func:`balanced_copies` builds it the honest way,
from the training split only, after splitting (augmenting before the split puts copies of
a test slice into training).
"""

from __future__ import annotations

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn


def _notebook_transforms(p: float) -> nn.Module:
    """The notebook's kornia transforms; ``p`` is the probability of each one except the
    vertical flip (always 0.1, as in the notebook)."""
    return K.AugmentationSequential(
        K.RandomAffine(degrees=5.0, translate=(0.1, 0.1), scale=(0.75, 1.05), p=p),
        K.RandomPerspective(distortion_scale=0.1, p=p),
        K.RandomHorizontalFlip(p=p),
        K.RandomVerticalFlip(p=0.1),
        K.RandomGaussianBlur(kernel_size=(5, 5), sigma=(0.0001, 0.5), p=max(p, 0.4)),
        K.RandomSharpness(p=p),
        data_keys=["input"],
        same_on_batch=False,
    )


def notebook_augmentation() -> nn.Module:
    """The notebook's augmentation as one kornia module (probability 0.1 each, blur 0.4).

    Input and output: float tensor (batch, channels, H, W) in [0, 1]; random per sample.
    """
    return _notebook_transforms(0.1)


def balance_augmentation() -> nn.Module:
    """The notebook's transforms for making augmented copies (:func:`balanced_copies`).

    The same transforms and ranges as :func:`notebook_augmentation`, with the
    probabilities of the affine, perspective, horizontal flip, blur and sharpness raised
    to 0.5 so that almost every copy differs from its source (none applied: 3 % of
    copies); the vertical flip keeps the notebook's 0.1.

    Input and output: float tensor (batch, channels, H, W) in [0, 1].
    """
    return _notebook_transforms(0.5)


def balanced_copies(
    images: np.ndarray,
    labels: np.ndarray,
    splits: np.ndarray,
    *,
    seed: int = 42,
    split: str = "train",
    augment: nn.Module | None = None,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augmented copies of the minority classes of one split, so that its classes have equal counts.

    For every class of ``split`` with fewer images than the largest class of ``split``,
    copies are made until it matches: sources are the class's images of ``split`` in a
    seeded random order, cycled (each image is used ``floor`` or ``ceil`` of
    needed / available times), and each copy is one random draw of ``augment`` applied
    once. Images outside ``split`` are never read; nothing is written to disk.

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W), dtype uint8
    labels : ndarray of shape (n_images,), int
    splits : ndarray of shape (n_images,), str
        ``"train"``/``"val"``/``"test"``/``""`` per image.
    seed : int, default=42
        Seeds the choice of sources and the transforms (the global torch RNG is left as
        it was): the same inputs and seed give the same copies.
    split : str, default="train"
    augment : nn.Module, optional
        Kornia module on float (batch, 1, H, W) in [0, 1]; default
        :func:`balance_augmentation`.
    batch_size : int, default=256

    Returns
    -------
    copies : ndarray of shape (n_copies, H, W), dtype uint8
    copy_labels : ndarray of shape (n_copies,), dtype int64
    source_index : ndarray of shape (n_copies,), dtype int64
        Row of ``images`` each copy was made from (always in ``split``).
    """
    images = np.asarray(images)
    labels = np.asarray(labels, dtype=np.int64)
    splits = np.asarray(splits, dtype=str)
    idx = np.flatnonzero(splits == split)
    h, w = images.shape[1:3]
    empty = (np.zeros((0, h, w), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if len(idx) == 0:
        return empty
    classes, counts = np.unique(labels[idx], return_counts=True)
    target = int(counts.max())
    rng = np.random.default_rng(seed)
    sources = []
    for c, n_c in zip(classes, counts):
        need = target - int(n_c)
        if need <= 0:
            continue
        members = idx[labels[idx] == c]
        reps = -(-need // len(members))
        order = np.concatenate([rng.permutation(members) for _ in range(reps)])[:need]
        sources.append(order)
    if not sources:
        return empty
    src = np.concatenate(sources).astype(np.int64)
    aug = augment if augment is not None else balance_augmentation()
    out = np.empty((len(src), h, w), dtype=np.uint8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad():
            for start in range(0, len(src), batch_size):
                sel = src[start : start + batch_size]
                x = torch.from_numpy(np.ascontiguousarray(images[sel])).float().div_(255.0).unsqueeze(1)
                y = aug(x).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
                out[start : start + len(sel)] = y[:, 0].numpy()
    return out, labels[src], src
