"""The display path: window/level and VOI LUT to 8-bit grey for human eyes.

Separate from the model path (:mod:`kdviewer.core.preprocess`), which always scales from the
full value range. Everything here works in the value space of
:attr:`kdviewer.core.image.LoadedImage.pixels` (Modality LUT applied, MONOCHROME1 already
inverted), so a higher output is always brighter. The viewer's image view, the study list's
thumbnails and therefore the screenshots all render through this module.
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


CUSTOM = "custom"


def window_bounds(window: Window) -> tuple[float, float]:
    """The values a window's ramp spans, from black to white (SIGMOID: where it passes 12 % and 88 %).

    LINEAR: ``c - 0.5 ∓ (w - 1) / 2``; LINEAR_EXACT and SIGMOID: ``c ∓ w / 2`` (PS3.3 C.11.2.1.2).
    """
    c, w = float(window.center), float(window.width)
    if window.function.upper() == "LINEAR":
        return c - 0.5 - (w - 1.0) / 2.0, c - 0.5 + (w - 1.0) / 2.0
    return c - w / 2.0, c + w / 2.0


def window_from_bounds(lo: float, hi: float) -> Window:
    """A hand-made window showing ``lo`` as black and ``hi`` as white (LINEAR_EXACT, so the ramp is
    exactly the interval drawn), named :data:`CUSTOM`."""
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    width = max(hi - lo, 1e-6)
    return Window(center=lo + width / 2.0, width=width, explanation=CUSTOM, function="LINEAR_EXACT")


# A lookup over every value pays off only for integer-valued pixels in a modest range.
_MAX_LOOKUP_VALUES = 1 << 16


class DisplayRenderer:
    """Renders one image through any window or its VOI LUT, for an interactive view.

    The result is always that of :func:`apply_window` / :func:`apply_voi_lut` on the pixels. For
    integer-valued pixels spanning at most 65536 values (every DICOM radiograph), the function is
    evaluated once per value and looked up, which is the same computation on the same float32
    values, several times faster than evaluating it per pixel (window/level drags re-render often).
    """

    def __init__(self, image: LoadedImage):
        self.image = image
        self._index: np.ndarray | None = None
        self._values: np.ndarray | None = None
        self._lookup_checked = False
        self._renders = 0

    def render(self, window: Window | None = None, *, voi_lut: bool = False) -> np.ndarray:
        """uint8 grey: the image's VOI LUT with ``voi_lut``, else ``window`` (default: the image's
        default, see :func:`to_display_uint8`)."""
        self._renders += 1
        if self._renders > 1 and not self._lookup_checked:  # a second render: a drag may follow
            self._prepare_lookup()
        if self._index is None:
            if voi_lut:
                return apply_voi_lut(self.image.pixels, self.image.voi_lut)
            return to_display_uint8(self.image, window or default_window(self.image))
        if voi_lut:
            table = apply_voi_lut(self._values, self.image.voi_lut)
        else:
            w = window or default_window(self.image)
            table = apply_window(self._values, w.center, w.width, w.function)
        return table[self._index]

    def _prepare_lookup(self) -> None:
        self._lookup_checked = True
        pixels = self.image.pixels
        lo, hi = float(pixels.min()), float(pixels.max())
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo >= _MAX_LOOKUP_VALUES:
            return
        offset = pixels - np.float32(lo)
        index = offset.astype(np.uint16)
        if not np.array_equal(index, offset):  # not integer-valued
            return
        self._values = np.arange(int(hi - lo) + 1, dtype=np.float32) + np.float32(lo)
        self._index = index
