"""The one preprocessing path from read pixels to model input.

The viewer, ``kdviewer predict`` and the training package all call these functions; the input
spec comes from the model card. Display windowing is a separate path (see ``display``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

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

    def as_dict(self) -> dict:
        """The spec as a plain dict (as stored in model cards)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
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


# The model path reads images with ``read_image(path, reduce_to=MODEL_READ_MIN_SIDE)``: a JPEG 2000
# image is then decoded at half resolution when its smaller side stays at least twice the model's
# input size (the resize to the input then still reduces by 2 or more). The viewer, `predict`,
# the list scoring and the benchmark all read this way, so a file gets the same scores everywhere.
MODEL_READ_MIN_SIDE = 2 * 224

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def scale_and_resize(
    pixels: np.ndarray, spec: InputSpec, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Scale grey ``pixels`` to [0, 1] from their full range and resize to ``spec.size``.

    Returns a float32 array of shape (size, size). ``value_range`` defaults to the pixels'
    own minimum and maximum; a constant image becomes all zeros.

    The resize runs first, on the raw values, and the scaling after it, on the small image:
    bilinear weights sum to one, so the two orders give the same result up to float rounding,
    and this one never makes a full-size temporary. The resize is PIL's antialiased bilinear
    with ``reducing_gap`` (an integer box reduction first, down to at least ``reducing_gap``
    times the target, then the bilinear filter), much cheaper on a full-size radiograph than a
    fair resampling and within 1e-3 of it on average on the built-in example (checked by
    tests/core/test_preprocess.py).
    """
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {pixels.shape}")
    arr = np.ascontiguousarray(pixels, dtype=np.float32)
    lo, hi = value_range if value_range is not None else (float(arr.min()), float(arr.max()))
    if arr.shape != (spec.size, spec.size):
        h, w = arr.shape
        img = Image.frombuffer("F", (w, h), arr, "raw", "F", 0, 1)  # shares memory, no copy
        small = img.resize((spec.size, spec.size), _RESAMPLE[spec.resample], reducing_gap=spec.reducing_gap)
        arr = np.asarray(small, dtype=np.float32)
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
    g = np.asarray(grey01, dtype=np.float32)[None]
    return ((g - mean) / std).astype(np.float32)


def to_model_input(
    pixels: np.ndarray, spec: InputSpec, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Full path: grey pixels → (channels, size, size) float32 normalised model input."""
    return normalize(scale_and_resize(pixels, spec, value_range), spec)


def image_to_model_input(image, spec: InputSpec) -> np.ndarray:
    """Model input for a :class:`~kdviewer.core.image.LoadedImage`."""
    return to_model_input(image.pixels, spec, image.value_range)
