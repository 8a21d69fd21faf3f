"""Brain-level models: a slice encoder, pooling over a bag of slices, one prediction per brain.

A bag is one brain's slices (ordered by position, any number of them). Each slice goes
through a slice encoder (any registry model's ``forward_features``; frozen with cached
features, or fine-tuned), a small projection, and the bag is pooled into one brain vector:

* ``mean``: the average over the slices;
* ``attention``: gated attention pooling (Ilse, Tomczak & Welling 2018), a learned weight
  per slice, softmax over the bag; the weights say which slices the prediction rests on.

Optionally each slice's relative position in its brain (0 = first, 1 = last) enters as a
sinusoidal code, so the model can weigh the same feature differently at the level of the
ventricles and at the vertex.

Why our own ~100 lines rather than a MIL library: gated attention is three linear layers;
torchmil brings tensordict, h5py and einops for it, and MONAI's ``MILModel`` is tied to a
torchvision ResNet-50 over 2-D patches rather than any slice encoder of the registry.

References
----------
Ilse, M., Tomczak, J. M., & Welling, M. (2018). Attention-based deep multiple instance
learning. *ICML*, 2127-2136.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["POOLINGS", "AttentionPool", "BrainClassifier", "MeanPool", "position_code"]

POOLINGS = ("mean", "attention")
#: Width of the sinusoidal slice-position code.
POSITION_DIM = 8


def position_code(positions: Tensor, dim: int = POSITION_DIM) -> Tensor:
    """Sinusoidal code of relative slice positions.

    Parameters
    ----------
    positions : float tensor of shape (batch, slices), values in [0, 1]
    dim : int, default=8 (even)

    Returns
    -------
    float tensor of shape (batch, slices, dim): ``sin(pi k p), cos(pi k p)`` for k = 1..dim/2
    """
    k = torch.arange(1, dim // 2 + 1, device=positions.device, dtype=positions.dtype) * math.pi
    a = positions.unsqueeze(-1) * k
    return torch.cat([a.sin(), a.cos()], dim=-1)


def _masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=1).nan_to_num(0.0)


class MeanPool(nn.Module):
    """Mean over the slices of each bag; weights ``1 / n_slices``."""

    def forward(self, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """h (batch, slices, D), mask (batch, slices) bool -> pooled (batch, D), weights (batch, slices)."""
        w = mask.to(h.dtype)
        w = w / w.sum(dim=1, keepdim=True).clamp_min(1.0)
        return torch.einsum("bs,bsd->bd", w, h), w


class AttentionPool(nn.Module):
    """Gated attention pooling (Ilse et al. 2018, eq. 9): ``a_i = softmax(w^T (tanh(V h_i) * sigmoid(U h_i)))``.

    Parameters
    ----------
    dim : int
        Width D of the slice vectors.
    hidden : int, default=64
        Width of the attention layers.
    """

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.v = nn.Linear(dim, hidden)
        self.u = nn.Linear(dim, hidden)
        self.w = nn.Linear(hidden, 1)

    def forward(self, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """h (batch, slices, D), mask (batch, slices) bool -> pooled (batch, D), weights (batch, slices) summing to 1."""
        scores = self.w(torch.tanh(self.v(h)) * torch.sigmoid(self.u(h))).squeeze(-1)
        a = _masked_softmax(scores.float(), mask).to(h.dtype)
        return torch.einsum("bs,bsd->bd", a, h), a


class BrainClassifier(nn.Module):
    """One prediction per bag of slices.

    Parameters
    ----------
    encoder : nn.Module or None
        The slice encoder: maps (n, in_chans, H, W) to (n, feature_dim) through
        ``forward_features`` (every registry model). None: the model is given slice
        features (frozen encoder, cached features) instead of images.
    feature_dim : int
        Width of the encoder's features.
    num_classes : int
    pooling : {"mean", "attention"}, default="attention"
    slice_position : bool, default=False
        Append a sinusoidal code of each slice's relative position to its features.
    hidden : int, default=128
        Width of the slice projection.
    dropout : float, default=0.25

    Forward
    -------
    ``model(x, mask=None, positions=None) -> logits (batch, num_classes)``, where ``x`` is
    images (batch, slices, in_chans, H, W) float with an encoder, or features
    (batch, slices, feature_dim) without; ``mask`` (batch, slices) bool marks real slices
    (padding False; default all real); ``positions`` (batch, slices) float in [0, 1].
    :meth:`forward_with_weights` also returns the pooling weights (batch, slices).
    """

    def __init__(self, encoder: nn.Module | None, feature_dim: int, num_classes: int, *, pooling: str = "attention",
                 slice_position: bool = False, hidden: int = 128, dropout: float = 0.25):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        self.encoder = encoder
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.slice_position = bool(slice_position)
        d_in = self.feature_dim + (POSITION_DIM if slice_position else 0)
        self.project = nn.Sequential(nn.LayerNorm(d_in), nn.Dropout(dropout), nn.Linear(d_in, hidden), nn.GELU())
        self.pool = AttentionPool(hidden) if pooling == "attention" else MeanPool()
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)
        #: Input preprocessing of the encoder (``mean``, ``std``, ``in_chans``, ``image_size``), set by whoever builds it.
        self.preprocessing: dict = {"mean": 0.5, "std": 0.5, "in_chans": 1, "image_size": 64}

    def slice_features(self, x: Tensor) -> Tensor:
        """Images (batch, slices, C, H, W) -> encoder features (batch, slices, feature_dim)."""
        b, s = x.shape[:2]
        f = self.encoder.forward_features(x.flatten(0, 1)) if hasattr(self.encoder, "forward_features") else self.encoder(x.flatten(0, 1))
        if f.ndim > 2:
            f = f.mean(dim=tuple(range(2, f.ndim)))
        return f.reshape(b, s, -1)

    def forward_with_weights(self, x: Tensor, mask: Tensor | None = None, positions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Logits (batch, num_classes) and pooling weights (batch, slices), float."""
        f = self.slice_features(x) if self.encoder is not None else x
        b, s = f.shape[:2]
        if mask is None:
            mask = torch.ones(b, s, dtype=torch.bool, device=f.device)
        if self.slice_position:
            if positions is None:
                positions = torch.linspace(0, 1, s, device=f.device).expand(b, s) if s > 1 else torch.full((b, s), 0.5, device=f.device)
            f = torch.cat([f, position_code(positions.to(f.dtype))], dim=-1)
        h = self.project(f)
        pooled, w = self.pool(h, mask)
        return self.head(self.drop(pooled)), w

    def forward(self, x: Tensor, mask: Tensor | None = None, positions: Tensor | None = None) -> Tensor:
        return self.forward_with_weights(x, mask, positions)[0]
