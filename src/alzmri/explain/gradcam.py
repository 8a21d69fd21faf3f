"""Grad-CAM heat maps (Selvaraju et al. 2017) through the ``grad-cam`` package.

The explained layer is the registered model's ``cam_layer``
(:class:`alzmri.models.registry.ModelSpec`): the last convolutional stage of a CNN, or,
for a Vision Transformer, a LayerNorm whose output tokens (batch, prefix + g * g, D) are
reshaped to a (batch, D, g, g) grid after dropping the class (and register) tokens.
Each map is the ReLU of the gradient-weighted sum of that layer's activation channels for
one class, upsampled to the input size and min-max scaled to [0, 1] per image by
``pytorch_grad_cam``. By default the explained class is the predicted one.

References
----------
R. R. Selvaraju, M. Cogswell, A. Das, R. Vedantam, D. Parikh, D. Batra, "Grad-CAM:
Visual Explanations from Deep Networks via Gradient-based Localization", ICCV 2017.
J. Gildenblat and contributors, "PyTorch library for CAM methods" (``grad-cam``), 2021.
"""

from __future__ import annotations

import functools
import io
import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from alzmri.errors import AlzmriError
from alzmri.runs import RunInfo
from alzmri.utils.io import atomic_write_bytes
from alzmri.data.preprocess import prepare_batch


def vit_reshape_transform(tokens: torch.Tensor, prefix: int | None = None) -> torch.Tensor:
    """ViT tokens (batch, prefix + g * g, D) -> feature map (batch, D, g, g).

    Parameters
    ----------
    tokens : float tensor of shape (batch, n_tokens, D)
    prefix : int, optional
        Leading non-patch tokens (class token, register tokens) to drop; default: as many
        as make the rest a square grid (``g`` the largest integer with ``g * g`` <=
        ``n_tokens``).

    Raises
    ------
    AlzmriError
        The patch tokens do not form a square grid.
    """
    if tokens.ndim == 4:
        return tokens
    n = tokens.shape[1]
    if prefix is None:
        g = math.isqrt(n)
        prefix = n - g * g
    g = math.isqrt(n - prefix)
    if g == 0 or g * g != n - prefix or prefix > 8:
        raise AlzmriError(f"cannot reshape {n} ViT tokens ({prefix} prefix) into a square grid for Grad-CAM")
    return tokens[:, prefix:].reshape(tokens.shape[0], g, g, tokens.shape[2]).permute(0, 3, 1, 2)


def cam_target(model: nn.Module, model_name: str) -> tuple[nn.Module, object]:
    """(layer to explain, reshape transform or None) for a registered model.

    Raises
    ------
    AlzmriError
        The model has no CAM layer, or it is not found in the module.
    """
    from alzmri.models import get_spec

    spec = get_spec(model_name)
    if not spec.cam_layer:
        raise AlzmriError(f"model {model_name!r} names no Grad-CAM layer (cam_layer) in its registry entry")
    try:
        layer = model.get_submodule(spec.cam_layer)
    except AttributeError:
        raise AlzmriError(f"model {model_name!r}: Grad-CAM layer {spec.cam_layer!r} not found in the network") from None
    reshape = None
    if isinstance(layer, nn.LayerNorm):
        prefix = spec.extra.get("num_prefix_tokens")
        reshape = functools.partial(vit_reshape_transform, prefix=prefix)
    return layer, reshape


