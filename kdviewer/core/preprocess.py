"""The one preprocessing path from read pixels to model input.

The viewer, ``kdviewer predict`` and the training package all call these functions; the input
spec comes from the model card. Display windowing is a separate path (see ``display``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """How a model wants its input: square size, channel count and normalisation.

    ``scaling="minmax"`` maps the image's full value range (not a display window) to [0, 1];
    the grey image is resized to ``size`` x ``size`` without cropping (as in the paper), then
    replicated to ``channels`` channels and normalised by ``mean``/``std``.
    """

    size: int = 224
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    scaling: str = "minmax"
    resample: str = "bilinear"
    reducing_gap: float | None = 2.0

    @property
    def read_min_side(self) -> int:
        """The smaller side a reduced read keeps for this input (``read_image(path, reduce_to=...)``):
        twice ``size``, so the resize to the input still reduces by 2 or more (see below)."""
        return 2 * self.size

    def as_dict(self) -> dict:
        """The spec as a plain dict (as stored in model cards)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        """Build a spec from a card's table; unknown keys are ignored, unsupported values are an error."""
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("mean", "std"):
            if k in known:
                known[k] = tuple(float(v) for v in known[k])
        spec = cls(**known)
        if spec.scaling != "minmax":
            raise ValueError(f"unsupported input scaling {spec.scaling!r}")
        if len(spec.mean) != spec.channels or len(spec.std) != spec.channels:
            raise ValueError("mean/std must have one value per channel")
        return spec


# The model path reads images with ``read_image(path, reduce_to=card.input.read_min_side)``: a JPEG
# 2000 image is then decoded at half resolution when its smaller side stays at least twice the
# model's input size (the resize to the input then still reduces by 2 or more). `predict`, `report`,
# the DICOM node and training read this way per card, so a file gets the same scores everywhere;
# MODEL_READ_MIN_SIDE is the default spec's, for a read made before any card is loaded (the viewer's
# one read for both models, the benchmark): the shipped cards' size (tests/core/test_resources.py).
MODEL_READ_MIN_SIDE = InputSpec().read_min_side

RESAMPLE_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def _filter(resample: str):
    """PIL's filter function and support for ``resample`` (libImaging/Resample.c)."""
    if resample == "bilinear":
        return (lambda x: np.clip(1.0 - np.abs(x), 0.0, None)), 1.0
    a = -0.5  # PIL's bicubic

    def bicubic(x):
        x = np.abs(x)
        near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
        return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))

    return bicubic, 2.0


def _filter_weights(in_size: int, in1: float, out_size: int, resample: str) -> np.ndarray:
    """PIL's antialiased resampling of ``in_size`` samples (source extent [0, ``in1``)) to
    ``out_size`` as a dense ``(out_size, in_size)`` float64 matrix, with PIL's coefficients
    (``precompute_coeffs``: support scaled by the reduction factor, clipped at the edges and
    renormalised)."""
    func, support = _filter(resample)
    scale = in1 / out_size
    filterscale = max(scale, 1.0)
    support *= filterscale
    centers = (np.arange(out_size) + 0.5) * scale
    # C's (int) cast truncates toward zero, then clipped to the image
    xmin = np.clip(np.trunc(centers - support + 0.5).astype(np.int64), 0, in_size)
    xmax = np.clip(np.trunc(centers + support + 0.5).astype(np.int64), 0, in_size)
    x = np.arange(in_size)
    w = func((x[None, :] - centers[:, None] + 0.5) / filterscale)
    w[(x[None, :] < xmin[:, None]) | (x[None, :] >= xmax[:, None])] = 0.0
    total = w.sum(axis=1, keepdims=True)
    return np.divide(w, total, out=w, where=total != 0)


# Output samples per banded matrix product: fewer wasted multiply-adds against more calls; 12 was
# the fastest of 8-32 for a 1024² image on the development machine.
_CHUNK = 12


