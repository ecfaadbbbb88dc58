"""Ruler and cardiothoracic ratio on the real image view: mm from the DICOM's spacing and its
calibration, px with a warning without one, > 0.5 flagged, kept through zoom, removable, reported."""

from __future__ import annotations

import numpy as np
import pypdf
import pytest
from PySide6.QtCore import QPointF

from kdviewer.core.measure import Calibration, angle_degrees, calibration, cardiothoracic_ratio, length
from tests.core import dicom_factory
from tests.qt.conftest import write_png

LONG = 60000


def dicom(tmp_path, name="chest.dcm", **tags):
    _, xx = np.mgrid[0:200, 0:240]
    ds = dicom_factory.make_dataset(
        (1000 + 800 * np.sin(xx / 13.0)).astype(np.uint16), bits_stored=12, **tags
    )
    return str(dicom_factory.write(ds, tmp_path / name))


def open_one(make_window, qtbot, path):
    w = make_window()
    with qtbot.waitSignal(w.image_shown, timeout=LONG):
        w.start([path])
    return w


def test_ruler_and_ctr_in_mm_survive_zoom_and_go_into_the_report(make_window, qtbot, tmp_path):
    w = open_one(make_window, qtbot, dicom(tmp_path, PixelSpacing=[0.2, 0.25]))
    tools = w.measure
    assert tools.cal.unit == "mm" and tools.cal.source == "PixelSpacing"
    ruler = tools.add_ruler((20, 10), (20, 110))  # 100 rows of 0.2 mm
    assert tools.summaries()[0].startswith("20.0 mm")
    w.image_view.zoom(2.0)
    assert tools.endpoints(ruler.segments[0]) == [(20.0, 10.0), (20.0, 110.0)]  # image coordinates
    # the angle at (50, 50): with 0.25 mm columns and 0.2 mm rows, 38.7° where square pixels give 45°
    tools.add_angle((100, 50), (50, 50), (100, 0))
    assert tools.summaries()[1] == "38.7°"
    tools.clear()
    ruler = tools.add_ruler((20, 10), (20, 110))
    ctr = tools.add_ctr(cardiac=(80, 140, 120), thoracic=(40, 140, 100))  # 60 / 100 columns
    text = tools.summaries()[1]
    assert "CTR 0.60 > 0.5" in text and "cardiac 15.0 mm" in text and "thoracic 25.0 mm" in text
    # moving a handle updates the figures
    cardiac = ctr.segments[0]
    cardiac.movePoint(
        cardiac.getHandles()[1], QPointF(120, 120), coords="parent"
    )  # the right end: x 140 → 120
    assert "CTR 0.40" in tools.summaries()[1] and "> 0.5" not in tools.summaries()[1]

    qtbot.waitUntil(w.is_view_complete, timeout=LONG)
    pdf = tmp_path / "r.pdf"
    with qtbot.waitSignal(w.exports.report_written, timeout=LONG):
        w.exports.write_report(str(pdf))
    report = "\n".join(p.extract_text() for p in pypdf.PdfReader(str(pdf)).pages)
    assert "Measurements: 20.0 mm" in report and "CTR 0.40" in report

    ctr.segments[0].sigRemoveRequested.emit(ctr.segments[0])  # its context menu's "Remove"
    assert len(tools.summaries()) == 1
    w.measure.clear()
    assert tools.summaries() == []


def test_without_spacing_lengths_are_pixels_and_say_so(make_window, qtbot, tmp_path):
    w = open_one(make_window, qtbot, write_png(tmp_path / "plain.png", (120, 100)))
    w.measure.add_ruler((0, 0), (30, 40))
    assert w.measure.summaries() == ["50 px  (no pixel spacing: pixels, not mm)"]
    with qtbot.waitSignal(w.image_shown, timeout=LONG):
        w.open_paths([dicom(tmp_path, ImagerPixelSpacing=[0.1, 0.1])])
    assert w.measure.summaries() == []  # measurements belong to their image


@pytest.mark.parametrize(
    "tags, expected",
    [
        (
            {"PixelSpacing": [0.2, 0.2], "ImagerPixelSpacing": [0.2, 0.2]},
            (0.2, "not corrected for magnification"),
        ),
        ({"PixelSpacing": [0.18, 0.18], "ImagerPixelSpacing": [0.2, 0.2]}, (0.18, "in the patient")),
        (
            {"PixelSpacing": [0.18, 0.18], "PixelSpacingCalibrationType": "GEOMETRY"},
            (0.18, "calibrated (GEOMETRY)"),
        ),
        (
            {"ImagerPixelSpacing": [0.2, 0.2], "EstimatedRadiographicMagnificationFactor": 1.25},
            (0.16, "estimated magnification 1.25"),
        ),
        ({"ImagerPixelSpacing": [0.2, 0.2]}, (0.2, "at the detector")),
    ],
)
def test_calibration_follows_the_standard(tmp_path, tags, expected):
    from kdviewer.core.imageio import read_image

    cal = calibration(read_image(dicom(tmp_path, **tags)))
    assert cal.row_mm == pytest.approx(expected[0]) and expected[1] in cal.note


def test_length_and_ratio():
    cal = Calibration(0.5, 0.25, "PixelSpacing")
    assert length((0, 0), (4, 0), cal) == pytest.approx(1.0) and length((0, 0), (0, 4), cal) == pytest.approx(
        2.0
    )
    assert cardiothoracic_ratio(45, 100) == pytest.approx(0.45)
    assert angle_degrees((1, 0), (0, 0), (0, 1), Calibration(None, None, "none")) == pytest.approx(90.0)
    assert angle_degrees((1, 0), (0, 0), (-1, 0), cal) == pytest.approx(180.0)
    with pytest.raises(ValueError):
        angle_degrees((0, 0), (0, 0), (1, 1), cal)
    with pytest.raises(ValueError):
        cardiothoracic_ratio(10, 0)
