"""Does an image file look like the brain-MRI slices the models were trained on?

The training slices (alzheimer-mri-6400 and the 176x208 release) are 8-bit grayscale,
skull-stripped axial slices: a bright brain in the middle of a black frame. A classifier
given anything else (a photo, a scanned page) still returns four probabilities that sum
to 1, often with a high maximum, so ``alzmri predict`` checks the *input* with a simple,
measurable rule and flags what fails it. The rule, on the decoded file at its own size:

1. **Colour.** ``chroma`` = mean over pixels of ``(max(R, G, B) - min(R, G, B)) / 255``
   (0 for grayscale files). Fails when above :data:`MAX_CHROMA` (0.02: five grey levels
   on average; JPEG chroma noise of a grayscale slice saved as RGB stays far below).
2. **Dark frame.** ``dark_border`` = fraction of the pixels in the outer ring
   (:data:`BORDER_FRACTION` = 3 % of the shorter side, at least 1 pixel) whose grey value
   is at most :data:`DARK_LEVEL` (25 of 255, the foreground level of
   :mod:`alzmri.data.volumes`). Fails when below :data:`MIN_DARK_BORDER` (0.5).
3. **Background share.** ``dark_fraction`` = fraction of all pixels at most
   :data:`DARK_LEVEL`. Fails outside :data:`DARK_FRACTION_RANGE` (0.10..0.90): no black
   background at all, or an almost empty frame.

An image *looks like an MRI slice* when it passes all three. Grey values come from
:func:`alzmri.data.images.to_grayscale_array` (16-bit rescaled, alpha on black), so the
rule sees what the model sees before resizing. The false-positive rate on the real sets
and the detection rate on photos are measured by ``benchmarks/ood_check.py`` and written
in docs/inference.md. 3D volumes are not checked by this rule (they are normalised and
cropped by :mod:`alzmri.data.volumes`, which refuses non-3D input).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from alzmri.data.images import to_grayscale_array

#: Mean chroma (0..1) above which an image counts as a colour picture.
MAX_CHROMA = 0.02
#: Grey level (0..255) at or below which a pixel counts as dark background.
DARK_LEVEL = 25
#: Width of the border ring, as a fraction of the shorter side.
BORDER_FRACTION = 0.03
#: Smallest fraction of dark pixels in the border ring.
MIN_DARK_BORDER = 0.5
#: Accepted range of the fraction of dark pixels in the whole image.
DARK_FRACTION_RANGE = (0.10, 0.90)
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA")


@dataclass
class SliceCheck:
    """The measures of the rule and its verdict.

    Attributes
    ----------
    looks_like_mri : bool
        True when the image passes all three criteria.
    chroma : float
        Mean chroma, 0..1.
    dark_border : float
        Fraction of dark pixels in the border ring, 0..1.
    dark_fraction : float
        Fraction of dark pixels in the image, 0..1.
    reasons : list of str
        One short phrase per failed criterion (empty when it passes).
    """

    looks_like_mri: bool
    chroma: float
    dark_border: float
    dark_fraction: float
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready dict (floats rounded to 4 digits)."""
        d = asdict(self)
        for k in ("chroma", "dark_border", "dark_fraction"):
            d[k] = round(float(d[k]), 4)
        d["rule"] = "docs/inference.md#is-it-an-mri-slice"
        return d

    def warning(self, name: str) -> str | None:
        """One line for the user, or None when the image passes."""
        if self.looks_like_mri:
            return None
        return f"{name} does not look like a brain MRI slice ({'; '.join(self.reasons)}); its prediction is not meaningful"


def _chroma(img: Image.Image) -> float:
    if img.mode not in _COLOUR_MODES:
        return 0.0
    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean() / 255.0)


def check_gray(gray: np.ndarray, chroma: float = 0.0) -> SliceCheck:
    """Apply the rule to a decoded grayscale image.

    Parameters
    ----------
    gray : ndarray of shape (H, W), dtype uint8
        The image at its own size (not resized).
    chroma : float, default=0.0
        Mean chroma of the original file (0..1), see :func:`check_image`.

    Returns
    -------
    SliceCheck
    """
    h, w = gray.shape
    k = max(1, int(round(BORDER_FRACTION * min(h, w))))
    dark = gray <= DARK_LEVEL
    ring = np.concatenate([dark[:k].ravel(), dark[-k:].ravel(), dark[k:-k, :k].ravel(), dark[k:-k, -k:].ravel()])
    dark_border = float(ring.mean()) if ring.size else 0.0
    dark_fraction = float(dark.mean())
    reasons = []
    if chroma > MAX_CHROMA:
        reasons.append(f"colour image: mean chroma {chroma:.3f} > {MAX_CHROMA}")
    if dark_border < MIN_DARK_BORDER:
        reasons.append(f"no dark frame: {dark_border:.0%} of border pixels are dark (<= {DARK_LEVEL}), fewer than {MIN_DARK_BORDER:.0%}")
    lo, hi = DARK_FRACTION_RANGE
    if not lo <= dark_fraction <= hi:
        what = "no dark background" if dark_fraction < lo else "almost empty frame"
        reasons.append(f"{what}: {dark_fraction:.0%} of pixels are dark, outside {lo:.0%}..{hi:.0%}")
    return SliceCheck(not reasons, chroma, dark_border, dark_fraction, reasons)


def check_image(img: Image.Image) -> SliceCheck:
    """Apply the rule to an opened PIL image of any mode (16-bit, alpha, CMYK, palette...)."""
    return check_gray(to_grayscale_array(img), _chroma(img))


def check_slice_file(path: str | Path) -> SliceCheck:
    """Apply the rule to an image file.

    Raises
    ------
    alzmri.data.images.UnreadableImageError
        The file is not a readable image (call :func:`alzmri.data.images.decode_image`
        first for the usual checks and messages).
    """
    from alzmri.data.images import UnreadableImageError

    try:
        with Image.open(path) as img:
            img.load()
            return check_image(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(f"not a readable image ({type(exc).__name__})") from None
