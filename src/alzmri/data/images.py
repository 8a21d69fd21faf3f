"""Decode one image file into the grayscale array the models see."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Largest image accepted, in pixels; PIL's own decompression-bomb limit is 2x this.
MAX_PIXELS = 50_000_000
#: Resampling used for every resize (training, cache and prediction alike).
RESAMPLE = Image.Resampling.BILINEAR


class UnreadableImageError(ValueError):
    """The file is not a readable image; the message says why (one line)."""


def to_grayscale_array(img: Image.Image) -> np.ndarray:
    """Convert a PIL image of any common mode to a uint8 array of shape (H, W).

    16-bit and 32-bit images are rescaled from their min..max to 0..255; alpha is
    dropped (composited on black); RGB, CMYK and palette images go through PIL's
    ITU-R 601-2 luma conversion.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if hi > lo:
            arr = (arr - lo) / (hi - lo) * 255.0
        else:
            arr = np.zeros_like(arr)
        return np.round(arr).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def decode_image(path: str | Path, image_size: int | None) -> np.ndarray:
    """Read an image file as grayscale uint8, resized to ``image_size`` x ``image_size``.

    Parameters
    ----------
    path : path-like
        JPEG, PNG, BMP, TIFF, GIF or WebP file.
    image_size : int or None
        Output side in pixels (bilinear, antialiased), or None to keep the size.

    Returns
    -------
    ndarray of shape (image_size, image_size), dtype uint8

    Raises
    ------
    UnreadableImageError
        The file is empty, truncated, not an image, a broken or looping symbolic link,
        larger than :data:`MAX_PIXELS` (a decompression bomb: refused from the header,
        before decoding), or smaller than 8 x 8 pixels.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise UnreadableImageError("broken or looping symbolic link (it leads to no file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise UnreadableImageError(f"{w}x{h} pixels is over the {MAX_PIXELS:,}-pixel limit (decompression bomb?)")
                if w < 8 or h < 8:
                    raise UnreadableImageError(f"{w}x{h} pixels is too small to be an MRI slice")
                img.load()
                arr = to_grayscale_array(img)
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImageError(f"decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        if path.stat().st_size == 0:
            raise UnreadableImageError("empty file (0 bytes)") from None
        raise UnreadableImageError("not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnreadableImageError(f"corrupt or truncated image ({msg})") from None
    if image_size is not None and arr.shape != (image_size, image_size):
        arr = np.asarray(Image.fromarray(arr).resize((image_size, image_size), RESAMPLE), dtype=np.uint8)
    return arr
