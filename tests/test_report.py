"""``kdviewer report``: the PDF holds predict's scores and the model hashes, never identifiers unless
asked."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pypdf
import pytest

from kdviewer.cli import main
from kdviewer.core.audit import AuditLog
from kdviewer.core.findings import FINDING_KEYS
from kdviewer.report import _overlay
from tests.core import dicom_factory

IDENTIFIERS = {
    "PatientName": "Zyxwvut^Qrstuv",
    "PatientID": "PID8675309",
    "AccessionNumber": "ACC424242",
    "PatientBirthDate": "19230405",
    "StudyDate": "20240229",
    "InstitutionName": "Quokka General",
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A chest-sized DICOM whose identifiers are distinctive strings, in a file named after the patient."""
    folder = tmp_path_factory.mktemp("report")
    yy, xx = np.mgrid[0:320, 0:288]
    pixels = (2000 + 1500 * np.sin(xx / 23.0) * np.cos(yy / 31.0)).astype(np.uint16)
    ds = dicom_factory.make_dataset(
        pixels, bits_stored=12, modality="DX", ViewPosition="PA", BodyPartExamined="CHEST", **IDENTIFIERS
    )
    path = dicom_factory.write(ds, folder / "Zyxwvut_Qrstuv.dcm")
    uids = [str(ds.SOPInstanceUID), str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)]
    return path, uids


def pdf_text(path) -> str:
    reader = pypdf.PdfReader(str(path))
    meta = " ".join(str(v) for v in (reader.metadata or {}).values())
    return "\n".join(page.extract_text() for page in reader.pages) + "\n" + meta


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def predict_records(path, tmp_path, teacher=True) -> list[dict]:
    out = tmp_path / "predict.json"
    assert main(["predict", str(path), *(["--teacher"] if teacher else []), "-o", str(out)]) == 0
    return json.loads(out.read_text())


def test_report_has_the_scores_and_hashes_and_no_identifiers(study, tmp_path, monkeypatch):
    path, uids = study
    monkeypatch.setenv("KDVIEWER_AUDIT_DIR", str(tmp_path / "audit"))
    out = tmp_path / "report.pdf"
    assert main(["report", str(path), "--teacher", "-o", str(out)]) == 0
    text = pdf_text(out)
    assert "RESEARCH USE ONLY" in text and "not for diagnosis" in text
    records = predict_records(path, tmp_path)
    assert [r["model"] for r in records] == ["student", "teacher"]
    for r in records:
        assert r["weights_sha256"] in squeeze(text)
        for k in FINDING_KEYS:
            assert f"{r['findings'][k]['score']:.4f}" in text
            assert f"{r['findings'][k]['threshold']:.3f}" in text
    assert "Student and teacher disagree on:" in text and "energy method" in text.lower()
    for secret in [*IDENTIFIERS.values(), "Zyxwvut", "Qrstuv", *uids]:
        assert secret not in text and secret not in squeeze(text), secret

    # The audit log holds the four inferences (report's and predict's) and the export, chained.
    log = AuditLog(tmp_path / "audit")
    assert log.verify().ok
    entries = list(log.entries())
    export = [e for e in entries if e["event"] == "export"]
    assert len(export) == 1 and export[0]["export_kind"] == "report-pdf"
    assert export[0]["output_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert export[0]["with_identifiers"] is False
    assert export[0]["subjects"][0][:16] in text
    assert sum(e["event"] == "inference" for e in entries) == 4


def test_with_identifiers_they_are_shown_and_marked(study, tmp_path):
    path, uids = study
    out = tmp_path / "identified.pdf"
    assert main(["report", str(path), "--with-identifiers", "--finding", "Cardiomegaly", "-o", str(out)]) == 0
    text = pdf_text(out)
    assert "IDENTIFIERS INCLUDED" in text
    assert "Zyxwvut^Qrstuv" in text and "PID8675309" in text and "ACC424242" in text
    assert uids[0] in squeeze(text)
    assert "for Cardiomegaly" in text and "its top finding" not in text


def test_a_study_that_fails_gets_its_page_and_exit_1(study, tmp_path):
    path, _ = study
    bad = tmp_path / "Broken_Patient.dcm"
    bad.write_bytes(b"DICM but not really" * 10)
    out = tmp_path / "mixed.pdf"
    assert main(["report", str(path), str(bad), "-o", str(out)]) == 1
    reader = pypdf.PdfReader(str(out))
    assert len(reader.pages) >= 2
    last = reader.pages[-1].extract_text()
    assert "could not be scored" in last and "Broken_Patient" not in last


def test_bad_arguments_exit_2(study, tmp_path, capsys):
    path, _ = study
    assert main(["report", str(path), "--finding", "Fracture", "-o", str(tmp_path / "x.pdf")]) == 2
    assert "unknown finding" in capsys.readouterr().err
    assert main(["report", str(path), "-o", str(tmp_path / "no" / "such" / "dir.pdf")]) == 2


def test_overlay_leaves_weak_activation_see_through():
    grey = np.full((4, 4), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    rgb = _overlay(grey, heat)
    assert rgb.shape == (4, 4, 3)
    assert (rgb[1:, 1:] == 100).all()  # no activation: the image as it is
    assert rgb[0, 0, 0] > 150 and rgb[0, 0, 0] != rgb[0, 0, 2]  # strongest: coloured (inferno's yellow)


def test_scope_check_verdict_is_on_the_page(tmp_path):
    ds = dicom_factory.make_dataset(
        dicom_factory.ramp(256, 240, 0, 4095),
        bits_stored=12,
        modality="DX",
        ViewPosition="LL",
        BodyPartExamined="CHEST",
    )
    path = dicom_factory.write(ds, tmp_path / "lateral.dcm")
    out = tmp_path / "lateral.pdf"
    assert main(["report", str(path), "-o", str(out)]) == 0
    assert "out of scope: lateral view" in pdf_text(out)
