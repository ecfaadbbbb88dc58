"""The record of one image scored by one model: what ``kdviewer predict`` writes, the DICOM node
stores beside each arrival and the report prints, built in one place so the three agree."""

from __future__ import annotations

import math
import os
from typing import Any


def display_path(path: str | os.PathLike) -> str:
    """A file name as written to records and messages: always valid UTF-8. Bytes of a name that
    are not UTF-8 (kept by Python as lone surrogates) are written as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _energy_mj(energy) -> float | None:
    """Marginal energy in mJ, or None where the meter had no valid reading for the window."""
    if energy is None or not getattr(energy, "complete", True):
        return None
    joules = energy.marginal_energy_j
    return None if joules is None or not math.isfinite(joules) else round(joules * 1e3, 4)


def _idle_w(energy) -> float | None:
    """The idle baseline the marginal energy was measured against (W), shown beside it."""
    value = getattr(energy, "idle_power_w", None)
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def _finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"non-finite {what} ({value})")
    return value


def prediction_record(path: str | os.PathLike, pred) -> dict[str, Any]:
    """One image scored by one model (a :class:`kdviewer.core.engine.Prediction`) as a JSON-ready
    dict; ValueError if any figure is not a finite number."""
    energy = pred.energy
    return {
        "file": display_path(path),
        "model": pred.model_name,
        "architecture": pred.architecture,
        "weights_sha256": pred.weights_sha256,
        "trained": pred.trained,
        "precision": pred.precision,
        "latency_ms": round(_finite(pred.timings_ms["total"], "latency"), 3),
        "energy_mj": _energy_mj(energy),
        "idle_power_w": _idle_w(energy),
        "energy_is_estimate": None if energy is None else bool(energy.is_estimate),
        "energy_method": None if energy is None else energy.method,
        "findings": {
            k: {
                "score": round(_finite(pred.scores[k], f"score for {k}"), 6),
                "threshold": _finite(pred.thresholds[k], f"threshold for {k}"),
                "positive": bool(pred.positive[k]),
            }
            for k in pred.findings
        },
        "error": None,
    }


def error_record(path: str | os.PathLike, model: str | None, reason: str, scope=None) -> dict[str, Any]:
    """The record of an image that could not be scored: the file, the model (None where no model
    was reached) and the reason; ``scope`` (a verdict) where the header alone refused it."""
    record = {"file": display_path(path), "model": model, "error": reason}
    if scope is not None:  # the header alone refused it: say so even though the pixels did not decode
        record["scope"] = scope.as_dict()
    return record
