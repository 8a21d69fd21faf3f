"""One registry of model builders, in the manner of timm's ``register_model``.

Each entry carries its defaults: input size, normalisation, the layer Grad-CAM explains,
the names of its head and first convolution and where its ImageNet weights come from.
``create_model(name, ...)`` is the one door to build a model; any timm model is reachable
as ``"timm:<timm name>"`` without registering it.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from alzmri.errors import AlzmriError
from alzmri.models.adapters import FINETUNE_MODES, apply_finetune
from alzmri.models.weight_sources import WeightSource
from alzmri.models.weights import load_weights

TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class ModelSpec:
    """Defaults of a registered model.

    Made by :func:`make_spec` (through :func:`register_model`); :func:`get_spec` returns it by name.

    Attributes
    ----------
    name : str
    builder : callable
        ``builder(num_classes=..., in_chans=..., image_size=..., **kwargs) -> nn.Module``,
        randomly initialised.
    image_size : int
        Default input side in pixels.
    mean, std : float
        Normalisation of [0, 1] grayscale input: ``(x - mean) / std``. For ImageNet
        weights, the mean of the per-channel RGB values.
    cam_layer : str
        Dotted name of the module Grad-CAM explains. For a ViT it is a LayerNorm whose
        output is tokens (batch, 1 + grid * grid, D), class token first.
    description : str
    extra : dict
        Family details (``{"patch_size": 16}`` for ViTs, the timm name for timm models).
    head : str, default="head"
        Dotted name of the classifier ``nn.Linear`` (the default adapter target).
    first_conv : str, default=""
        Dotted name of the first convolution (adapted to ``in_chans`` when loading).
    weights : WeightSource or None, default=None
        Where ImageNet weights come from; None: trained from scratch only.
    rgb_mean, rgb_std : tuple of 3 floats or None
        Per-channel normalisation of the ImageNet weights (RGB input).
    """

    name: str
    builder: Callable[..., nn.Module]
    image_size: int = 64
    mean: float = 0.5
    std: float = 0.5
    cam_layer: str = ""
    description: str = ""
    extra: dict = field(default_factory=dict)
    head: str = "head"
    first_conv: str = ""
    weights: WeightSource | None = None
    rgb_mean: tuple[float, float, float] | None = None
    rgb_std: tuple[float, float, float] | None = None

    @property
    def pretrained(self) -> bool:
        """True when ImageNet weights exist for this model."""
        return self.weights is not None


_REGISTRY: dict[str, ModelSpec] = {}
_PREFIXES: dict[str, Callable[[str], ModelSpec]] = {}
_PREFIX_SPECS: dict[str, ModelSpec] = {}


def register_prefix(prefix: str, resolver: Callable[[str], ModelSpec]) -> None:
    """File a resolver for names ``"<prefix><name>"`` that are not registered one by one.

    A family module calls this at import (as :func:`register_model` is used), so the
    registry never imports a family: ``timm_models`` files ``"timm:"`` with its
    ``timm_spec``. :func:`get_spec` calls ``resolver(name)`` once per full name and keeps
    the spec.
    """
    _PREFIXES[prefix] = resolver


def register_model(
    name: str,
    *,
    image_size: int = 64,
    mean: float | None = None,
    std: float | None = None,
    cam_layer: str = "",
    description: str = "",
    head: str = "head",
    first_conv: str = "",
    weights: WeightSource | None = None,
    rgb_mean: tuple[float, float, float] | None = None,
    rgb_std: tuple[float, float, float] | None = None,
    extra: dict | None = None,
):
    """Decorator filing a builder function under ``name`` with its defaults.

    ``mean``/``std`` default to the average of ``rgb_mean``/``rgb_std`` when those are
    given (one-channel input of RGB-trained weights), else to 0.5. The description
    defaults to the first line of the builder's docstring.
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = make_spec(name, fn, image_size=image_size, mean=mean, std=std, cam_layer=cam_layer, description=description or (fn.__doc__ or "").strip().splitlines()[0], head=head, first_conv=first_conv, weights=weights, rgb_mean=rgb_mean, rgb_std=rgb_std, extra=extra)
        return fn

    return deco


