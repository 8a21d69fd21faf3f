"""A Lightning DataModule over decoded images held in memory.

Batches are taken by fancy indexing of one uint8 tensor (``__getitems__``), so an epoch
costs no decoding and no per-sample Python work; conversion to float, augmentation and
normalisation happen on the device in the LightningModule.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class ArrayDataset(Dataset):
    """Images and labels held as tensors.

    Parameters
    ----------
    images : uint8 tensor of shape (n, H, W)
    labels : int64 tensor of shape (n,)
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"images and labels disagree: {images.shape[0]} vs {labels.shape[0]}")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.labels[i]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.images[idx], self.labels[idx]


def _batch_identity(batch):
    return batch


class SliceDataModule(L.LightningDataModule):
    """Train/val/test loaders over in-memory slices.

    Parameters
    ----------
    images : ndarray of shape (n, H, W), dtype uint8
    labels : ndarray of shape (n,), int
    splits : ndarray of shape (n,), str
        ``"train"``, ``"val"``, ``"test"`` or ``""`` (left out).
    batch_size : int
    seed : int
        Seeds the training shuffle.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, splits: np.ndarray, *, batch_size: int = 128, seed: int = 42, num_workers: int = 0):
        super().__init__()
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.splits = np.asarray(splits, dtype=str)
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers

    def indices(self, split: str) -> np.ndarray:
        """Positions of the images of ``split``, int64 array."""
        return np.flatnonzero(self.splits == split)

    def dataset(self, split: str) -> ArrayDataset:
        idx = torch.from_numpy(self.indices(split))
        return ArrayDataset(self.images[idx], self.labels[idx])

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=gen,
            collate_fn=_batch_identity,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
