"""A backbone that yields pooled features plus a linear head: the shape every zoo model has.

torchvision and timm name their classifier differently (``fc``, ``classifier.1``,
``heads.head``, ``head``); wrapping the network with its classifier removed gives every
model the same two parts, ``model.backbone`` and ``model.head``, the same
``forward_features`` and the same state-dict layout (``backbone.*``, ``head.*``).
"""

from __future__ import annotations

from torch import Tensor, nn


class BackboneClassifier(nn.Module):
    """``head(dropout(backbone(x)))`` with the penultimate features exposed.

    Parameters
    ----------
    backbone : nn.Module
        Maps (batch, in_chans, H, W) to pooled features (batch, num_features); its own
        classifier has been replaced by ``nn.Identity``.
    num_features : int
        Width D of the pooled features.
    num_classes : int
    drop_rate : float, default=0.0
        Dropout before the head (torchvision's EfficientNet/MobileNet put 0.2 there).
    native_head : str, default="head"
        Dotted name of the classifier in the original network's state dict (``"fc"``,
        ``"classifier.1"``, ``"heads.head"``); used to read that network's weight files.

    Attributes
    ----------
    frozen_backbone : bool
        Set by the ``"linear"`` and ``"adapter"`` fine-tuning modes: the backbone then
        stays in eval mode under ``model.train()``, so its batch-norm statistics stay
        those of the pretrained weights and its dropout is off.
    """

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, *, drop_rate: float = 0.0, native_head: str = "head"):
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(num_features, num_classes)
        self.num_features = num_features
        self.num_classes = num_classes
        self.native_head = native_head
        self.frozen_backbone = False

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled penultimate features.

        Parameters
        ----------
        x : float tensor of shape (batch, in_chans, H, W)

        Returns
        -------
        float tensor of shape (batch, num_features)
        """
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, float tensor of shape (batch, num_classes)."""
        return self.head(self.drop(self.forward_features(x)))

    def train(self, mode: bool = True) -> "BackboneClassifier":
        super().train(mode)
        if mode and self.frozen_backbone:
            self.backbone.eval()
        return self

    def native_to_own(self, state: dict) -> dict:
        """Rename the original network's state-dict keys to this wrapper's.

        Keys under ``native_head`` become ``head.*``, all others ``backbone.*``. A state
        dict already in this layout (every key under ``backbone.``, ``head.``) is
        returned unchanged.
        """
        if all(k.startswith(("backbone.", "head.")) for k in state):
            return dict(state)
        prefix = self.native_head + "."
        return {("head." + k[len(prefix):] if k.startswith(prefix) else "backbone." + k): v for k, v in state.items()}
