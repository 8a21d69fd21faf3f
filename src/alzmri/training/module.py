"""The LightningModule that trains any registered classifier on uint8 slices."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import Tensor, nn

from alzmri.data.preprocess import prepare_batch


def head_forward(model: nn.Module, features: Tensor) -> Tensor:
    """The model's output from its backbone's pooled ``features`` (batch, D): ``head(drop(features))``.

    For an ordinal model, the K-1 CORN logits become K log class probabilities, as its
    forward hook does.
    """
    from alzmri.models.ordinal import corn_log_probs, is_ordinal

    out = model.head(model.drop(features))
    return corn_log_probs(out) if is_ordinal(model) else out


def balanced_class_weights(y, num_classes: int) -> Tensor:
    """Class weights ``n / (K x n_c)`` of labels ``y``: scikit-learn's ``class_weight="balanced"`` rule.

    Parameters
    ----------
    y : array-like of int, shape (n_samples,)
        Training labels in ``0 .. num_classes - 1``.
    num_classes : int
        K.

    Returns
    -------
    float32 tensor of shape (num_classes,)
        A class absent from ``y`` gets weight 0 (it contributes no term to the loss).
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


class SliceClassifier(L.LightningModule):
    """Cross-entropy or ordinal (CORN) training of ``model`` with Adam.

    Parameters
    ----------
    model : nn.Module
        Maps (batch, in_chans, H, W) float input to (batch, num_classes) logits; with
        ``loss="ordinal"``, to log class probabilities (a model passed through
        :func:`alzmri.models.ordinal.make_ordinal`).
    lr : float
        Adam learning rate.
    weight_decay : float
    mean, std : float
        Input normalisation.
    in_chans : int
    augment : nn.Module, optional
        Batch augmentation used in training steps only.
    channels_last : bool, optional
        Train with the model's 4-D weights and the input batches in channels-last (NHWC)
        memory layout. Default (None): on CPUs, where it made AltzCNN and MobileNetV2
        training faster (docs/performance.md); off on GPUs. Results are the same up to
        floating-point rounding.
    loss : {"cross_entropy", "ordinal"}, default="cross_entropy"
        ``ordinal``: dlordinal's ``CORNLoss`` on the conditional logits recovered from the
        model's log probabilities (:func:`alzmri.models.ordinal.corn_logits_from_log_probs`).
    class_weights : float tensor of shape (num_classes,), optional
        Weights of the cross-entropy per class (``class_weight: balanced``); default equal.
    features : bool, default=False
        Batches are the frozen backbone's pooled features, float32 (batch, D), not uint8
        slices: training and validation compute ``model.head(model.drop(features))``
        (:func:`head_forward`). ``model`` is still the whole
        network, so checkpoints and saved weights are those of a run from images.

    Logged per epoch: ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``,
    ``val_balanced_accuracy``.
    """

    def __init__(self, model: nn.Module, *, lr: float = 3e-4, weight_decay: float = 0.0, mean: float = 0.5, std: float = 0.5, in_chans: int = 1,
                 augment: nn.Module | None = None, channels_last: bool | None = None, loss: str = "cross_entropy", features: bool = False,
                 class_weights: Tensor | None = None):
        super().__init__()
        if loss not in ("cross_entropy", "ordinal"):
            raise ValueError(f"The 'loss' parameter of SliceClassifier must be 'cross_entropy' or 'ordinal'. Got {loss!r} instead.")
        if class_weights is not None and loss != "cross_entropy":
            raise ValueError("The 'class_weights' parameter of SliceClassifier applies to loss='cross_entropy' only. Got loss='ordinal' instead.")
        self.model = model
        self.augment = augment
        self.save_hyperparameters(ignore=["model", "augment", "class_weights"])
        # not persistent: recomputed from the training labels, so checkpoints keep their layout
        self.register_buffer("class_weights", None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32), persistent=False)
        self._val_preds: list[Tensor] = []
        self._val_true: list[Tensor] = []
        self._memory_format = torch.contiguous_format

    def setup(self, stage: str) -> None:
        # before the model is moved, wrapped (DDP) or given to the optimiser
        cl = self.hparams.get("channels_last")
        if self.hparams.get("features"):
            return  # the backbone never runs in training
        if cl is None:
            cl = self.trainer is not None and self.trainer.strategy.root_device.type == "cpu"
        if cl:
            self._memory_format = torch.channels_last
            self.model.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def _logits(self, x: Tensor) -> Tensor:
        """The model's output for a training or validation batch (images, or features with ``features``)."""
        if self.hparams.get("features"):
            return head_forward(self.model, x)
        return self.model(x)

    def compute_loss(self, out: Tensor, y: Tensor) -> Tensor:
        """The training loss of the model's output ``out`` (batch, K) for labels ``y``."""
        if self.hparams.get("loss", "cross_entropy") == "ordinal":
            from dlordinal.losses import CORNLoss

            from alzmri.models.ordinal import corn_logits_from_log_probs

            return CORNLoss(num_classes=out.shape[1])(corn_logits_from_log_probs(out), y)
        w = self.class_weights
        return F.cross_entropy(out, y, weight=None if w is None else w.to(out.dtype))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        hp = self.hparams
        if hp.get("features"):
            return x, y  # float32 features: nothing to prepare
        aug = self.augment if (self.trainer is not None and self.trainer.training and self.augment is not None) else None
        return prepare_batch(x, mean=hp.mean, std=hp.std, in_chans=hp.in_chans, augment=aug).contiguous(memory_format=self._memory_format), y

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, y = batch
        logits = self._logits(x)
        loss = self.compute_loss(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        # sync_dist: under DDP the epoch value is the mean over all ranks (one reduction per epoch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log("train_accuracy", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self._logits(x)
        loss = self.compute_loss(logits, y)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self._val_preds.append(logits.argmax(1).detach().cpu())
        self._val_true.append(y.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        from alzmri.utils.distributed import all_gather_uneven

        empty = torch.zeros(0, dtype=torch.long)
        y = torch.cat(self._val_true) if self._val_true else empty
        p = torch.cat(self._val_preds) if self._val_preds else empty
        self._val_preds.clear()
        self._val_true.clear()
        # under DDP: every rank's predictions (unpadded shards), so all ranks log the same value
        y, p = all_gather_uneven(self, y).cpu().numpy(), all_gather_uneven(self, p).cpu().numpy()
        if len(y) == 0:
            return
        self.log("val_accuracy", float(np.mean(y == p)), prog_bar=True)
        self.log("val_balanced_accuracy", float(balanced_accuracy_score(y, p)), prog_bar=True)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
