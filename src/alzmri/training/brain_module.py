"""Lightning pieces of brain-level training: bags as batches, the module, the best-epoch state.

A batch is a few bags padded to the longest: ``x`` (bags, slices, ...) with a ``mask``
(bags, slices) marking real slices and ``positions`` (bags, slices) in [0, 1]. ``x`` holds
cached slice features (frozen encoder) or uint8 slices (fine-tuned encoder).
"""

from __future__ import annotations

import copy
import warnings

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from sklearn.metrics import balanced_accuracy_score
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from alzmri.data.preprocess import prepare_batch
from alzmri.training.selection import roc_auc_demented

__all__ = ["BagDataset", "BestState", "BrainModule", "bag_loader", "collate_bags"]


class BagDataset(Dataset):
    """Bags of rows of ``source``.

    Parameters
    ----------
    source : tensor of shape (n_images, ...)
        Slice features (float32, (n_images, D)) or slices (uint8, (n_images, H, W)).
    members : list of int arrays
        Rows of each bag, ordered by position.
    positions : list of float arrays
        Relative position of each member (0..1).
    labels : int array of shape (n_bags,)
        Task labels (-1 when unknown, at prediction).
    """

    def __init__(self, source: Tensor, members, positions, labels):
        self.source = source
        self.members = [torch.as_tensor(np.asarray(m), dtype=torch.long) for m in members]
        self.positions = [torch.as_tensor(np.asarray(p), dtype=torch.float32) for p in positions]
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, i: int):
        return self.source[self.members[i]], self.positions[i], self.labels[i]


def collate_bags(items) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pad bags to the longest: x (bags, S, ...), mask (bags, S) bool, positions (bags, S), labels (bags,)."""
    s = max(len(p) for _, p, _ in items)
    first = items[0][0]
    x = torch.zeros((len(items), s, *first.shape[1:]), dtype=first.dtype)
    mask = torch.zeros((len(items), s), dtype=torch.bool)
    pos = torch.zeros((len(items), s), dtype=torch.float32)
    for i, (xi, pi, _) in enumerate(items):
        x[i, : len(pi)] = xi
        mask[i, : len(pi)] = True
        pos[i, : len(pi)] = pi
    return x, mask, pos, torch.stack([y for _, _, y in items])


def bag_loader(ds: BagDataset, batch_size: int, *, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader of padded bag batches (seeded shuffling)."""
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_bags, generator=g if shuffle else None)


class BrainModule(L.LightningModule):
    """Weighted cross-entropy (or CORN) training of a :class:`~alzmri.models.mil.BrainClassifier` with AdamW.

    Parameters
    ----------
    model : BrainClassifier
    lr, weight_decay : float
    class_weights : float tensor of shape (num_classes,), optional
        Cross-entropy weights (inverse class frequency of the training bags).
    binary : bool
        The validation score is ROC-AUC of P(demented) (binary task) or balanced
        accuracy (ordinal tasks).
    loss : {"cross_entropy", "ordinal"}
    images : bool
        ``x`` holds uint8 slices (normalised here with ``mean``, ``std``, ``in_chans``)
        rather than features.

    Logged per epoch: ``train_loss``, ``val_loss``, ``val_score`` (minus the validation
    log loss where the score is undefined: validation brains of one class).
    """

    def __init__(self, model, *, lr: float = 1e-3, weight_decay: float = 1e-4, class_weights: Tensor | None = None, binary: bool = True,
                 loss: str = "cross_entropy", images: bool = False, mean: float = 0.5, std: float = 0.5, in_chans: int = 1):
        super().__init__()
        self.model = model
        self.save_hyperparameters(ignore=["model", "class_weights"])
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.ones(model.num_classes), persistent=False)
        self._val: list[tuple[Tensor, Tensor]] = []
        if loss == "ordinal":
            from dlordinal.losses import CORNLoss

            self._corn = CORNLoss(num_classes=model.num_classes + 1)

    def _inputs(self, x: Tensor) -> Tensor:
        if not self.hparams.images:
            return x.float()
        b, s = x.shape[:2]
        hp = self.hparams
        return prepare_batch(x.flatten(0, 1), mean=hp.mean, std=hp.std, in_chans=hp.in_chans).reshape(b, s, hp.in_chans, *x.shape[2:])

    def forward(self, x: Tensor, mask: Tensor, pos: Tensor) -> Tensor:
        return self.model(self._inputs(x), mask, pos)

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.hparams.loss == "ordinal":  # the head's raw CORN logits, before make_ordinal's hook
            from alzmri.models.ordinal import corn_logits_from_log_probs

            return self._corn(corn_logits_from_log_probs(out.float()), y)
        return F.cross_entropy(out.float(), y, weight=self.class_weights)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, mask, pos, y = batch
        loss = self._loss(self(x, mask, pos), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, mask, pos, y = batch
        out = self(x, mask, pos)
        self.log("val_loss", self._loss(out, y), on_step=False, on_epoch=True, batch_size=len(y))
        self._val.append((torch.softmax(out.float(), dim=1).cpu(), y.cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        p = torch.cat([v[0] for v in self._val]).numpy()
        y = torch.cat([v[1] for v in self._val]).numpy()
        self._val.clear()
        if self.hparams.binary:
            score = roc_auc_demented(y, p)
        else:  # mean recall over the classes present among the validation brains
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
                score = balanced_accuracy_score(y, p.argmax(axis=1))
        if score is None:  # one class among the validation brains: fall back on the validation loss (higher is better)
            score = float(np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))
        self.log("val_score", float(score), prog_bar=True)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class BestState(Callback):
    """Keep, in memory, the model state of the epoch with the best ``monitor`` (ties: the earlier epoch).

    Attributes
    ----------
    best_epoch : int
        1-based epoch of the kept state (0 before any validation).
    best_score : float
    history : list of dict
        One row per epoch: ``epoch`` and the logged ``train_loss``, ``val_loss``, ``val_score``.
    """

    def __init__(self, monitor: str = "val_score"):
        self.monitor = monitor
        self.best_epoch = 0
        self.best_score = -float("inf")
        self.state: dict | None = None
        self.history: list[dict] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # runs after the epoch's validation, when train and validation values are both logged
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1, **{k: round(float(m[k]), 6) for k in ("train_loss", "val_loss", "val_score") if k in m}}
        self.history.append(row)
        score = float(m.get(self.monitor, -float("inf")))
        if score > self.best_score:
            self.best_score, self.best_epoch = score, trainer.current_epoch + 1
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in pl_module.model.state_dict().items()})

    def restore(self, model) -> None:
        """Load the kept state into ``model`` (nothing when no epoch was validated)."""
        if self.state is not None:
            model.load_state_dict(self.state)
