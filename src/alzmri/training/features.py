"""Slice features of a frozen encoder, computed once and cached on disk.

A brain-level model with a frozen slice encoder needs each slice's features once, not once
per epoch or fold: :func:`slice_features` runs the encoder over every decoded slice (bf16
autocast where the CPU runs it natively) and stores the array under the cache folder
(``$ALZMRI_CACHE_DIR/features``), keyed by everything that changes the numbers: the
dataset's content hash, the encoder's name and constructor options, the sha256 of its
weights, the input size, channels and normalisation, the precision and the cache format.
A changed key is a miss: a stale file is never read. The file is a plain ``.npy`` array
read with ``allow_pickle=False``, so a cache file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alzmri.errors import AlzmriError

__all__ = ["FEATURE_CACHE_VERSION", "FeatureCache", "encoder_fingerprint", "extract_features", "slice_features"]

FEATURE_CACHE_VERSION = 1


@dataclass
class FeatureCache:
    """Features of every slice of a dataset.

    Attributes
    ----------
    features : ndarray of shape (n_images, D), dtype float32
    key : str
        Cache key (hex).
    path : Path or None
        Cache file (None when caching is off).
    hit : bool
        Read from the cache rather than computed.
    seconds : float
        Time to compute (0 on a hit), in seconds.
    """

    features: np.ndarray
    key: str
    path: Path | None
    hit: bool
    seconds: float = 0.0


def encoder_fingerprint(model: nn.Module, *, skip: tuple[str, ...] = ("head.",)) -> str:
    """sha256 (hex) of an encoder's parameters and buffers, in state-dict order.

    Keys starting with a prefix in ``skip`` (the classification head, which features never
    pass through and which is freshly initialised in every build) are left out.
    """
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        if k.startswith(skip):
            continue
        h.update(k.encode())
        t = v.detach().cpu().contiguous().reshape(-1)
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@torch.inference_mode()
def extract_features(encoder: nn.Module, images: np.ndarray, *, mean: float, std: float, in_chans: int = 1, batch_size: int = 256, precision: str = "32-true") -> np.ndarray:
    """Pooled features of uint8 slices.

    Parameters
    ----------
    encoder : nn.Module
        A model with ``forward_features`` (every registry model) or a module mapping
        (batch, in_chans, H, W) to (batch, D).
    images : ndarray of shape (n, H, W), dtype uint8
    mean, std : float
        Normalisation of [0, 1] intensities.
    in_chans : int, default=1
    batch_size : int, default=256
    precision : str, default="32-true"
        ``"bf16-mixed"``: bf16 autocast (the features are returned as float32).

    Returns
    -------
    ndarray of shape (n, D), dtype float32
    """
    from alzmri.data.preprocess import prepare_batch

    encoder = encoder.eval()
    fwd = getattr(encoder, "forward_features", encoder)
    out = []
    dev = next(encoder.parameters()).device
    for s in range(0, len(images), batch_size):
        x = prepare_batch(torch.from_numpy(images[s:s + batch_size]).to(dev), mean=mean, std=std, in_chans=in_chans)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision.startswith("bf16")):
            f = fwd(x)
        if f.ndim > 2:  # a feature map: global average pool
            f = f.mean(dim=tuple(range(2, f.ndim)))
        out.append(f.float().cpu().numpy())
    d = out[0].shape[1] if out else 0
    return np.concatenate(out) if out else np.zeros((0, d), dtype=np.float32)


def slice_features(
    encoder: nn.Module,
    images: np.ndarray,
    *,
    content_hash: str,
    encoder_name: str,
    mean: float,
    std: float,
    in_chans: int = 1,
    precision: str = "32-true",
    options: dict | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    skip: tuple[str, ...] = ("head.",),
) -> FeatureCache:
    """Features of every slice, from the on-disk cache when it holds them.

    Parameters
    ----------
    encoder : nn.Module
        The frozen encoder (its weights are part of the key).
    images : ndarray of shape (n_images, H, W), dtype uint8
        The decoded dataset (:func:`alzmri.data.cache.load_images`).
    content_hash : str
        The dataset's content hash (``DatasetIndex.content_hash()``).
    encoder_name : str
        Registry name of the encoder.
    mean, std, in_chans, precision
        Preprocessing and precision (part of the key).
    options : dict, optional
        Any other setting that changes the features (builder options), JSON-serialisable.
    skip : tuple of str, default=("head.",)
        State-dict prefixes not part of the features (the classifier head).
    cache_dir : path-like, optional
        Default :func:`alzmri.data.locations.default_cache_dir`.
    use_cache : bool, default=True
        False: compute without reading or writing the cache.

    Returns
    -------
    FeatureCache

    Raises
    ------
    AlzmriError
        The cache folder exists but cannot be written (names it and the fix).
    """
    import time

    from alzmri.data.locations import default_cache_dir

    spec = {
        "version": FEATURE_CACHE_VERSION,
        "content": content_hash,
        "encoder": encoder_name,
        "weights": encoder_fingerprint(encoder, skip=skip),
        "shape": list(images.shape),
        "mean": float(mean),
        "std": float(std),
        "in_chans": int(in_chans),
        "precision": precision,
        "options": options or {},
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "features"
    path = folder / f"{key}.npy"
    if use_cache and path.is_file():
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.ndim == 2 and feats.shape[0] == len(images):
                return FeatureCache(feats, key, path, hit=True)
        except (OSError, ValueError):
            pass  # a broken cache file is recomputed
    t0 = time.perf_counter()
    feats = extract_features(encoder, images, mean=mean, std=std, in_chans=in_chans, precision=precision)
    seconds = time.perf_counter() - t0
    if use_cache:
        import io

        from alzmri.utils.io import atomic_write_bytes

        buf = io.BytesIO()
        np.save(buf, feats, allow_pickle=False)
        try:
            atomic_write_bytes(path, buf.getvalue())
        except PermissionError:
            pass  # a read-only cache folder costs speed, not correctness
        except OSError as exc:
            raise AlzmriError(f"{folder}: cannot write the feature cache ({exc}); set ALZMRI_CACHE_DIR to a writable folder") from None
    return FeatureCache(feats, key, path if use_cache else None, hit=False, seconds=seconds)
