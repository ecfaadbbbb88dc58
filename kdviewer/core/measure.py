"""Measurements on a radiograph: pixel spacing and its calibration, lengths, the cardiothoracic ratio.

Spacing follows DICOM PS3.3 (C.7.6.3.1.4 Pixel Spacing, C.8.11.1.1.1 Imager Pixel Spacing, 10.7.1.3
Pixel Spacing Calibration): ``PixelSpacing`` is in the patient when it was calibrated
(``PixelSpacingCalibrationType``) or differs from ``ImagerPixelSpacing``; ``ImagerPixelSpacing`` is at
the detector, so it is divided by ``EstimatedRadiographicMagnificationFactor`` when the file gives
one, and otherwise lengths are at the detector (larger than in the patient) and said to be. Without
any spacing, lengths are in pixels with a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CTR_LIMIT = 0.5  # a cardiothoracic ratio above this on a PA film suggests cardiomegaly


@dataclass(frozen=True)
class Calibration:
    """Millimetres per pixel along rows and columns (None: unknown, lengths in px) and where they
    came from; ``note`` says what the figure means (or why there is none)."""

    row_mm: float | None
    col_mm: float | None
    source: str
    note: str = ""

    @property
    def unit(self) -> str:
        return "px" if self.row_mm is None else "mm"


def _pair(ds, keyword: str) -> tuple[float, float] | None:
    value = ds.get(keyword) if ds is not None else None
    try:
        row, col = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return (row, col) if row > 0 and col > 0 and math.isfinite(row + col) else None


def calibration(image) -> Calibration:
    """How lengths on ``image`` (a LoadedImage) convert to millimetres; see the module docstring."""
    ds = getattr(image, "dataset", None)
    pixel, imager = _pair(ds, "PixelSpacing"), _pair(ds, "ImagerPixelSpacing")
    if pixel is not None:
        kind = str(ds.get("PixelSpacingCalibrationType", "") or "").strip()
        if kind:
            desc = str(ds.get("PixelSpacingCalibrationDescription", "") or "").strip()
            return Calibration(*pixel, "PixelSpacing", f"calibrated ({kind}{': ' + desc if desc else ''})")
        if imager is not None and imager == pixel:
            return Calibration(
                *pixel,
                "PixelSpacing",
                "at the detector (equal to ImagerPixelSpacing): not corrected for magnification",
            )
        return Calibration(*pixel, "PixelSpacing", "in the patient")
    if imager is not None:
        try:
            factor = float(ds.get("EstimatedRadiographicMagnificationFactor"))
        except (TypeError, ValueError):
            factor = math.nan
        if math.isfinite(factor) and factor >= 1.0:
            return Calibration(
                imager[0] / factor,
                imager[1] / factor,
                "ImagerPixelSpacing",
                f"corrected by the estimated magnification {factor:g}",
            )
        return Calibration(
            *imager,
            "ImagerPixelSpacing",
            "at the detector: lengths in the patient are smaller by the radiographic magnification",
        )
    meta = getattr(image, "metadata", None)
    spacing = getattr(meta, "pixel_spacing", None)
    if spacing:
        return Calibration(float(spacing[0]), float(spacing[1]), "pixel spacing", "")
    return Calibration(None, None, "none", "no pixel spacing in the file: lengths in pixels")


def length(p0: tuple[float, float], p1: tuple[float, float], cal: Calibration) -> float:
    """Distance between two (x = column, y = row) points in ``cal.unit``."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    if cal.row_mm is None:
        return math.hypot(dx, dy)
    return math.hypot(dx * cal.col_mm, dy * cal.row_mm)


def angle_degrees(
    a: tuple[float, float], vertex: tuple[float, float], b: tuple[float, float], cal: Calibration
) -> float:
    """The angle at ``vertex`` between the rays to ``a`` and ``b`` (x = column, y = row), in degrees,
    with anisotropic pixels (``row_mm != col_mm``) taken into account."""
    sx, sy = (1.0, 1.0) if cal.row_mm is None else (cal.col_mm, cal.row_mm)
    ux, uy = (a[0] - vertex[0]) * sx, (a[1] - vertex[1]) * sy
    vx, vy = (b[0] - vertex[0]) * sx, (b[1] - vertex[1]) * sy
    if (ux == 0 and uy == 0) or (vx == 0 and vy == 0):
        raise ValueError("an arm of the angle has no length")
    return math.degrees(abs(math.atan2(ux * vy - uy * vx, ux * vx + uy * vy)))


def cardiothoracic_ratio(cardiac_width: float, thoracic_width: float) -> float:
    """Maximal cardiac width over maximal thoracic width (both horizontal, any one unit)."""
    if not (thoracic_width > 0 and cardiac_width >= 0):
        raise ValueError(f"widths must be positive (cardiac {cardiac_width}, thoracic {thoracic_width})")
    return cardiac_width / thoracic_width


def format_length(value: float, cal: Calibration) -> str:
    """``"123.4 mm"``, or ``"512 px"`` without a calibration."""
    return f"{value:.0f} px" if cal.unit == "px" else f"{value:.1f} mm"
