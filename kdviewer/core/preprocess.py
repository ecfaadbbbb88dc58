"""The one preprocessing path from read pixels to model input.

The viewer, ``kdviewer predict`` and the training package all call these functions; the input
spec comes from the model card. Display windowing is a separate path (see ``display``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import NamedTuple

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


# How the banded products are cut, tuned on a 1024² image on the 2-core Xeon development machine
# (numpy's BLAS on one thread; the constants edited and the parts timed by
# `benchmarks/engine_study.py --preprocess`: first_pass_uint16, second_pass): few outputs per
# product keep each product's window of input samples narrow, so fewer multiply-adds land on the
# band's zeros, and many products are batched into one np.matmul over windows at a common stride,
# so they cost one Python call. 4 outputs per product were the fastest of 3-8 in the first pass,
# 16 of 8-32 in the second.
_PASS1_OUTPUTS = 4  # outputs per product along the full-size image's columns (first pass)
_PASS2_OUTPUTS = 16  # along the rows of the small intermediate (second pass)
_BATCH_SLACK = 1.15  # a batch's common window is at most this much wider than the widest band
# A first-pass batch spans up to _CAST_ROWS input rows (cast to float32 in one buffer), more when
# rows are narrow enough to stay within _CAST_BYTES, a quarter of the core's 2 MB L2 cache (a
# 1024-wide image: 512 KB); wide images go past it (3000 columns: 1.5 MB). Batches of up to 1 MB
# were slower for 1024² uint16.
_CAST_ROWS = 128
_CAST_BYTES = 512 * 1024


class _Batch(NamedTuple):
    """Products ``k = 0..g-1`` over input samples ``[start + k*step, start + k*step + span)``,
    giving outputs ``j0 + k*c ... j0 + k*c + c - 1``; ``weights`` is ``(g, c, span)`` float32
    (``(g, span, c)`` for the second pass), read-only, zero where an output ignores a sample."""

    start: int
    step: int
    span: int
    j0: int
    weights: np.ndarray


def _resize_matrix(n: int, factor: int, out_size: int, resample: str) -> np.ndarray:
    """The 1-D resize of ``n`` samples as PIL's ``Image.resize(reducing_gap=…)`` does it: means of
    ``factor`` samples (``Image.reduce``; a partial block at the end is the mean of the samples it
    holds), then the antialiased filter over the exact source box (:func:`_filter_weights`).
    Both steps are linear, so they are one ``(out_size, n)`` float64 matrix, banded."""
    blocks_in = -(-n // factor)
    filt = _filter_weights(blocks_in, n / factor, out_size, resample)
    block = np.arange(n) // factor
    counts = np.full(blocks_in, float(factor))
    counts[-1] = n - (blocks_in - 1) * factor
    return filt[:, block] / counts[block]


@lru_cache(maxsize=32)
def _resize_plan(
    n: int, factor: int, out_size: int, resample: str, outputs: int, max_window: int, transposed: bool
) -> tuple[int, tuple[_Batch, ...]]:
    """:func:`_resize_matrix` cut into products of ``outputs`` outputs, grouped into batches.

    Each product needs the input samples between its outputs' first and last nonzero weight. A
    batch takes consecutive products while one stride and one window length cover them all, the
    window stays within ``_BATCH_SLACK`` times the widest product's band and ``max_window``
    samples, and the last window ends inside the input. Returns the padded output count (a
    multiple of ``outputs``; outputs past ``out_size`` have zero weights) and the batches.
    """
    matrix = _resize_matrix(n, factor, out_size, resample)
    used = matrix != 0
    first = np.argmax(used, axis=1)
    last = n - np.argmax(used[:, ::-1], axis=1)
    products = -(-out_size // outputs)
    lo = [int(first[b * outputs : (b + 1) * outputs].min()) for b in range(products)]
    hi = [int(last[b * outputs : (b + 1) * outputs].max()) for b in range(products)]
    widest = max(b - a for a, b in zip(lo, hi, strict=True))
    batches = []
    b0 = 0
    while b0 < products:
        g, step, span = 1, 0, hi[b0] - lo[b0]
        while b0 + g < products:
            s = min((lo[b] - lo[b0]) // (b - b0) for b in range(b0 + 1, b0 + g + 1))
            k = max(hi[b] - lo[b0] - (b - b0) * s for b in range(b0, b0 + g + 1))
            window = g * s + k
            if k > _BATCH_SLACK * widest or window > max_window or lo[b0] + window > n:
                break
            g, step, span = g + 1, s, k
        weights = np.zeros((g, outputs, span), dtype=np.float32)
        for i in range(g):
            j = (b0 + i) * outputs
            rows = matrix[j : min(j + outputs, out_size)]
            a = lo[b0] + i * step
            weights[i, : len(rows)] = rows[:, a : a + span]
        if transposed:
            weights = np.ascontiguousarray(weights.transpose(0, 2, 1))
        weights.flags.writeable = False
        batches.append(_Batch(lo[b0], step, span, b0 * outputs, weights))
        b0 += g
    return products * outputs, tuple(batches)


def _resize_first_pass(pixels: np.ndarray, plan: tuple[int, tuple[_Batch, ...]]) -> np.ndarray:
    """Resize the columns of the full-size ``pixels``: ``(padded outputs, w)`` float32.

    float32 pixels in C order are read in place; any other dtype is cast batch by batch into one
    float32 buffer of the batch's rows, so the full-size image is never copied whole."""
    padded, batches = plan
    w = pixels.shape[1]
    row = 4 * w  # bytes
    out = np.empty((padded, w), dtype=np.float32)
    direct = pixels.dtype == np.float32 and pixels.flags.c_contiguous and pixels.flags.aligned
    if not direct:
        scratch = np.empty((max(b.step * (len(b.weights) - 1) + b.span for b in batches), w), np.float32)
    for start, step, span, j0, weights in batches:
        g, c, _ = weights.shape
        if direct:
            src, offset = pixels, start * row
        else:
            rows = step * (g - 1) + span
            np.copyto(scratch[:rows], pixels[start : start + rows], casting="unsafe")
            src, offset = scratch, 0
        # the g windows as one (g, span, w) view (np.ndarray is ~8x cheaper than as_strided)
        windows = np.ndarray((g, span, w), np.float32, src, offset, (step * row, row, 4))
        dest = np.ndarray((g, c, w), np.float32, out, j0 * row, (c * row, row, 4))
        np.matmul(weights, windows, out=dest)
    return out


