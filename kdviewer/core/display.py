"""The display path: window/level and VOI LUT to 8-bit grey for human eyes.

Separate from the model path (:mod:`kdviewer.core.preprocess`), which always scales from the
full value range. Everything here works in the value space of
:attr:`kdviewer.core.image.LoadedImage.pixels` (Modality LUT applied, MONOCHROME1 already
inverted), so a higher output is always brighter.
"""

from __future__ import annotations

import numpy as np

from .image import LoadedImage, Window


def apply_window(pixels: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Window ``pixels`` to uint8 (0..255) with the DICOM VOI LUT functions (PS3.3 C.11.2.1.2).

    LINEAR (the default): below ``c - 0.5 - (w - 1) / 2`` is 0, above ``c - 0.5 + (w - 1) / 2``
    is 255, linear ``((x - (c - 0.5)) / (w - 1) + 0.5) * 255`` between (requires ``w >= 1``).
    LINEAR_EXACT: ``((x - c) / w + 0.5) * 255`` clipped (``w > 0``).
    SIGMOID: ``255 / (1 + exp(-4 (x - c) / w))`` (``w > 0``). Results are rounded.
    """
    x = np.asarray(pixels, dtype=np.float32)
    c, w = float(center), float(width)
    function = function.upper()
    if function == "LINEAR":
        if w < 1:
            raise ValueError(f"LINEAR window width must be >= 1, got {w}")
        if w == 1:  # a threshold at c - 0.5
            return np.where(x > c - 0.5, 255, 0).astype(np.uint8)
        y = (x - np.float32(c - 0.5)) * np.float32(1.0 / (w - 1)) + np.float32(0.5)
    elif function == "LINEAR_EXACT":
        if w <= 0:
            raise ValueError(f"window width must be > 0, got {w}")
        y = (x - np.float32(c)) * np.float32(1.0 / w) + np.float32(0.5)
    elif function == "SIGMOID":
        if w <= 0:
            raise ValueError(f"window width must be > 0, got {w}")
        z = np.clip(np.float32(-4.0 / w) * (x - np.float32(c)), -80.0, 80.0)  # exp stays finite
        y = np.float32(1.0) / (np.float32(1.0) + np.exp(z))
    else:
        raise ValueError(f"unknown VOI LUT function {function!r}")
    return _to_uint8(y)


def _to_uint8(y01: np.ndarray) -> np.ndarray:
    y = np.clip(y01, 0.0, 1.0, out=y01 if y01.dtype == np.float32 else None)
    y *= 255.0
    return np.rint(y, out=y).astype(np.uint8)


def apply_voi_lut(pixels: np.ndarray, lut: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Apply a VOI LUT ``(inputs, outputs in [0, 1])`` as in :attr:`LoadedImage.voi_lut`.

    Values below/above the table take its first/last output; values between entries are
    interpolated linearly (for integer-valued pixels on the table's integer grid that is the
    exact table lookup). Returns uint8 (0..255).
    """
    inputs, outputs = lut
    y = np.interp(np.asarray(pixels, dtype=np.float32), inputs, outputs).astype(np.float32)
    return _to_uint8(y)


def full_range_window(value_range: tuple[float, float]) -> Window:
    """A LINEAR window covering ``value_range`` exactly (lowest value black, highest white)."""
    lo, hi = float(value_range[0]), float(value_range[1])
    width = max(hi - lo + 1.0, 1.0)  # LINEAR maps [c - 0.5 - (w-1)/2, c - 0.5 + (w-1)/2] to [0, 1]
    return Window(center=lo + width / 2.0, width=width, explanation="full range")


def default_window(image: LoadedImage) -> Window:
    """The window to show first: the file's first preset, else the image's full value range."""
    if image.windows:
        return image.windows[0]
    return full_range_window(image.value_range)


def to_display_uint8(image: LoadedImage, window: Window | None = None) -> np.ndarray:
    """The image as uint8 grey for the screen.

    With ``window``, that window; without, the file's VOI LUT if it has one, else
    :func:`default_window`.
    """
    if window is None and image.voi_lut is not None:
        return apply_voi_lut(image.pixels, image.voi_lut)
    w = window or default_window(image)
    return apply_window(image.pixels, w.center, w.width, w.function)
