"""Slice runs with a frozen backbone: train the head on cached features, not on images.

A :class:`~alzmri.models.classifier.BackboneClassifier` whose trainable parameters are all
in its head (``finetune: linear``, or ``finetune: adapter`` with DoRA adapters on the head
only) computes ``head(drop(backbone(x)))`` with a backbone that stays in eval mode: its
pooled features of an image are the same in every epoch, fold and run. Without
augmentation, :func:`frozen_features` computes them once per image through
:func:`alzmri.training.features.slice_features` (cached on disk, keyed by the data, the
backbone's weights, preprocessing and precision; shared with brain-level runs of the same
encoder) and the run trains only the head on them (:func:`head_forward`). The model, its
checkpoints and everything read from the run folder are the same as a run from images.
"""

from __future__ import annotations

import torch
from torch import nn

from alzmri.training.features import FeatureCache, slice_features

__all__ = ["describe_features", "feature_record", "frozen_features", "head_only", "image_path_reason", "use_cached_features"]

# builder options that change only the head, never the backbone's features
_HEAD_OPTIONS = ("finetune", "adapter_rank", "adapter_alpha", "adapter_targets")


def head_only(model: nn.Module) -> bool:
    """True when ``model`` is ``head(drop(backbone(x)))`` with a frozen backbone and only ``head.*`` training.

    That is a :class:`~alzmri.models.classifier.BackboneClassifier` with its own
    ``forward`` and ``forward_features``, ``frozen_backbone`` set (the backbone stays in
    eval mode, so batch norm and dropout inside it do not change), at least one trainable
    parameter and every trainable parameter under ``head.``, and no forward hook on the
    whole model other than the ordinal one (:func:`alzmri.models.ordinal.make_ordinal`).
    """
    from alzmri.models.classifier import BackboneClassifier
    from alzmri.models.ordinal import _corn_hook

    if not isinstance(model, BackboneClassifier) or not model.frozen_backbone:
        return False
    if type(model).forward is not BackboneClassifier.forward or type(model).forward_features is not BackboneClassifier.forward_features:
        return False
    if model._forward_pre_hooks or any(h is not _corn_hook for h in model._forward_hooks.values()):
        return False
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    return bool(trainable) and all(n.startswith("head.") for n in trainable)


def image_path_reason(cfg, model: nn.Module) -> str:
    """Why a slice run must train from images; ``""`` when the cached-feature path gives the same model.

    Parameters
    ----------
    cfg : TrainConfig
    model : nn.Module
        The run's model as built (after :func:`~alzmri.models.ordinal.make_ordinal`).

    Returns
    -------
    str
        ``""``, or a short reason (``"augment is on"``, ...).
    """
    if not head_only(model):
        return "the backbone trains (or the model is not a frozen backbone plus head)"
    if cfg.augment:
        return "augment is on (features change every epoch)"
    if cfg.balance_augment:
        return "balance_augment is on"
    if int(cfg.devices) * int(cfg.num_nodes) != 1:
        return "more than one process"
    if cfg.loss not in ("cross_entropy", "ordinal"):
        return f"loss {cfg.loss!r}"
    return ""


def use_cached_features(cfg, model: nn.Module) -> bool:
    """True when the run trains its head on cached features (:func:`image_path_reason` is empty)."""
    return not image_path_reason(cfg, model)


def frozen_features(cfg, model: nn.Module, images, *, content_hash: str, precision: str) -> FeatureCache | None:
    """Pooled backbone features of every image for a frozen-backbone run, or None to train from images.

    Parameters
    ----------
    cfg : TrainConfig
    model : nn.Module
        The run's model; its backbone computes the features (on the GPU when the run
        uses one), and every module's train/eval mode is restored afterwards.
    images : ndarray of shape (n_images, H, W), dtype uint8
        Every decoded image of the dataset (the cache is shared by all splits and folds).
    content_hash : str
        The dataset's content hash.
    precision : str
        The run's resolved precision (``bf16-mixed``: bf16 autocast, float32 features).

    Returns
    -------
    FeatureCache or None
        ``features`` of shape (n_images, D), float32; ``hit`` and ``seconds`` (0 on a hit).
    """
    if not use_cached_features(cfg, model):
        return None
    from alzmri.models import get_spec

    spec = get_spec(cfg.model)
    modes = {m: m.training for m in model.modules()}
    device = next(model.parameters()).device
    use_cuda = torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda")
    try:
        if use_cuda:
            model.to("cuda")
        return slice_features(model, images, content_hash=content_hash, encoder_name=cfg.model, mean=spec.mean, std=spec.std, in_chans=cfg.in_chans,
                              precision=precision, options={k: v for k, v in cfg.model_kwargs.items() if k not in _HEAD_OPTIONS},
                              skip=tuple(dict.fromkeys(("head.", f"{spec.head}."))))
    finally:
        model.to(device)
        for m, training in modes.items():
            m.training = training


def feature_record(fc: FeatureCache | None, reason: str = "") -> dict:
    """``run.json``'s ``feature_cache``: ``{"used": True, "hit", "seconds", "key"}`` or ``{"used": False, "reason"}``."""
    if fc is None:
        return {"used": False, "reason": reason}
    return {"used": True, "hit": bool(fc.hit), "seconds": round(float(fc.seconds), 2), "key": fc.key}


def describe_features(fc: FeatureCache) -> str:
    """One console line about the cached-feature path."""
    how = "read from the cache" if fc.hit else f"computed in {fc.seconds:.1f} s and cached"
    return f"frozen backbone: the head trains on backbone features {how} ({fc.features.shape[1]} per image)"
