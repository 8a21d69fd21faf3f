"""AltzCNN: the reference CNN of the original student notebook.

Six 3x3 convolutions (32, 64, 128, 128, 256, 256 channels, padding 1), each followed by
GroupNorm, ReLU and Dropout2d(0.05), with 2x2 max-pooling after the 2nd, 4th, 5th and
6th (four halvings: 64x64 -> 4x4); then five fully connected layers
(flatten -> 1024 -> 512 -> 256 -> 128 -> num_classes) with ReLU and Dropout(0.5).
At 64x64 the flattened size is 256 x 4 x 4 = 4096, as in the notebook; it is computed
from ``image_size`` for other sizes.
"""

from __future__ import annotations

from torch import Tensor, nn

from alzmri.errors import AlzmriError
from alzmri.models.registry import register_model

CHANNELS = (32, 64, 128, 128, 256, 256)
POOL_AFTER = (False, True, False, True, True, True)
FC_SIZES = (1024, 512, 256, 128)


class AltzCNN(nn.Module):
    """The notebook's CNN for grayscale (or RGB) slices.

    Parameters
    ----------
    num_classes : int, default=4
    in_chans : int, default=1
    image_size : int, default=64
        Input side in pixels; a multiple of 16.
    groups : int, default=8
        GroupNorm groups.
    conv_dropout, fc_dropout : float
        Dropout2d after each conv block (0.05) and Dropout in the classifier (0.5).

    Input: float tensor (batch, in_chans, image_size, image_size). Output: logits
    (batch, num_classes).
    """

    def __init__(self, num_classes: int = 4, in_chans: int = 1, image_size: int = 64, *, groups: int = 8, conv_dropout: float = 0.05, fc_dropout: float = 0.5):
        super().__init__()
        n_pool = sum(POOL_AFTER)
        if image_size % (2**n_pool) != 0 or image_size < 2**n_pool:
            raise AlzmriError(f"AltzCNN needs an image size that is a multiple of {2**n_pool}; got {image_size}")
        layers: list[nn.Module] = []
        c_in = in_chans
        for c_out, pool in zip(CHANNELS, POOL_AFTER):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(2))
            layers.append(nn.Dropout2d(conv_dropout))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        side = image_size // (2**n_pool)
        fc: list[nn.Module] = [nn.Flatten()]
        f_in = c_in * side * side
        for f_out in FC_SIZES:
            fc += [nn.Linear(f_in, f_out), nn.ReLU(inplace=True), nn.Dropout(fc_dropout)]
            f_in = f_out
        self.classifier = nn.Sequential(*fc)
        self.head = nn.Linear(f_in, num_classes)
        self.num_features = f_in
        self.flat_features = c_in * side * side

    def forward_features(self, x: Tensor) -> Tensor:
        """Penultimate features, shape (batch, 128)."""
        return self.classifier(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))


@register_model("altzcnn", image_size=64, mean=0.5, std=0.5, cam_layer="features.25")
def altzcnn(*, num_classes: int = 4, in_chans: int = 1, image_size: int = 64, **kwargs) -> AltzCNN:
    """AltzCNN, the notebook's six-conv, five-FC network (about 6.0 M parameters at 64x64)."""
    return AltzCNN(num_classes=num_classes, in_chans=in_chans, image_size=image_size, **kwargs)