def _resize_second_pass(cols: np.ndarray, plan: tuple[int, tuple[_Batch, ...]]) -> np.ndarray:
    """Resize the rows of the C-ordered float32 ``cols``: ``(rows, padded outputs)`` float32."""
    padded, batches = plan
    h, n = cols.shape
    out = np.empty((h, padded), dtype=np.float32)
    for start, step, span, j0, weights in batches:
        g, _, c = weights.shape
        windows = np.ndarray((g, h, span), np.float32, cols, start * 4, (step * 4, n * 4, 4))
        dest = np.ndarray((g, h, c), np.float32, out, j0 * 4, (c * 4, padded * 4, 4))
        np.matmul(windows, weights, out=dest)
    return out


def _resize_plans(shape: tuple[int, int], spec: InputSpec) -> tuple[tuple, tuple]:
    """The plans (:func:`_resize_plan`) of both passes of :func:`_resize` for an image of ``shape``."""
    h, w = shape
    fx = fy = 1
    if spec.reducing_gap is not None:  # PIL's own rule (Image.resize)
        fx = int(w / spec.size / spec.reducing_gap) or 1
        fy = int(h / spec.size / spec.reducing_gap) or 1
    window = max(_CAST_ROWS, _CAST_BYTES // (4 * w))
    return (
        _resize_plan(h, fy, spec.size, spec.resample, _PASS1_OUTPUTS, window, False),
        _resize_plan(w, fx, spec.size, spec.resample, _PASS2_OUTPUTS, w, True),
    )


def _resize(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``pixels`` resized to ``spec.size`` squared as PIL's ``Image.resize(..., reducing_gap=…)`` does
    it (an integer box reduction down to at least ``reducing_gap`` times the target, then the
    antialiased filter over the exact source box), equal to it within float32 rounding.

    Each direction is one banded matrix (:func:`_resize_matrix`, box means and filter together),
    applied as batched float32 matrix products (:func:`_resize_plan`). The columns of the image are
    resized first, in order, in its own dtype (cast to float32 batch by batch), with no full-size
    temporary; then the rows of the small result. PIL reduces and filters float images in double
    precision one pixel at a time, several times slower.

    Cost of the whole path (:func:`to_model_input` with the image's value range) for a 1024² image,
    ``benchmarks/engine_study.py --preprocess --runs 300`` (2-core Xeon development machine, numpy's
    BLAS on one thread, load 0.6, 2026-12-02; two runs, alternating with two of the previous
    one-product-per-call version at 5ec038b): float32 0.39-0.43 ms warm (was 0.67-0.72), uint16
    0.44-0.45 (0.66-0.71), int16 0.42-0.44, uint8 0.41-0.43, uint16 without the value range (a
    min/max pass) 0.57; right after a forward pass of the student (cold caches) float32 0.48-0.56
    (0.76-0.78). Of the warm float32 path: first pass 0.23 (0.27-0.28 from uint16: the cast),
    second pass 0.08, scaling 0.02, normalisation 0.03; PIL's own resize of the float32 image
    1.74-1.83 ms.
    """
    size = spec.size
    plan1, plan2 = _resize_plans(pixels.shape, spec)
    cols = _resize_first_pass(pixels, plan1)[:size]
    out = _resize_second_pass(cols, plan2)
    return out if out.shape[1] == size else np.ascontiguousarray(out[:, :size])


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
    span = hi - lo
    if span <= 0:
        return np.zeros((spec.size, spec.size), dtype=np.float32)
    if pixels.shape != (spec.size, spec.size):
        out = _resize(pixels, spec)
    else:
        out = np.array(pixels, dtype=np.float32)  # a copy: scaled in place below
    out -= np.float32(lo)
    out *= np.float32(1.0 / span)
    return np.clip(out, 0.0, 1.0, out=out)


@lru_cache(maxsize=16)
def _normalisation(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(g - mean) / std`` as ``g * scale + offset``, per channel, (channels, 1, 1) float32
    read-only: a multiply is cheaper than a divide (sums in double, rounded once)."""
    scale = 1.0 / np.asarray(std, dtype=np.float64)
    offset = -np.asarray(mean, dtype=np.float64) * scale
    out = tuple(v.astype(np.float32).reshape(-1, 1, 1) for v in (scale, offset))
    for v in out:
        v.flags.writeable = False
    return out


def normalize(grey01: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Replicate a [0, 1] grey image (…, H, W) to ``spec.channels`` and apply mean/std.

    Works on numpy arrays and on torch tensors (training normalises batches after augmentation).
    """
    if hasattr(grey01, "new_tensor"):  # torch tensor, shape (N, 1, H, W) or (1, H, W)
        m = grey01.new_tensor(np.asarray(spec.mean, dtype=np.float32).reshape(-1, 1, 1))
        s = grey01.new_tensor(np.asarray(spec.std, dtype=np.float32).reshape(-1, 1, 1))
        return (grey01 - m) / s
    scale, offset = _normalisation(spec.mean, spec.std)
    out = np.multiply(np.asarray(grey01, dtype=np.float32)[None], scale)  # the grey image replicated
    out += offset
    return out


def to_model_input(
    pixels: np.ndarray, spec: InputSpec, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Full path: grey pixels → (channels, size, size) float32 normalised model input."""
    return normalize(scale_and_resize(pixels, spec, value_range), spec)


def image_to_model_input(image, spec: InputSpec) -> np.ndarray:
    """Model input for a :class:`~kdviewer.core.image.LoadedImage`."""
    return to_model_input(image.pixels, spec, image.value_range)
