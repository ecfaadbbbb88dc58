"""File menu exports through the real window: the report of the study on screen (from the scores
shown, de-identified), the view as PNG and on the clipboard, the study list as CSV; all audited."""

from __future__ import annotations

import csv

import numpy as np
import pypdf
from PIL import Image
from PySide6.QtGui import QGuiApplication

from kdviewer.core.audit import AuditLog
from kdviewer.core.findings import FINDING_KEYS
from tests.core import dicom_factory
from tests.qt.conftest import write_png

LONG = 60000


def test_report_view_and_study_list_exports(make_window, qtbot, tmp_path):
    folder = tmp_path / "studies"
    folder.mkdir()
    _, xx = np.mgrid[0:200, 0:180]
    ds = dicom_factory.make_dataset(
        (1500 + 900 * np.sin(xx / 17.0)).astype(np.uint16),
        bits_stored=12,
        PatientName="Zyxwvut^Qrstuv",
        PatientID="PID8675309",
    )
    dicom = dicom_factory.write(ds, folder / "a_patient.dcm")
    other = write_png(folder / "b.png", (40, 36), 1)
    w = make_window()
    with qtbot.waitSignal(w.study_list_scored, timeout=LONG):
        w.start([str(folder)])
    qtbot.waitUntil(w.is_view_complete, timeout=LONG)
    assert w.current_path == str(dicom)
    inferences = sum(e["event"] == "inference" for e in AuditLog().entries())

    pdf = tmp_path / "report.pdf"
    with qtbot.waitSignal(w.exports.report_written, timeout=LONG):
        w.exports.write_report(str(pdf))
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(str(pdf)).pages)
    student = w.prediction("student")
    for k in FINDING_KEYS:
        assert f"{student.scores[k]:.4f}" in text
    assert student.weights_sha256 in text.replace("\n", "")
    assert "RESEARCH USE ONLY" in text
    assert "Zyxwvut" not in text and "PID8675309" not in text and "a_patient" not in text

    png = tmp_path / "view.png"
    assert w.exports.write_view_png(str(png))
    shot = Image.open(png)
    assert shot.size[0] > 50 and np.asarray(shot.convert("L")).std() > 0  # the image, not a blank
    w.exports.copy_view()
    assert not QGuiApplication.clipboard().pixmap().isNull()

    out = tmp_path / "list.csv"
    assert w.exports.write_study_list_csv(str(out))
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert [r["file"] for r in rows] == w.model.worklist() == [str(dicom), other]
    for r in rows:
        pred = w.model.list_scores[r["file"]]
        assert float(r[f"student_{FINDING_KEYS[1]}_score"]) == round(pred.scores[FINDING_KEYS[1]], 6)
    assert rows[0]["read"] == "True" and rows[1]["read"] == "False"

    entries = list(AuditLog().entries())
    kinds = [e["export_kind"] for e in entries if e["event"] == "export"]
    assert kinds == ["report-pdf", "view-png", "view-clipboard", "study-list-csv"]
    assert sum(e["event"] == "inference" for e in entries) == inferences  # exports run no model
    assert AuditLog().verify().ok