def make_spec(name: str, builder: Callable[..., nn.Module], *, mean: float | None = None, std: float | None = None, rgb_mean=None, rgb_std=None, extra: dict | None = None, **fields) -> ModelSpec:
    """A :class:`ModelSpec`, with one-channel ``mean``/``std`` derived from ``rgb_mean``/``rgb_std``."""
    if mean is None:
        mean = round(sum(rgb_mean) / 3, 4) if rgb_mean else 0.5
    if std is None:
        std = round(sum(rgb_std) / 3, 4) if rgb_std else 0.5
    rgb_mean = tuple(float(v) for v in rgb_mean) if rgb_mean else None
    rgb_std = tuple(float(v) for v in rgb_std) if rgb_std else None
    return ModelSpec(name, builder, mean=mean, std=std, rgb_mean=rgb_mean, rgb_std=rgb_std, extra=dict(extra or {}), **fields)


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted.

    Parameters
    ----------
    pattern : str, default="*"
    pretrained : bool, default=False
        Only models with ImageNet weights.

    ``timm:<name>`` models are not listed (``timm.list_models()`` lists those).
    """
    return sorted(n for n, s in _REGISTRY.items() if fnmatch.fnmatch(n, pattern) and (s.pretrained or not pretrained))


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``.

    ``"timm:<timm name>"`` gives a spec made from timm's pretrained config: input size,
    mean/std (averaged over RGB), first conv, and a CAM layer (last stage, or a ViT's last
    ``norm1``).

    Raises
    ------
    AlzmriError
        Unknown name (with the closest registered names), or a ``timm:`` name timm does
        not know.
    """
    for prefix, resolver in _PREFIXES.items():
        if name.startswith(prefix):
            if name not in _PREFIX_SPECS:
                _PREFIX_SPECS[name] = resolver(name[len(prefix):])
            return _PREFIX_SPECS[name]
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" - did you mean {', '.join(close)}?" if close else ""
        raise AlzmriError(f"unknown model {name!r}; available: {', '.join(list_models())}, or timm:<any timm model>{hint}") from None


