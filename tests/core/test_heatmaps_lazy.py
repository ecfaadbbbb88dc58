"""Heat maps are upsampled to full size only when read, never to answer a membership test."""

from __future__ import annotations

import numpy as np

from kdviewer.core import engine
from kdviewer.core.engine import Heatmaps


def test_membership_does_not_upsample(monkeypatch):
    calls = []
    real = engine.upsample
    monkeypatch.setattr(engine, "upsample", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    maps = Heatmaps(["edema", "cardiomegaly"], np.random.default_rng(0).random((2, 7, 7)), (1841, 1955))
    assert "edema" in maps and "atelectasis" not in maps
    assert calls == []  # the viewer asks this on the GUI thread for every cached prediction
    assert maps["edema"].shape == (1841, 1955) and calls == [(1841, 1955)]
    assert maps["edema"] is maps["edema"] and len(calls) == 1  # read once, then cached
