"""Inference telemetry: a thread-safe bounded buffer of per-inference samples.

Engines append one :class:`InferenceSample` per prediction from their worker thread; the viewer's
panel polls :meth:`Telemetry.since` on a timer (telemetry is core, drawing is Qt).
"""

from __future__ import annotations

import csv
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

DEFAULT_MAXLEN = 1000
_STAGES = ("preprocess", "forward", "heatmap", "total")


@dataclass(frozen=True)
class InferenceSample:
    """One inference: when (``time.monotonic``), which model, stage timings and energy if measured.

    ``energy_mj`` (the marginal energy above the idle baseline) and ``power_w`` (average power over
    the inference) are ``None`` when no meter ran; ``idle_power_w`` is the baseline measured before,
    shown separately; ``energy_method`` names how energy was obtained (sensor name or an estimate)
    and ``is_estimate`` says whether it is modelled.
    """

    t: float
    model_name: str
    timings_ms: Mapping[str, float]
    energy_mj: float | None = None
    power_w: float | None = None
    energy_method: str | None = None
    is_estimate: bool = False
    request_id: int | None = field(default=None, compare=False)
    idle_power_w: float | None = None

    def __post_init__(self):
        if not isinstance(self.timings_ms, MappingProxyType):
            object.__setattr__(self, "timings_ms", MappingProxyType(dict(self.timings_ms)))


class Telemetry:
    """Bounded, thread-safe buffer of :class:`InferenceSample` (oldest dropped first)."""

    def __init__(self, maxlen: int = DEFAULT_MAXLEN):
        self._samples: deque[InferenceSample] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    @property
    def maxlen(self) -> int:
        return self._samples.maxlen or 0

    def append(self, sample: InferenceSample) -> None:
        """Record one sample."""
        with self._lock:
            self._samples.append(sample)

    def snapshot(self) -> list[InferenceSample]:
        """All buffered samples, oldest first (a copy)."""
        with self._lock:
            return list(self._samples)

    def since(self, t: float) -> list[InferenceSample]:
        """Samples recorded strictly after monotonic time ``t``, oldest first."""
        with self._lock:
            return [s for s in self._samples if s.t > t]

    def clear(self) -> None:
        """Drop every sample."""
        with self._lock:
            self._samples.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._samples)

    def to_csv(self, path: str | Path) -> Path:
        """Write the buffered samples to ``path`` as CSV (one row per inference); return the path."""
        path = Path(path)
        write_samples_csv(self.snapshot(), path)
        return path


def write_samples_csv(samples: Sequence[InferenceSample], path: str | Path) -> int:
    """Write ``samples`` to ``path`` as CSV, one row per inference: time, model, request id, each
    stage's milliseconds, energy and power with the method that gave them. Returns the row count."""
    rows = list(samples)
    path = Path(path)
    stages = list(_STAGES)
    for s in rows:
        stages += [k for k in s.timings_ms if k not in stages]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "t",
                "model_name",
                "request_id",
                *[f"{k}_ms" for k in stages],
                "energy_mj",
                "power_w",
                "idle_power_w",
                "energy_method",
                "is_estimate",
            ]
        )
        for s in rows:
            w.writerow(
                [
                    f"{s.t:.6f}",
                    s.model_name,
                    "" if s.request_id is None else s.request_id,
                    *["" if s.timings_ms.get(k) is None else f"{s.timings_ms[k]:.4f}" for k in stages],
                    "" if s.energy_mj is None else f"{s.energy_mj:.6f}",
                    "" if s.power_w is None else f"{s.power_w:.4f}",
                    "" if s.idle_power_w is None else f"{s.idle_power_w:.4f}",
                    s.energy_method or "",
                    int(s.is_estimate),
                ]
            )
    return len(rows)