def create_model(
    name: str,
    *,
    num_classes: int = 4,
    in_chans: int = 1,
    image_size: int | None = None,
    weights: str | os.PathLike | None = "none",
    finetune: str = "full",
    adapter_targets: Sequence[str] | None = None,
    adapter_rank: int = 4,
    adapter_alpha: float = 8,
    **kwargs,
) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`, or ``"timm:<timm model name>"``.
    num_classes : int, default=4
        Size of the new head (it replaces the ImageNet head).
    in_chans : int, default=1
        1 for grayscale MRI, 3 for the slice copied into RGB channels. Pretrained weights
        are adapted to 1 channel by summing the first convolution's RGB filters.
    image_size : int, optional
        Input side in pixels; default from the model's spec.
    weights : {"none", "imagenet"} or path-like, default="none"
        ``"none"`` (or None): random initialisation, nothing read - the default, so that
        building a model never touches the network. ``"imagenet"``: the library's own
        ImageNet file, found in its caches, in an installed weight package or by
        download (see :mod:`alzmri.models.weights`). A path: a state dict file
        (``torch.save`` or ``.safetensors``). A head of another shape is skipped.
    finetune : {"full", "linear", "adapter"}, default="full"
        What trains: everything; only the head (frozen backbone); DoRA adapters and the
        head (see :mod:`alzmri.models.adapters`).
    adapter_targets : list of str, optional
        Module names for the DoRA adapters (a full dotted name or its last parts, e.g.
        ``["head"]``, ``["out_proj"]``, ``["qkv"]``); default the head. Only with
        ``finetune="adapter"``.
    adapter_rank : int, default=4
        DoRA rank ``r``.
    adapter_alpha : float, default=8
        DoRA scaling ``lora_alpha``.
    **kwargs
        Passed to the family's builder (e.g. ``drop_rate``, AltzCNN's ``fc_dropout``).

    Returns
    -------
    torch.nn.Module
        Maps float tensors of shape (batch, in_chans, image_size, image_size) to logits of
        shape (batch, num_classes); ``model.forward_features(x)`` gives pooled features of
        shape (batch, D) and ``model.head`` is the classifier.

    Raises
    ------
    AlzmriError
        Unknown model or option value; weights missing, rejected by their hash or not
        fitting; a bad adapter target.
    TypeError
        A keyword the builder does not take.
    """
    spec = get_spec(name)
    if finetune not in FINETUNE_MODES:
        raise AlzmriError(f"The 'finetune' parameter of create_model must be one of {', '.join(map(repr, FINETUNE_MODES))}. Got {finetune!r} instead.")
    if finetune != "adapter" and (adapter_targets is not None or adapter_rank != 4 or adapter_alpha != 8):
        raise AlzmriError(f"adapter_targets, adapter_rank and adapter_alpha apply only with finetune='adapter'; got finetune={finetune!r}")
    if weights is None:
        weights = "none"
    if isinstance(weights, str) and weights in ("", "random"):
        weights = "none"
    model = spec.builder(num_classes=num_classes, in_chans=in_chans, image_size=image_size or spec.image_size, **kwargs)
    if not (isinstance(weights, str) and weights == "none"):
        load_weights(model, weights, source=spec.weights, first_conv=spec.first_conv, head=spec.head, model_name=name)
    return apply_finetune(model, finetune, head=spec.head, targets=adapter_targets, rank=adapter_rank, alpha=adapter_alpha)


def check_model_options(name: str, *, num_classes: int = 4, in_chans: int = 1, image_size: int | None = None, **kwargs) -> None:
    """Check that :func:`create_model` will accept these options, without training or loading weights.

    Builds the model with random weights on PyTorch's ``meta`` device (no memory, no
    arithmetic) and applies the fine-tuning mode; with ``weights="imagenet"`` locates the
    verified weight file (:func:`alzmri.models.weight_lookup.find_imagenet_file`: cache,
    installed package, download where online); with a path, checks that the file exists.
    Used by ``alzmri compare`` to refuse a bad row before any row trains.

    Raises
    ------
    AlzmriError
        As :func:`create_model`: an unknown model or option value, ImageNet weights that
        cannot be found, a missing weights file, an option the builder does not take.
    """
    from alzmri.models.weight_lookup import find_imagenet_file

    spec = get_spec(name)
    weights = kwargs.pop("weights", "none")
    try:
        with torch.device("meta"):
            create_model(name, num_classes=num_classes, in_chans=in_chans, image_size=image_size, weights="none", **kwargs)
    except TypeError as exc:
        raise AlzmriError(f"model_kwargs {kwargs} do not fit model {name!r} ({exc})") from None
    if isinstance(weights, str) and weights == "imagenet":
        if spec.weights is None:
            raise AlzmriError(f"model {name!r} has no ImageNet weights (it is trained from scratch); use weights: none")
        find_imagenet_file(spec.weights, model_name=name)
    elif weights not in (None, "", "none", "random") and not Path(weights).is_file():
        raise AlzmriError(f"{weights}: weights file not found; pass an existing state dict file, 'imagenet' or 'none'")


def create_imagenet_model(name: str, *, image_size: int | None = None) -> nn.Module:
    """The pretrained ImageNet classifier itself: 1000 classes, RGB input, eval mode.

    Parameters
    ----------
    name : str
        A model with ImageNet weights (``list_models(pretrained=True)`` or ``timm:...``).
    image_size : int, optional
        Default: the size the weights were trained on (224).

    Returns
    -------
    nn.Module
        Input (batch, 3, H, W) normalised with ``spec.rgb_mean``/``spec.rgb_std``;
        output ImageNet logits (batch, 1000).

    Raises
    ------
    AlzmriError
        As :func:`create_model` with ``weights="imagenet"``.
    """
    spec = get_spec(name)
    if spec.weights is None:
        raise AlzmriError(f"model {name!r} has no ImageNet weights (it is trained from scratch); pick one of {', '.join(list_models(pretrained=True))}")
    size = image_size or spec.weights.input_size
    return create_model(name, num_classes=1000, in_chans=3, image_size=size, weights="imagenet").eval()
