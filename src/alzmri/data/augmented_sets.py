"""Augmented copies of slices with known sources: the "equal and augmented" sets, rebuilt.

The 44,000-image Kaggle set that the notebook trained on is the 6,400 slices plus
tens of thousands of rotated, shifted, zoomed, flipped, blurred and brightness-jittered
copies, with nothing in the file names saying which copy came from which slice. To
measure whether alzmri traces every copy back to its brain (:mod:`alzmri.data.groups`),
:func:`write_augmented_set` builds such a set from a folder of originals, seeded, with
the source of every copy known from construction.

Every transform is torchvision's (``torchvision.transforms.v2.functional``; JPEG is Pillow's); this module
only draws their parameters from a seeded generator and records them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alzmri.errors import AlzmriError

#: Augmentation kinds and the ranges drawn from (those of the public augmented releases).
AUGMENTATION_RANGES = {
    "rotate": "angle uniform in [-15, 15] degrees",
    "translate": "shift uniform in [-15 %, 15 %] of the side, each axis",
    "zoom": "scale log-uniform in [0.8, 1.25]",
    "perspective": "corner displacement up to 0.1 of the half-side (torchvision RandomPerspective, distortion_scale=0.1)",
    "hflip": "left-right mirror",
    "vflip": "up-down mirror",
    "blur": "Gaussian blur, sigma uniform in [0.5, 1.5] px, 5 x 5 kernel",
    "sharpen": "sharpness factor uniform in [1.5, 3]",
    "brightness": "factor uniform in [0.7, 1.3]",
    "contrast": "factor uniform in [0.7, 1.3]",
    "gamma": "gamma log-uniform in [0.7, 1.4]",
    "jpeg": "JPEG re-compression at quality uniform in [60, 95]",
}
AUGMENTATION_KINDS = tuple(AUGMENTATION_RANGES)
_GEOMETRIC = ("rotate", "translate", "zoom")


def augmented_copy(image, kinds: Sequence[str], rng: np.random.Generator):
    """One augmented copy of a grayscale slice.

    Parameters
    ----------
    image : PIL.Image.Image
        Grayscale (mode ``"L"``) slice.
    kinds : sequence of str
        Augmentations to apply together, from :data:`AUGMENTATION_KINDS` (ranges in
        :data:`AUGMENTATION_RANGES`): rotation, translation and zoom are one affine warp,
        then perspective, flips, blur or sharpening, intensity changes, JPEG last.
    rng : numpy.random.Generator
        Source of every random parameter (seeded: the same generator state gives the
        same copy).

    Returns
    -------
    image : PIL.Image.Image
        Mode ``"L"``, the size of ``image``; pixels moved in from outside are black.
    params : dict
        The drawn parameters (degrees, fractions of the side, factors, quality).

    Raises
    ------
    AlzmriError
        An unknown kind.
    """
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    unknown = sorted(set(kinds) - set(AUGMENTATION_KINDS))
    if unknown:
        raise AlzmriError(f"unknown augmentation kind(s) {', '.join(unknown)}; choose from {', '.join(AUGMENTATION_KINDS)}")
    x = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.uint8).copy())[None]  # (1, H, W) uint8
    h, w = x.shape[-2:]
    params: dict = {}
    if any(k in kinds for k in _GEOMETRIC):
        angle = float(rng.uniform(-15, 15)) if "rotate" in kinds else 0.0
        tx, ty = (rng.uniform(-0.15, 0.15, 2) if "translate" in kinds else (0.0, 0.0))
        scale = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))) if "zoom" in kinds else 1.0
        params.update(angle=angle, translate=(float(tx), float(ty)), scale=scale)
        x = F.affine(x, angle=angle, translate=[round(float(tx) * w), round(float(ty) * h)], scale=scale, shear=[0.0, 0.0],
                     interpolation=InterpolationMode.BILINEAR, fill=0)
    if "perspective" in kinds:
        d = 0.1
        hw, hh = w // 2, h // 2
        jitter = lambda half: int(rng.integers(0, int(d * half) + 1))  # noqa: E731
        start = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
        end = [[jitter(hw), jitter(hh)], [w - 1 - jitter(hw), jitter(hh)], [w - 1 - jitter(hw), h - 1 - jitter(hh)], [jitter(hw), h - 1 - jitter(hh)]]
        params["perspective"] = end
        x = F.perspective(x, start, end, interpolation=InterpolationMode.BILINEAR, fill=0)
    if "hflip" in kinds:
        x = F.horizontal_flip(x)
    if "vflip" in kinds:
        x = F.vertical_flip(x)
    if "blur" in kinds:
        sigma = float(rng.uniform(0.5, 1.5))
        params["blur_sigma"] = sigma
        x = F.gaussian_blur(x, kernel_size=[5, 5], sigma=[sigma, sigma])
    if "sharpen" in kinds:
        f = float(rng.uniform(1.5, 3.0))
        params["sharpness"] = f
        x = F.adjust_sharpness(x, f)
    if "brightness" in kinds:
        f = float(rng.uniform(0.7, 1.3))
        params["brightness"] = f
        x = F.adjust_brightness(x, f)
    if "contrast" in kinds:
        f = float(rng.uniform(0.7, 1.3))
        params["contrast"] = f
        x = F.adjust_contrast(x, f)
    if "gamma" in kinds:
        g = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
        params["gamma"] = g
        x = F.adjust_gamma(x, g)
    from PIL import Image

    out = Image.fromarray(x[0].numpy(), mode="L")
    if "jpeg" in kinds:
        # Pillow's encoder (torchvision's image codecs are deprecated since 0.29)
        import io

        q = int(rng.integers(60, 96))
        params["jpeg_quality"] = q
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as im:
            out = im.convert("L")
    return out, params


def write_augmented_set(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    n_copies: int,
    *,
    seed: int = 0,
    kinds: Sequence[str] = AUGMENTATION_KINDS,
    combine: bool = True,
    include_originals: bool = True,
) -> dict[str, dict]:
    """Copy a class-folder dataset to ``dest`` and add ``n_copies`` augmented copies.

    Copies are drawn from the originals uniformly (each copy's source drawn with
    replacement), named ``aug_<n>.jpg`` in the source's class folder, so that nothing in
    the name says where a copy came from (as in the public augmented releases).

    Parameters
    ----------
    source : path-like
        Folder with one sub-folder of images per class.
    dest : path-like
        New folder (must not exist, or be empty).
    n_copies : int
        Augmented copies to add.
    seed : int, default=0
    kinds : sequence of str, default=all of :data:`AUGMENTATION_KINDS`
    combine : bool, default=True
        True: each copy applies every kind with probability 1/2 (at least one). False:
        each copy applies one kind, in turn.
    include_originals : bool, default=True
        Also copy the originals into ``dest``.

    Returns
    -------
    dict
        Copy path -> ``{"source": source path, "kinds": [...], **params}`` (paths POSIX and
        relative to ``dest``; ``params`` as returned by :func:`augmented_copy`).

    Raises
    ------
    AlzmriError
        ``source`` has no class folders, ``dest`` is a non-empty folder, or an unknown kind.
    """

    src, out = Path(source), Path(dest)
    if out.exists() and any(out.iterdir()):
        raise AlzmriError(f"{out}: folder exists and is not empty; choose a new folder for the augmented set")
    originals = sorted(
        f"{d.name}/{f.name}" for d in sorted(src.iterdir()) if d.is_dir() for f in sorted(d.iterdir()) if f.is_file() and not f.name.startswith(".")
    )
    if not originals:
        raise AlzmriError(f"{src}: no class folders with images; point it at a folder like alzheimer-mri-6400")
    kinds = tuple(kinds)
    rng = np.random.default_rng(seed)
    if include_originals:
        for rel in originals:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, out / rel)
    truth: dict[str, dict] = {}
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small image at a time: threads only wait for each other
    try:
        _write_copies(src, out, originals, int(n_copies), kinds, combine, rng, truth)
    finally:
        torch.set_num_threads(threads)
    return truth


def _write_copies(src: Path, out: Path, originals: list[str], n_copies: int, kinds: tuple, combine: bool, rng, truth: dict) -> None:
    from PIL import Image

    for n in range(n_copies):
        rel = originals[int(rng.integers(len(originals)))]
        if combine:
            chosen = [k for k in kinds if rng.random() < 0.5] or [kinds[int(rng.integers(len(kinds)))]]
        else:
            chosen = [kinds[n % len(kinds)]]
        with Image.open(src / rel) as im:
            aug, params = augmented_copy(im, chosen, rng)
        name = f"{Path(rel).parent.as_posix()}/aug_{n:06d}.jpg"
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        aug.save(out / name, "JPEG", quality=95)
        truth[name] = {"source": rel, "kinds": list(chosen), **params}
