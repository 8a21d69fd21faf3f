"""Where a model's ImageNet weights come from, and how a weight file is verified.

A :class:`WeightSource` names the library's file (torch hub URL or Hugging Face
repository) and the pip packages that ship it (:class:`PackagedFile`); the libraries'
cache folders and the offline switch are read here, and every file is checked against
its SHA-256 (:func:`check_hash`) before use. The lookup itself is
:func:`alzmri.models.weight_lookup.find_imagenet_file`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

# torch hub's convention: "<name>-<first hex digits of sha256>.<ext>"
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")
HF_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class PackagedFile:
    """A weight file shipped inside an installed pip package.

    Attributes
    ----------
    dist : str or None
        Distribution name (``pip install`` name); None when ``path`` is absolute.
    path : str
        Path of the file relative to the distribution's install root (site-packages),
        or an absolute path.
    sha256 : str, default=""
        Full hex digest; empty: the prefix embedded in the file name is checked.
    convert : str, default=""
        ``""``: the identical file the library publishes. ``"by_position"``: a state dict
        of another implementation whose tensors map in order, shape for shape, onto the
        library model's state dict.
    """

    dist: str | None
    path: str
    sha256: str = ""
    convert: str = ""

    def locate(self) -> Path | None:
        """The file's path, or None when the package is not installed or lacks it."""
        if self.dist is None:
            p = Path(self.path)
        else:
            try:
                p = Path(metadata.distribution(self.dist).locate_file(self.path))
            except metadata.PackageNotFoundError:
                return None
        return p if p.is_file() else None


@dataclass(frozen=True)
class WeightSource:
    """Where a model's ImageNet weights come from.

    Attributes
    ----------
    kind : {"torchvision", "timm"}
    arch : str
        torchvision builder or timm model name of the original network.
    url : str, default=""
        The library's download URL; its last part is the file name in torch hub's
        checkpoints folder.
    hf_hub_id : str, default=""
        Hugging Face repository timm loads from (``timm/tf_efficientnet_lite0.in1k``).
    packages : tuple of PackagedFile, default=()
    input_size : int, default=224
        Side of the images the weights were trained on.
    """

    kind: str
    arch: str
    url: str = ""
    hf_hub_id: str = ""
    packages: tuple[PackagedFile, ...] = ()
    input_size: int = 224

    @property
    def file(self) -> str:
        """File name in the checkpoints folder (empty when there is no URL)."""
        return self.url.rsplit("/", 1)[-1] if self.url else ""


@dataclass(frozen=True)
class ResolvedFile:
    """A weight file found for a :class:`WeightSource`: its path, where it came from and
    the conversion it needs (``""`` or ``"by_position"``)."""

    path: Path
    origin: str
    convert: str = ""


def checkpoints_dir() -> Path:
    """torch hub's checkpoints folder, ``<torch.hub.get_dir()>/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_cache_dir() -> str:
    """The Hugging Face hub cache folder timm downloads into."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def offline() -> bool:
    """True when ``ALZMRI_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to 1/true/yes."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("ALZMRI_OFFLINE", "HF_HUB_OFFLINE"))


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_hash(path: str | Path, *, sha256: str = "", name: str | None = None) -> str | None:
    """Why ``path`` fails its hash check, or None when it passes.

    Parameters
    ----------
    path : path-like
    sha256 : str, default=""
        Expected full digest. When empty, the prefix embedded in ``name`` (default: the
        file's own name, ``mobilenet_v2-b0353104.pth``) is expected; a name without one
        passes unchecked.
    name : str, optional
    """
    expected = sha256 or hash_prefix(name or Path(path).name)
    if not expected:
        return None
    digest = sha256_file(path)
    if digest.startswith(expected):
        return None
    return f"sha256 {digest[:16]}... does not match {expected[:16]}"


def hash_prefix(name: str) -> str:
    """The SHA-256 prefix a torch hub file name embeds (``mobilenet_v2-b0353104.pth`` ->
    ``"b0353104"``), or ``""`` when the name carries none."""
    m = HASH_IN_NAME.search(name)
    return m.group(1) if m else ""
