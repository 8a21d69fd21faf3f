"""A Lightning DataModule over decoded images held in memory.

Batches are taken by fancy indexing of one uint8 tensor (``__getitems__``), so an epoch
costs no decoding and no per-sample Python work; conversion to float, augmentation and
normalisation happen on the device in the LightningModule.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler


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


class EpochShuffleSampler(RandomSampler):
    """A random order of the training set that depends only on ``seed`` and the epoch.

    Lightning calls :meth:`set_epoch` before every training epoch, so a run resumed from
    a checkpoint draws the same batches as an uninterrupted run (a generator seeded once
    would restart where the new process starts, not where the old one stopped).

    Parameters
    ----------
    data_source : Dataset
    seed : int
        With the epoch, seeds the permutation (``numpy.random.SeedSequence([seed, epoch])``).
    """

    def __init__(self, data_source: Dataset, seed: int):
        super().__init__(data_source, generator=torch.Generator())
        self.seed = int(seed)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reseed for ``epoch`` (0-based); the next iteration gives that epoch's order."""
        self.epoch = int(epoch)
        entropy = [self.seed & 0xFFFFFFFFFFFFFFFF, self.epoch]
        self.generator.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]))


def _unpadded_sampler(dataset: Dataset, trainer, split: str):
    """Lightning's ``UnrepeatedDistributedSampler`` for this rank under DDP (rank r takes r, r+W, ...); None with one process.

    Raises
    ------
    AlzmriError
        The split has fewer images than processes (a rank without a batch would stall the others).
    """
    world = int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1
    if world <= 1:
        return None
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    from alzmri.errors import AlzmriError

    if len(dataset) < world:
        raise AlzmriError(f"the {split} split has {len(dataset)} images, fewer than the {world} processes; use at most {len(dataset)} (--devices)")
    return UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=int(trainer.global_rank), shuffle=False)


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
        Seeds the training shuffle (with the epoch: :class:`EpochShuffleSampler`).
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
        dataset = self.dataset(split)
        # under DDP, evaluation loaders are sharded without padding (every slice once);
        # Lightning keeps a DistributedSampler it finds, and pads the training sampler itself
        # (it replaces EpochShuffleSampler, a RandomSampler, by its seeded, epoch-aware one)
        sampler = EpochShuffleSampler(dataset, self.seed) if shuffle else _unpadded_sampler(dataset, self.trainer, split)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            # the loader's own generator (worker seeds): iterating never draws from torch's
            # global generator, whose state a resumed run restores (dropout, augmentation)
            generator=torch.Generator().manual_seed(self.seed),
            collate_fn=_batch_identity,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