@contextmanager
def _grads_enabled(model: nn.Module):
    """Let gradients flow through frozen parameters for the duration (restored after)."""
    frozen = [p for p in model.parameters() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        with torch.enable_grad():
            yield
    finally:
        for p in frozen:
            p.requires_grad_(False)
        model.zero_grad(set_to_none=True)


def gradcam_maps(model: nn.Module, info: RunInfo, images: np.ndarray, *, target_classes: list[int] | None = None, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps of uint8 slices for the predicted (or given) classes.

    Parameters
    ----------
    model : nn.Module
        In eval mode (as :func:`alzmri.runs.load_model` returns it).
    info : RunInfo
        Gives the model name (its ``cam_layer``) and the preprocessing.
    images : ndarray of shape (n, image_size, image_size), dtype uint8
    target_classes : list of int, optional
        Class index to explain per image; default: the predicted class.
    batch_size : int, default=32

    Returns
    -------
    maps : ndarray of shape (n, image_size, image_size), dtype float32
        Values in [0, 1]; 1 marks the region that most raises the class score.
    classes : ndarray of shape (n,), dtype int64
        The explained class of each image.

    Raises
    ------
    AlzmriError
        The model names no CAM layer; ``target_classes`` has the wrong length.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    images = np.asarray(images)
    if target_classes is not None and len(target_classes) != len(images):
        raise AlzmriError(f"target_classes has {len(target_classes)} entries for {len(images)} images")
    layer, reshape = cam_target(model, info.model)
    device = next(model.parameters()).device
    maps, classes = [], []
    with _grads_enabled(model), GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        for s in range(0, len(images), batch_size):
            x = prepare_batch(torch.from_numpy(np.ascontiguousarray(images[s : s + batch_size])).to(device), mean=info.mean, std=info.std, in_chans=info.in_chans)
            if target_classes is None:
                with torch.no_grad():
                    cls = model(x).argmax(dim=1).tolist()
            else:
                cls = [int(c) for c in target_classes[s : s + batch_size]]
            m = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in cls])
            maps.append(np.nan_to_num(np.asarray(m, dtype=np.float32), nan=0.0).clip(0.0, 1.0))
            classes.extend(cls)
    if not maps:
        return np.zeros((0, *images.shape[1:]), np.float32), np.zeros(0, np.int64)
    return np.concatenate(maps), np.asarray(classes, dtype=np.int64)


def overlay_heatmap(image: np.ndarray, cam: np.ndarray, *, alpha: float = 0.45, colormap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] map, coloured, over a grayscale slice.

    Parameters
    ----------
    image : ndarray of shape (H, W), dtype uint8
    cam : ndarray of shape (h, w), float in [0, 1]
        Resized (bilinear) to (H, W) when the sizes differ.
    alpha : float, default=0.45
        Weight of the heat map.
    colormap : str, default="jet"
        A matplotlib colormap name.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8 (RGB)
    """
    from matplotlib import colormaps

    h, w = image.shape
    if cam.shape != (h, w):
        cam = np.asarray(Image.fromarray(np.asarray(cam, np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR))
    heat = colormaps[colormap](np.clip(cam, 0, 1))[..., :3]
    gray = np.repeat((image.astype(np.float32) / 255.0)[..., None], 3, axis=2)
    return np.round(((1 - alpha) * gray + alpha * heat) * 255).astype(np.uint8)


def write_cam_overlays(model: nn.Module, info: RunInfo, images: np.ndarray, names: list[str], out_dir: str | Path, *, originals: list[np.ndarray] | None = None) -> list[dict]:
    """Write ``<name>_cam.png`` per slice: the slice with its Grad-CAM overlaid.

    Parameters
    ----------
    model, info
        As for :func:`gradcam_maps`.
    images : ndarray of shape (n, image_size, image_size), dtype uint8
        Model input.
    names : list of str
        File stems (made unique with a counter when repeated).
    out_dir : path-like
        Created if needed.
    originals : list of ndarray of shape (H, W), dtype uint8, optional
        Full-resolution slices to draw on (the map is upsampled); default: ``images``.

    Returns
    -------
    list of dict
        Per slice: ``cam`` (PNG path), ``explained_class`` (name).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    maps, classes = gradcam_maps(model, info, images)
    seen: dict[str, int] = {}
    results = []
    for i, name in enumerate(names):
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "slice"
        seen[stem] = seen.get(stem, 0) + 1
        if seen[stem] > 1:
            stem = f"{stem}-{seen[stem]}"
        base = originals[i] if originals is not None else images[i]
        rgb = overlay_heatmap(base, maps[i])
        path = out_dir / f"{stem}_cam.png"
        png = io.BytesIO()
        Image.fromarray(rgb).save(png, format="PNG")
        atomic_write_bytes(path, png.getvalue())
        results.append({"cam": str(path), "explained_class": info.class_names[int(classes[i])]})
    return results