@lru_cache(maxsize=16)
def _resize_blocks(n: int, factor: int, out_size: int, resample: str) -> tuple:
    """The 1-D resize of ``n`` samples as PIL's ``Image.resize(reducing_gap=…)`` does it: means of
    ``factor`` samples (``Image.reduce``; a partial block at the end is the mean of the samples it
    holds), then the antialiased filter over the exact source box (:func:`_filter_weights`).

    Both steps are linear, so they are one ``(out_size, n)`` matrix, banded; returned as blocks of
    ``_CHUNK`` outputs with the input span they need, ``((lo, hi, j0, j1, weights[j1-j0, hi-lo]),
    ...)`` in float32, read-only.
    """
    blocks_in = -(-n // factor)
    filt = _filter_weights(blocks_in, n / factor, out_size, resample)
    block = np.arange(n) // factor
    counts = np.full(blocks_in, float(factor))
    counts[-1] = n - (blocks_in - 1) * factor
    matrix = filt[:, block] / counts[block]
    used = matrix != 0
    first = np.argmax(used, axis=1)
    last = n - np.argmax(used[:, ::-1], axis=1)
    blocks = []
    for j0 in range(0, out_size, _CHUNK):
        j1 = min(j0 + _CHUNK, out_size)
        lo, hi = int(first[j0:j1].min()), int(last[j0:j1].max())
        wt = np.ascontiguousarray(matrix[j0:j1, lo:hi], dtype=np.float32)
        wt.flags.writeable = False
        blocks.append((lo, hi, j0, j1, wt))
    return tuple(blocks)


def _resize(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``pixels`` resized to ``spec.size`` squared as PIL's ``Image.resize(..., reducing_gap=…)`` does
    it (an integer box reduction down to at least ``reducing_gap`` times the target, then the
    antialiased filter over the exact source box), equal to it within float32 rounding.

    Each direction is one banded matrix (:func:`_resize_blocks`, box means and filter together).
    The columns of the image are resized first, block of rows by block of rows, so the full-size
    image is read once, in order, in its own dtype (each block cast to float32 as it is used), with
    no full-size temporary; then the rows of the small result. PIL reduces and filters float images
    in double precision one pixel at a time, several times slower.
    """
    h, w = pixels.shape
    size = spec.size
    fx = fy = 1
    if spec.reducing_gap is not None:  # PIL's own rule (Image.resize)
        fx = int(w / size / spec.reducing_gap) or 1
        fy = int(h / size / spec.reducing_gap) or 1
    cols = np.empty((size, w), dtype=np.float32)
    for lo, hi, j0, j1, wt in _resize_blocks(h, fy, size, spec.resample):
        np.matmul(wt, np.asarray(pixels[lo:hi], dtype=np.float32), out=cols[j0:j1])
    out = np.empty((size, size), dtype=np.float32)
    for lo, hi, j0, j1, wt in _resize_blocks(w, fx, size, spec.resample):
        out[:, j0:j1] = cols[:, lo:hi] @ wt.T  # (numpy's matmul skips BLAS for a strided ``out=``)
    return out


def scale_and_resize(
    pixels: np.ndarray, spec: InputSpec, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Scale grey ``pixels`` to [0, 1] from their full range and resize to ``spec.size``.

    Returns a float32 array of shape (size, size). ``value_range`` defaults to the pixels'
    own minimum and maximum; a constant image becomes all zeros.

    The resize runs first, on the raw values in their own dtype, and the scaling after it, on the
    small image: box and bilinear weights sum to one, so the two orders give the same result up
    to float rounding, and this one never makes a full-size temporary. The resize is PIL's
    antialiased bilinear with ``reducing_gap`` (an integer box reduction first, down to at least
    ``reducing_gap`` times the target, then the bilinear filter), much cheaper on a full-size
    radiograph than a fair resampling and within 1e-3 of it on average on the built-in example;
    it runs as banded float32 matrix products (:func:`_resize`) and equals PIL's own within float32
    rounding (both checked by tests/core/test_preprocess.py).
    """
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {pixels.shape}")
    if value_range is not None:
        lo, hi = value_range
    else:
        lo, hi = float(pixels.min()), float(pixels.max())
    if pixels.shape != (spec.size, spec.size):
        arr = _resize(pixels, spec)
    else:
        arr = np.asarray(pixels, dtype=np.float32)
    span = hi - lo
    if span <= 0:
        return np.zeros((spec.size, spec.size), dtype=np.float32)
    out = (arr - np.float32(lo)) * np.float32(1.0 / span)
    return np.clip(out, 0.0, 1.0, out=out)


def normalize(grey01: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Replicate a [0, 1] grey image (…, H, W) to ``spec.channels`` and apply mean/std.

    Works on numpy arrays and on torch tensors (training normalises batches after augmentation).
    """
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(-1, 1, 1)
    if hasattr(grey01, "new_tensor"):  # torch tensor, shape (N, 1, H, W) or (1, H, W)
        m, s = grey01.new_tensor(mean), grey01.new_tensor(std)
        return (grey01 - m) / s
    g = np.asarray(grey01, dtype=np.float32)
    out = np.subtract(g[None], mean, dtype=np.float32)  # (channels, …): the grey image replicated
    return np.divide(out, std, out=out)


def to_model_input(
    pixels: np.ndarray, spec: InputSpec, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Full path: grey pixels → (channels, size, size) float32 normalised model input."""
    return normalize(scale_and_resize(pixels, spec, value_range), spec)


def image_to_model_input(image, spec: InputSpec) -> np.ndarray:
    """Model input for a :class:`~kdviewer.core.image.LoadedImage`."""
    return to_model_input(image.pixels, spec, image.value_range)
