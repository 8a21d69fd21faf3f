"""Class probabilities computed by several processes (Lightning DDP), gathered into dataset order.

Every process predicts a shard of the slices (Lightning's predict loop uses an
unpadded sampler: rank r takes r, r+W, ...), each prediction travels with the index of
its slice, all ranks' (index, probabilities) pairs are gathered, and rank 0 keeps one
row per index, sorted by index. The result is the array a single process computes with
:func:`alzmri.runs.predict_proba` (equal up to float rounding of the
batched convolutions), so every metric computed from it is the single-process metric:
no slice is counted twice by sampler padding and none is dropped.
"""

from __future__ import annotations

import warnings

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from alzmri.utils.distributed import ProcessLayout, all_gather_uneven, rank_failures, resolve_ranks
from alzmri.data.preprocess import prepare_batch

__all__ = ["distributed_predict_proba", "merge_gathered"]


class _IndexedImages(Dataset):
    """(index, uint8 image) pairs; batches by fancy indexing."""

    def __init__(self, images: np.ndarray):
        self.images = torch.from_numpy(np.ascontiguousarray(images))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int):
        return torch.tensor(i, dtype=torch.long), self.images[i]

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices, dtype=torch.long)
        return idx, self.images[idx]


def _identity(batch):
    return batch


class _ProbabilityModule(L.LightningModule):
    """Softmax probabilities of a trained classifier, collected with their slice indices."""

    def __init__(self, model: nn.Module, *, mean: float, std: float, in_chans: int, n_classes: int, temperature: float = 1.0):
        super().__init__()
        self.model = model
        self.mean, self.std, self.in_chans, self.temperature = mean, std, in_chans, temperature
        self.n_classes = n_classes
        self._idx: list[Tensor] = []
        self._probs: list[Tensor] = []
        self.gathered: tuple[Tensor, Tensor] | None = None

    def predict_step(self, batch, batch_idx: int):
        idx, x = batch
        x = prepare_batch(x, mean=self.mean, std=self.std, in_chans=self.in_chans)
        # as predict_proba: float32 softmax of the logits / temperature
        self._idx.append(idx)
        self._probs.append(torch.softmax(self.model(x).float() / self.temperature, dim=1))
        return None

    def on_predict_epoch_end(self) -> None:
        idx = torch.cat(self._idx) if self._idx else torch.zeros(0, dtype=torch.long)
        probs = torch.cat(self._probs) if self._probs else torch.zeros((0, self.n_classes))
        self._idx.clear()
        self._probs.clear()
        self.gathered = (all_gather_uneven(self, idx).cpu(), all_gather_uneven(self, probs).cpu())


def merge_gathered(indices: np.ndarray, probs: np.ndarray, n: int) -> np.ndarray:
    """One row per slice, in slice order, from gathered (index, probabilities) pairs.

    Duplicates (a padded sampler repeats slices to even out the ranks) are dropped:
    the first row of each index is kept (repeats of a slice are predictions of the same
    input by the same weights).

    Parameters
    ----------
    indices : int array of shape (m,)
        Slice index of every gathered row, m >= n.
    probs : float array of shape (m, n_classes)
    n : int
        Number of slices predicted.

    Returns
    -------
    ndarray of shape (n, n_classes), dtype float64
        Row i belongs to slice i.

    Raises
    ------
    RuntimeError
        A slice is missing or an index is out of range (a bug: every slice must be
        predicted).
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    probs = np.asarray(probs)
    if len(indices) != len(probs):
        raise RuntimeError(f"{len(indices)} indices for {len(probs)} rows of probabilities")
    uniq, first = np.unique(indices, return_index=True)
    if len(uniq) != n or (n and (uniq[0] != 0 or uniq[-1] != n - 1)):
        missing = sorted(set(range(n)) - set(uniq.tolist()))[:5]
        raise RuntimeError(f"gathered predictions cover {len(uniq)} of {n} slices (missing e.g. {missing})")
    return probs[first].astype(np.float64)


def distributed_predict_proba(
    model: nn.Module,
    info,
    images: np.ndarray,
    layout: ProcessLayout,
    *,
    batch_size: int = 256,
    temperature: float = 1.0,
) -> np.ndarray | None:
    """Softmax probabilities of ``images`` computed by ``layout.processes`` processes.

    Every process of the run must call it with the same ``images`` (they all load the
    run the same way); Lightning's launcher starts ranks 1..N-1 here when no external
    launcher (torchrun, srun) did.

    Parameters
    ----------
    model : nn.Module
        The trained classifier; (batch, in_chans, H, W) float32 -> (batch, n_classes) logits.
    info : RunInfo
        Gives ``mean``, ``std`` and ``in_chans``.
    images : ndarray of shape (n, image_size, image_size), dtype uint8
    layout : ProcessLayout
    batch_size : int, default=256
        Per process.
    temperature : float, default=1.0
        Logits are divided by it before the softmax.

    Returns
    -------
    ndarray of shape (n, n_classes), dtype float64, or None
        Rows in the order of ``images`` on global rank 0; None on every other rank (which
        must then write nothing).

    Raises
    ------
    AlzmriError
        The layout does not fit the machine; another rank died (one line).
    """
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*predict returned None.*")
    ranks = resolve_ranks(layout)
    n = len(images)
    if n < ranks.world_size:
        from alzmri.errors import AlzmriError

        raise AlzmriError(f"{n} slices to evaluate with {ranks.world_size} processes; use at most {n} processes (--devices)")
    module = _ProbabilityModule(model.float().eval(), mean=info.mean, std=info.std, in_chans=info.in_chans,
                               n_classes=len(info.class_names), temperature=temperature)
    loader = DataLoader(_IndexedImages(images), batch_size=batch_size, shuffle=False, collate_fn=_identity)
    trainer = L.Trainer(
        **layout.trainer_kwargs(),
        precision="32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=True,
    )
    with rank_failures(ranks):
        trainer.predict(module, dataloaders=loader, return_predictions=False)
    if not trainer.is_global_zero:
        return None
    assert module.gathered is not None
    idx, probs = module.gathered
    return merge_gathered(idx.numpy(), probs.numpy(), n)
