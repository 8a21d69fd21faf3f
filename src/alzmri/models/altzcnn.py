"""AltzCNN: the reference CNN of the original student notebook, layer for layer.

Six 3x3 convolutions (padding 1)::

    conv1  in->32    GroupNorm(8)   ReLU  MaxPool2d(2)
    conv2  32->64    GroupNorm(8)   ReLU
    conv3  64->128   GroupNorm(8)   ReLU  MaxPool2d(2)  Dropout2d(0.05)
    conv4  128->128  GroupNorm(16)  ReLU
    conv5  128->256  (no norm)      ReLU  MaxPool2d(2)  Dropout2d(0.05)
    conv6  256->256  GroupNorm(16)  ReLU  MaxPool2d(2)

then five fully connected layers: Dropout(0.5) Linear(flat, 1024) ReLU Dropout(0.5)
Linear(1024, 512) ReLU Dropout(0.5) Linear(512, 256) ReLU Dropout(0.5) Linear(256, 128)
ReLU Linear(128, num_classes). At 64x64 the flattened size is 256 x 4 x 4 = 4096 as in the
notebook; it is computed from ``image_size`` for other sizes. With ``in_chans=3`` the
parameter count is 6,012,164, the number the notebook prints.
"""

from __future__ import annotations

from torch import Tensor, nn

from alzmri.errors import AlzmriError
from alzmri.models.registry import register_model

# (out_channels, GroupNorm groups or 0 for none, max-pool after, Dropout2d after)
BLOCKS = (
    (32, 8, True, False),
    (64, 8, False, False),
    (128, 8, True, True),
    (128, 16, False, False),
    (256, 0, True, True),
    (256, 16, True, False),
)
FC_SIZES = (1024, 512, 256, 128)


class AltzCNN(nn.Module):
    """The notebook's CNN for grayscale (or RGB) slices.

    Parameters
    ----------
    num_classes : int, default=4
    in_chans : int, default=1
    image_size : int, default=64
        Input side in pixels; a multiple of 16.
    conv_dropout, fc_dropout : float, default=0.05, 0.5
    init : {"pytorch", "he"}, default="pytorch"
        Weight initialisation: ``"pytorch"`` is the notebook's (library defaults);
        ``"he"`` is He-normal (see :meth:`reset_parameters`).

    Input: float tensor (batch, in_chans, image_size, image_size). Output: logits
    (batch, num_classes).

    Raises
    ------
    AlzmriError
        ``image_size`` is not a positive multiple of 16.
    """

    def __init__(self, num_classes: int = 4, in_chans: int = 1, image_size: int = 64, *, conv_dropout: float = 0.05, fc_dropout: float = 0.5, init: str = "pytorch"):
        super().__init__()
        if init not in ("he", "pytorch"):
            raise AlzmriError(f"AltzCNN init must be 'he' or 'pytorch'; got {init!r}")
        n_pool = sum(b[2] for b in BLOCKS)
        if image_size % (2**n_pool) != 0 or image_size < 2**n_pool:
            raise AlzmriError(f"AltzCNN needs an image size that is a multiple of {2**n_pool}; got {image_size}")
        layers: list[nn.Module] = []
        c_in = in_chans
        for c_out, groups, pool, drop in BLOCKS:
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            if groups:
                layers.append(nn.GroupNorm(groups, c_out))
            layers.append(nn.ReLU(inplace=True))
            if pool:
                layers.append(nn.MaxPool2d(2))
            if drop:
                layers.append(nn.Dropout2d(conv_dropout))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        side = image_size // (2**n_pool)
        self.flat_features = c_in * side * side
        fc: list[nn.Module] = [nn.Flatten()]
        f_in = self.flat_features
        for i, f_out in enumerate(FC_SIZES):
            fc += [nn.Dropout(fc_dropout), nn.Linear(f_in, f_out), nn.ReLU(inplace=True)]
            f_in = f_out
        self.classifier = nn.Sequential(*fc)
        self.head = nn.Linear(f_in, num_classes)
        self.num_features = f_in
        if init == "he":
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (Kaiming) normal initialisation of convolutions and hidden linear layers, a
        near-zero head (normal, std 0.01) and zero biases.

        The notebook used PyTorch's default initialisation (the default here too), under
        which the signal shrinks through the five-layer classifier. Reference: He et al.,
        "Delving deep into rectifiers", ICCV 2015.
        """
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.head.weight, 0.0, 0.01)
        nn.init.zeros_(self.head.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Penultimate features, float tensor (batch, 128)."""
        return self.classifier(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))


@register_model("altzcnn", image_size=64, mean=0.0, std=1.0, cam_layer="features.21")
def altzcnn(*, num_classes: int = 4, in_chans: int = 1, image_size: int = 64, **kwargs) -> AltzCNN:
    """AltzCNN, the notebook's six-conv, five-FC network (6.0 M parameters at 64x64)."""
    return AltzCNN(num_classes=num_classes, in_chans=in_chans, image_size=image_size, **kwargs)
