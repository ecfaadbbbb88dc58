"""The scope check: is an image what the models were trained for, an adult frontal chest radiograph?

Two sources, cheapest first:

* **The header** (DICOM only, :func:`header_verdict`): Modality other than CR/DX ("header says
  MR"), a body part other than the chest, a lateral or oblique view (ViewPosition, or
  PatientOrientation whose rows run front-to-back), a localizer, a patient under 18 years. It
  needs no pixels: :func:`kdviewer.core.imageio.read_dicom_header` reads the header alone.
* **The pixels** (every format, :class:`ScopeModel`): two Mahalanobis distances, each in a
  PCA subspace with a Ledoit-Wolf shrunk covariance fitted on the training split
  (``kdviewer-train scope``):

  - *features*: the student's pooled feature vector (the global average of the feature map its
    forward pass yields anyway, :attr:`~kdviewer.core.engine.Prediction.features`): far from
    the training features → "unusual image — far from the training data";
  - *layout*: a 16×16 grey thumbnail, standardised per image, of where the image is bright and
    dark. The network's pooled features are nearly blind to orientation and polarity (averaging
    discards where things are), so rotated, inverted, cropped or other-body-part images pass
    the first distance; their layout does not. When the inverted or rotated thumbnail would
    pass, the reason says so ("image looks inverted", "image looks rotated by 90°").

  Both cost a few 1280×64 and 256×32 products, well under 1 ms. Each distance is divided by
  its threshold (chosen on the ``val`` split, stated in the model card); ``ood_score`` is the
  larger ratio and the image is out of scope when it exceeds 1.

The parameters live in a weights-only safetensors file beside the card, verified by the SHA-256
the card records (``card.scope``); a card without a scope section gets the header check only.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as load_safetensors

from kdviewer.core.errors import ImageReadError, ModelLoadError
from kdviewer.core.image import ImageMetadata, LoadedImage
from kdviewer.core.imageio import read_dicom_header, sniff_format
from kdviewer.core.modelcard import MAX_SCOPE_BYTES, verified_bytes

__all__ = [
    "LAYOUT_SIDE",
    "SCOPE_FORMAT",
    "ScopeModel",
    "ScopeVerdict",
    "check",
    "header_only",
    "header_verdict",
    "layout_vector",
    "load_scope",
    "scope_of_engine",
]

log = logging.getLogger(__name__)

SCOPE_FORMAT = 1
LAYOUT_SIDE = 16  # thumbnail side: enough to see lungs, mediastinum and diaphragm, cheap to score
_SAMPLE_SIDE = 8 * LAYOUT_SIDE  # pixels sampled per side before block-averaging (no full-image pass)

CHEST_MODALITIES = frozenset({"CR", "DX"})
# These say nothing about what was captured (a scanned or photographed film, a screenshot): the pixels decide.
UNSPECIFIC_MODALITIES = frozenset({"OT", "SC"})
_CHEST_WORDS = ("CHEST", "THORAX", "LUNG", "THORAC")
_LATERAL_VIEWS = frozenset({"LL", "RL", "LAT", "LATERAL", "LLAT", "RLAT", "XTABLE LATERAL"})
_OBLIQUE_VIEWS = frozenset({"LAO", "RAO", "LPO", "RPO", "OBL", "OBLIQUE"})
_AGE = re.compile(r"^(\d{1,3})([DWMY])$")
_DAYS_PER = {"D": 1.0, "W": 7.0, "M": 30.44, "Y": 365.25}
ADULT_YEARS = 18

REASON_FAR = "unusual image — far from the training data"
REASON_LAYOUT = "not a frontal chest radiograph (unusual layout)"
REASON_EMPTY = "nearly empty image (no contrast)"


@dataclass(frozen=True)
class ScopeVerdict:
    """In scope or not, and why. ``source``: "header", "pixels" or "none" (nothing to check with).

    ``ood_score`` is the larger of the pixel distances divided by its threshold (None when the
    pixels were not scored, or hold nothing to score); ``threshold`` is then 1.0.
    """

    in_scope: bool
    reason: str | None
    source: str
    ood_score: float | None = None
    threshold: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """What ``kdviewer predict`` writes per image."""
        score = None if self.ood_score is None else round(float(self.ood_score), 4)
        return {
            "in_scope": self.in_scope,
            "reason": self.reason,
            "ood_score": score,
            "threshold": self.threshold,
        }


# --------------------------------------------------------------------------- header


def _age_years(value: str | None) -> float | None:
    m = _AGE.match((value or "").strip().upper())
    return None if m is None else int(m.group(1)) * _DAYS_PER[m.group(2)] / 365.25


def header_verdict(meta: ImageMetadata, dataset=None) -> ScopeVerdict | None:
    """An out-of-scope verdict from what a DICOM header says, or None when it raises no objection
    (or the image is not DICOM). ``dataset`` (a pydicom Dataset without pixels, optional) adds
    PatientOrientation and ImageType. Reasons never quote identifying values (no exact age)."""
    if meta.source_format != "DICOM":
        return None

    def out(reason: str) -> ScopeVerdict:
        return ScopeVerdict(False, reason, "header")

    modality = (meta.modality or "").strip().upper()
    if modality and modality not in CHEST_MODALITIES | UNSPECIFIC_MODALITIES:
        return out(f"header says {modality}")
    body = (meta.body_part or "").strip().upper()
    if body and not any(w in body for w in _CHEST_WORDS):
        return out(f"not a chest radiograph (header says body part {body[:16]})")
    view = (meta.view_position or "").strip().upper()
    if view in _LATERAL_VIEWS:
        return out("lateral view")
    if view in _OBLIQUE_VIEWS:
        return out("oblique view")
    if dataset is not None:
        orientation = [str(v).upper() for v in (dataset.get("PatientOrientation") or [])]
        # A frontal film's rows run left-right (L/R); a lateral's run anterior-posterior (A/P).
        if not view and orientation and orientation[0][:1] in ("A", "P"):
            return out("lateral view (by patient orientation)")
        image_type = [str(v).upper() for v in (dataset.get("ImageType") or [])]
        if "LOCALIZER" in image_type or "SCOUT" in image_type:
            return out("localizer image")
    age = _age_years(meta.patient_age)
    if age is not None and age < ADULT_YEARS:
        return out(f"paediatric (under {ADULT_YEARS} years)")
    return None


def header_only(path: str | Path) -> ScopeVerdict | None:
    """The header's verdict on a file without reading its pixels: None for a file that is not
    DICOM, whose header does not parse, or whose header raises no objection."""
    try:
        with open(path, "rb") as f:
            if sniff_format(f.read(256)) != "DICOM":
                return None
        return header_verdict(read_dicom_header(path))
    except (OSError, ImageReadError):
        return None


# --------------------------------------------------------------------------- pixels


@functools.lru_cache(maxsize=16)
def _sample_indices(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.linspace(0, n - 1, _SAMPLE_SIDE).astype(np.intp) for n in shape)


@functools.lru_cache(maxsize=1)
def _block_mean() -> np.ndarray:
    """(LAYOUT_SIDE, _SAMPLE_SIDE) averaging matrix: two small products beat a 4-D reshape-mean."""
    k = _SAMPLE_SIDE // LAYOUT_SIDE
    return np.kron(np.eye(LAYOUT_SIDE, dtype=np.float32), np.full((1, k), 1.0 / k, np.float32))


def layout_vector(pixels: np.ndarray, value_range: tuple[float, float]) -> np.ndarray | None:
    """The image's layout: a :data:`LAYOUT_SIDE`² grey thumbnail (row-major), standardised to
    mean 0 and standard deviation 1; None when the image has (almost) no contrast.

    Sampled on a :data:`_SAMPLE_SIDE`² grid (indices repeat for a smaller image) and
    block-averaged, so its cost does not grow with the image (0.1–0.2 ms for any size).
    """
    p = np.asarray(pixels)
    if p.ndim != 2 or p.size == 0:
        return None
    rows, cols = _sample_indices(p.shape)
    block = _block_mean()
    thumb = (block @ p[np.ix_(rows, cols)] @ block.T).astype(np.float64)
    lo, hi = value_range
    sd = thumb.std()
    if not (hi > lo) or not math.isfinite(sd) or sd <= 1e-3 * (hi - lo):
        return None
    return ((thumb - thumb.mean()) / sd).reshape(-1)


def _variants(v: np.ndarray) -> dict[str, np.ndarray]:
    """The layout as it would be if the image were inverted or rotated back (for the reason)."""
    t = v.reshape(LAYOUT_SIDE, LAYOUT_SIDE)
    return {
        "image looks inverted (negative)": -v,
        "image looks rotated by 180°": np.rot90(t, 2).reshape(-1),
        # turning it back counter-clockwise restores an image that was turned clockwise
        "image looks rotated by 90° (clockwise)": np.rot90(t, 1).reshape(-1),
        "image looks rotated by 90° (counter-clockwise)": np.rot90(t, -1).reshape(-1),
    }


@dataclass(frozen=True)
class _Mahalanobis:
    """``‖(x − mean) · projection − center‖``: PCA projection and Cholesky factor of the shrunk
    precision folded into one matrix, so scoring is one product."""

    mean: np.ndarray
    projection: np.ndarray
    center: np.ndarray

    def __call__(self, x: np.ndarray) -> float:
        z = (np.asarray(x, dtype=np.float64) - self.mean) @ self.projection - self.center
        return float(np.sqrt(z @ z))


_TENSORS = ("mean", "projection", "center")


@dataclass(frozen=True)
class ScopeModel:
    """The pixel side of the scope check; see the module docstring. ``thresholds``: distance
    limits ``{"features": t, "layout": t}`` from the card."""

    features: _Mahalanobis
    layout: _Mahalanobis
    thresholds: dict[str, float]

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], thresholds: dict[str, float]) -> ScopeModel:
        """Build from ``{"features.mean": ..., "layout.projection": ..., ...}`` (float arrays);
        ValueError naming what is missing, misshapen or not finite."""
        parts = {}
        for part in ("features", "layout"):
            t = {k: np.asarray(arrays.get(f"{part}.{k}"), dtype=np.float64) for k in _TENSORS}
            if any(a.ndim == 0 for a in t.values()):
                raise ValueError(f"scope parameters lack {part}.mean/projection/center")
            n, k = t["projection"].shape if t["projection"].ndim == 2 else (-1, -1)
            if t["mean"].shape != (n,) or t["center"].shape != (k,):
                raise ValueError(f"scope parameters for {part} have inconsistent shapes")
            if not all(np.isfinite(a).all() for a in t.values()):
                raise ValueError(f"scope parameters for {part} are not all finite")
            parts[part] = _Mahalanobis(**t)
        if parts["layout"].mean.shape != (LAYOUT_SIDE * LAYOUT_SIDE,):
            raise ValueError(f"scope layout parameters are not for a {LAYOUT_SIDE}×{LAYOUT_SIDE} thumbnail")
        th = {}
        for part in ("features", "layout"):
            v = thresholds.get(part) if isinstance(thresholds, dict) else None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"scope threshold for {part} must be a positive number, not {v!r}")
            th[part] = float(v)
        return cls(parts["features"], parts["layout"], th)

    def arrays(self) -> dict[str, np.ndarray]:
        """The tensors to store (float32), named as :meth:`from_arrays` reads them."""
        return {
            f"{part}.{k}": np.ascontiguousarray(getattr(getattr(self, part), k), dtype=np.float32)
            for part in ("features", "layout")
            for k in _TENSORS
        }

    def distances(self, features: np.ndarray, layout: np.ndarray | None) -> dict[str, float]:
        """Raw distances (``layout`` is inf for a blank image)."""
        return {
            "features": self.features(np.asarray(features).reshape(-1)),
            "layout": math.inf if layout is None else self.layout(layout),
        }

    def verdict(self, features: np.ndarray, layout: np.ndarray | None) -> ScopeVerdict:
        """The pixel verdict from the pooled features and :func:`layout_vector`."""
        if features.shape[-1] != self.features.mean.shape[0]:
            raise ValueError(
                f"scope model expects {self.features.mean.shape[0]} features, got {features.shape[-1]}"
            )
        d = self.distances(features, layout)
        if layout is None:
            return ScopeVerdict(False, REASON_EMPTY, "pixels", None, 1.0)
        ratio = {k: d[k] / self.thresholds[k] for k in d}
        score = max(ratio.values())
        if not math.isfinite(score):
            return ScopeVerdict(False, REASON_FAR, "pixels", None, 1.0)
        if score <= 1.0:
            return ScopeVerdict(True, None, "pixels", score, 1.0)
        if ratio["layout"] <= 1.0:
            return ScopeVerdict(False, REASON_FAR, "pixels", score, 1.0)
        # Chest-like features with a layout that passes once turned back: a chest film stored
        # inverted or rotated. Far features too (a photo that happens to match): not a chest film.
        if ratio["features"] <= 1.0:
            for reason, v in _variants(layout).items():
                if self.layout(v) <= self.thresholds["layout"]:
                    return ScopeVerdict(False, reason, "pixels", score, 1.0)
        return ScopeVerdict(False, REASON_LAYOUT, "pixels", score, 1.0)


def check(image: LoadedImage, features: np.ndarray | None, model: ScopeModel | None) -> ScopeVerdict:
    """The scope verdict for an image and the pooled features the engine computed for it: the
    header first (DICOM), then the pixels when ``model`` and ``features`` are given."""
    meta = getattr(image, "metadata", None)  # duck-typed: the viewer model's tests hand it stand-ins
    header = header_verdict(meta, getattr(image, "dataset", None)) if meta is not None else None
    pixels = None
    if model is not None and features is not None:
        pixels = model.verdict(np.asarray(features), layout_vector(image.pixels, image.value_range))
    if header is not None:  # the header's reason, with the pixels' score for those who want it
        return header if pixels is None else replace(header, ood_score=pixels.ood_score, threshold=1.0)
    return pixels if pixels is not None else ScopeVerdict(True, None, "none")


# --------------------------------------------------------------------------- loading

_cache: dict[tuple, ScopeModel] = {}
_cache_lock = threading.Lock()
_reported: set[str] = set()  # load failures already logged


def load_scope(card, card_path: str | Path) -> ScopeModel | None:
    """The card's scope model (verified by its SHA-256, cached per file, hash and modification), or
    None when the card has no scope section. Raises :class:`ModelLoadError` naming the file when it
    does not load."""
    section = card.scope
    if not section:
        return None
    path = Path(card_path).parent / section["file"]
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelLoadError(path, f"scope parameters cannot be read: {exc.strerror or exc}") from None
    key = (str(path), section["sha256"], st.st_mtime_ns, st.st_size)  # a changed file is verified again
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        data = verified_bytes(path, section["sha256"], MAX_SCOPE_BYTES, "scope parameters")
        try:
            model = ScopeModel.from_arrays(load_safetensors(data), section.get("thresholds"))
        except Exception as exc:  # safetensors' own errors, or ours: this file's failure
            raise ModelLoadError(path, f"scope parameters do not load: {exc}") from None
        _cache[key] = model
        return model


def scope_of_engine(engine) -> ScopeModel | None:
    """The scope model of an engine's card, or None (no card file, no scope section, or a file
    that does not load: logged once per file, the header check still applies)."""
    card_path, card = getattr(engine, "card_path", None), getattr(engine, "card", None)
    if card_path is None or not getattr(card, "scope", None):
        return None
    try:
        return load_scope(engine.card, engine.card_path)
    except ModelLoadError as exc:
        if str(exc) not in _reported:
            _reported.add(str(exc))
            log.error("%s: scope check disabled: %s", engine.name, exc)
        return None
