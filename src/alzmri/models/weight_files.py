"""Read weight files into state dicts, and build a source's ImageNet state dict.

A path is read as ``.safetensors`` or a ``torch.save`` file (``weights_only=True``);
a packaged file of another implementation is converted tensor by tensor
(:func:`map_by_position`, ``PackagedFile.convert == "by_position"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from alzmri.errors import AlzmriError
from alzmri.models.weight_lookup import find_imagenet_file
from alzmri.models.weight_sources import WeightSource


def read_state_file(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``.safetensors`` or a ``torch.save`` file (``weights_only=True``).

    A Lightning checkpoint (``{"state_dict": {"model.<key>": ...}}``) or a
    ``{"model": state_dict}`` wrapper is unwrapped.

    Raises
    ------
    AlzmriError
        Missing file, or not a readable state dict; a ``torch.save`` file holding any
        pickled object other than tensors and plain containers is refused (torch's
        ``weights_only=True`` unpickler never constructs it, so no code in it runs).
    """
    p = Path(path)
    if not p.is_file():
        raise AlzmriError(f"{p}: weights file not found; pass weights='imagenet', 'none' or the path of a state dict (.safetensors, .pt, .pth)")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p), device="cpu")
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and safetensors errors
        text = str(exc)
        with open(p, "rb") as f:
            head = f.read(4)
        pickled = head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"  # torch.save zip, or a bare pickle
        if pickled and "Weights only load failed" in text:  # torch's restricted unpickler met a forbidden object
            what = re.search(r"(?:unsupported GLOBAL|Unsupported global:)\s*(?:GLOBAL\s*)?([\w.]+)", text)
            found = f" ({what.group(1)})" if what else ""
            raise AlzmriError(
                f"{p}: refused: the file holds pickled Python objects other than tensors{found}, which could run code "
                "when loaded; alzmri reads only state dicts of tensors (torch.load weights_only=True) or .safetensors - "
                "get the weights as .safetensors or from a source you trust"
            ) from None
        raise AlzmriError(f"{p}: not a readable weights file ({type(exc).__name__}); save a state dict with torch.save or safetensors") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise AlzmriError(f"{p}: not a state dict of tensors; save model.state_dict() with torch.save or safetensors")
    state = dict(state)
    if all(k.startswith("model.") for k in state):  # Lightning: SliceClassifier.model
        state = {k[len("model."):]: v for k, v in state.items()}
    return state


def map_by_position(src: Mapping[str, Tensor], target: Mapping[str, Tensor], *, origin: str = "") -> dict[str, Tensor]:
    """Rename ``src`` tensors to ``target``'s keys by position.

    The i-th tensor of ``src`` becomes the i-th key of ``target``; each pair must agree in
    shape and in the last part of the key (``weight``, ``bias``, ``running_mean``, ...).

    Raises
    ------
    AlzmriError
        Different numbers of tensors, or a pair that disagrees (named in the message).
    """
    if len(src) != len(target):
        raise AlzmriError(f"{origin}: {len(src)} tensors, but the model has {len(target)}; the file is for another architecture")
    out = {}
    for i, ((ks, vs), (kt, vt)) in enumerate(zip(src.items(), target.items())):
        if tuple(vs.shape) != tuple(vt.shape) or ks.rsplit(".", 1)[-1] != kt.rsplit(".", 1)[-1]:
            raise AlzmriError(f"{origin}: tensor {i} {ks} {tuple(vs.shape)} does not map onto {kt} {tuple(vt.shape)}; the file is for another architecture")
        out[kt] = vs
    return out


def imagenet_state_dict(source: WeightSource, *, model_name: str = "") -> dict[str, Tensor]:
    """The ImageNet state dict of the original network (1000 classes, 3 channels), keyed
    as torchvision/timm key it.

    Raises
    ------
    AlzmriError
        See :func:`find_imagenet_file`; an unreadable or non-matching file.
    """
    found = find_imagenet_file(source, model_name=model_name)
    if source.kind == "torchvision":
        return read_state_file(found.path)
    import timm

    if found.convert == "by_position":
        with torch.device("meta"):
            target = timm.create_model(source.arch, pretrained=False).state_dict()
        return map_by_position(read_state_file(found.path), target, origin=str(found.path))
    try:
        net = timm.create_model(source.arch, pretrained=True, pretrained_cfg_overlay={"file": str(found.path)})
    except Exception as exc:
        raise AlzmriError(f"{found.path}: timm could not load it into {source.arch} ({type(exc).__name__}: {exc}); delete the file and retry") from None
    return net.state_dict()
