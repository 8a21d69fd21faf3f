"""One registry of model builders, in the manner of timm's ``register_model``.

Each entry carries its defaults: input size, normalisation, the layer Grad-CAM explains.
``create_model(name, ...)`` is the one door to build a model.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from alzmri.errors import AlzmriError


@dataclass(frozen=True)
class ModelSpec:
    """Defaults of a registered model.

    Attributes
    ----------
    name : str
    builder : callable
        ``builder(num_classes=..., in_chans=..., image_size=..., **kwargs) -> nn.Module``.
    image_size : int
        Default input side in pixels.
    mean, std : float
        Normalisation of [0, 1] grayscale input: ``(x - mean) / std``.
    cam_layer : str
        Dotted name of the module Grad-CAM explains.
    """

    name: str
    builder: Callable[..., nn.Module]
    image_size: int = 64
    mean: float = 0.5
    std: float = 0.5
    cam_layer: str = ""
    description: str = ""
    extra: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, image_size: int = 64, mean: float = 0.5, std: float = 0.5, cam_layer: str = "", description: str = ""):
    """Decorator filing a builder function under ``name`` with its defaults."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = ModelSpec(name, fn, image_size, mean, std, cam_layer, description or (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return deco


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``.

    Raises
    ------
    AlzmriError
        Unknown name (with the closest registered names).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" - did you mean {', '.join(close)}?" if close else ""
        raise AlzmriError(f"unknown model {name!r}; available: {', '.join(list_models())}{hint}") from None


def create_model(name: str, *, num_classes: int = 4, in_chans: int = 1, image_size: int | None = None, **kwargs) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    num_classes : int, default=4
    in_chans : int, default=1
        1 for grayscale MRI, 3 for RGB copies.
    image_size : int, optional
        Input side in pixels; default from the model's spec.

    Returns
    -------
    torch.nn.Module
        Maps float tensors of shape (batch, in_chans, image_size, image_size) to logits of
        shape (batch, num_classes).
    """
    spec = get_spec(name)
    return spec.builder(num_classes=num_classes, in_chans=in_chans, image_size=image_size or spec.image_size, **kwargs)
