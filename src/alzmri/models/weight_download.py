"""Download a model's ImageNet weight file into the cache its library uses.

Used by :func:`alzmri.models.weight_lookup.find_imagenet_file` when no verified file is
found offline; a quick reachability probe first keeps an offline machine from waiting
on the libraries' own retries.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from alzmri.models.weight_sources import HF_FILES, WeightSource, checkpoints_dir, hash_prefix, hf_cache_dir


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


def download_weights(source: WeightSource) -> Path:
    """Download the library's file into its cache.

    Parameters
    ----------
    source : WeightSource
        timm with ``hf_hub_id``: the Hugging Face file (``model.safetensors``, else
        ``pytorch_model.bin``) into :func:`~alzmri.models.weight_sources.hf_cache_dir`;
        otherwise ``source.url`` into torch hub's checkpoints folder, checked against
        the SHA-256 prefix in its name.

    Returns
    -------
    Path
        The downloaded file.

    Raises
    ------
    ConnectionError
        The host cannot be reached (probed first, a few seconds at most).
    RuntimeError
        No download URL. Otherwise whatever the transfer raises.
    """
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
    torch.hub.download_url_to_file(source.url, str(dest), hash_prefix=hash_prefix(source.file) or None, progress=True)
    return dest
