"""The audit log: hash chain, rotation, locking, tamper detection, privacy, CSV export, the hooks."""

from __future__ import annotations

import csv
import io
import json
import logging
import multiprocessing
import stat
import sys
from datetime import UTC, datetime
from types import MappingProxyType, SimpleNamespace

import numpy as np
import pytest

from kdviewer.core import audit
from kdviewer.core.audit import GENESIS, AuditLog
from kdviewer.core.findings import FINDING_KEYS
from tests.core import dicom_factory


def fake_prediction(scores=None, model="student"):
    scores = scores or {k: 0.1 * (i + 1) for i, k in enumerate(FINDING_KEYS)}
    thresholds = {k: 0.25 for k in FINDING_KEYS}
    return SimpleNamespace(
        model_name=model,
        architecture="mobilenet_v2",
        weights_sha256="ab" * 32,
        trained=True,
        findings=tuple(FINDING_KEYS),
        scores=MappingProxyType(scores),
        thresholds=MappingProxyType(thresholds),
        positive=MappingProxyType({k: scores[k] >= thresholds[k] for k in scores}),
        cam_method=None,
        timings_ms=MappingProxyType({"total": 12.5}),
        energy=SimpleNamespace(complete=True, marginal_energy_j=0.0123, method="cpu-time estimate"),
    )


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append({"event": "test", "i": i, "score": 0.5})


def lines_of(path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


# -- the chain ---------------------------------------------------------------------------------


def test_lines_are_chained_and_numbered(tmp_path):
    log = AuditLog(tmp_path)
    fill(log, 4)
    raw = lines_of(tmp_path / "audit.jsonl")
    records = [json.loads(r) for r in raw]
    assert [r["seq"] for r in records] == [0, 1, 2, 3]
    assert records[0]["prev"] == GENESIS
    import hashlib

    for before, after in zip(raw[:-1], records[1:], strict=True):
        assert after["prev"] == hashlib.sha256(before).hexdigest()
    result = log.verify()
    assert result.ok and result.lines == 4, result.message()


def test_an_empty_or_missing_log_verifies(tmp_path):
    assert AuditLog(tmp_path / "none").verify().ok


def test_edited_score_is_named(tmp_path):
    log = AuditLog(tmp_path)
    fill(log, 5)
    path = tmp_path / "audit.jsonl"
    raw = lines_of(path)
    raw[2] = raw[2].replace(b'"score":0.5', b'"score":0.9')
    path.write_bytes(b"".join(raw))
    result = log.verify()
    assert not result.ok
    assert (result.file, result.line) == ("audit.jsonl", 3)
    assert "changed" in result.problem


def test_edited_last_line_is_caught_by_the_head(tmp_path):
    log = AuditLog(tmp_path)
    fill(log, 3)
    path = tmp_path / "audit.jsonl"
    raw = lines_of(path)
    raw[-1] = raw[-1].replace(b'"score":0.5', b'"score":0.1')
    path.write_bytes(b"".join(raw))
    result = log.verify()
    assert not result.ok and result.line == 3


def test_deleted_line_is_named(tmp_path):
    log = AuditLog(tmp_path)
    fill(log, 5)
    path = tmp_path / "audit.jsonl"
    raw = lines_of(path)
    del raw[1]
    path.write_bytes(b"".join(raw))
    result = log.verify()
    assert not result.ok and result.line == 2
    assert "sequence number 2 where 1" in result.problem


def test_swapped_lines_are_named(tmp_path):
    log = AuditLog(tmp_path)
    fill(log, 5)
    path = tmp_path / "audit.jsonl"
    raw = lines_of(path)
    raw[1], raw[2] = raw[2], raw[1]
    path.write_bytes(b"".join(raw))
    result = log.verify()
    assert not result.ok and result.line == 2


def test_truncation_is_caught(tmp_path):
    log = AuditLog(tmp_path)
    fill(log, 5)
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"".join(lines_of(path)[:3]))
    result = log.verify()
    assert not result.ok and "removed" in result.problem
    # A partial last line (cut mid-line) is named too.
    path.write_bytes(b"".join(lines_of(path))[:-10])
    result = log.verify()
    assert not result.ok and result.line == 3 and "incomplete" in result.problem


def test_an_append_after_truncation_keeps_the_break_visible(tmp_path):
    log = AuditLog(tmp_path)
    fill(log, 5)
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"".join(lines_of(path)[:3]))
    fill(log, 1)
    assert not log.verify().ok


def test_a_partial_last_line_stays_visible_after_more_appends(tmp_path):
    log = AuditLog(tmp_path)
    fill(log, 3)
    path = tmp_path / "audit.jsonl"
    path.write_bytes(path.read_bytes()[:-20])  # a write cut short (a crash, a full disk)
    fill(log, 2)
    result = log.verify()
    assert not result.ok and result.line == 3
    assert [e["i"] for e in log.entries()] == [0, 1, 0, 1]  # the new lines are whole


def test_deleted_head_is_caught(tmp_path):
    log = AuditLog(tmp_path)
    fill(log, 2)
    (tmp_path / "head.json").unlink()
    result = log.verify()
    assert not result.ok and "head.json" in result.problem


def test_crash_between_line_and_head_is_not_tampering(tmp_path):
    log = AuditLog(tmp_path)
    fill(log, 2)
    head = (tmp_path / "head.json").read_bytes()
    fill(log, 1)
    (tmp_path / "head.json").write_bytes(head)  # as if the process died before updating it
    fill(log, 1)
    result = log.verify()
    assert result.ok and result.lines == 4, result.message()


# -- rotation ----------------------------------------------------------------------------------


def test_rotation_keeps_the_chain(tmp_path):
    log = AuditLog(tmp_path, max_bytes=600)
    fill(log, 12)
    files = log.files()
    assert len(files) >= 3 and files[-1].name == "audit.jsonl"
    assert [f.name for f in files[:2]] == ["audit-000001.jsonl", "audit-000002.jsonl"]
    assert all(f.stat().st_size <= 600 for f in files)
    first_of_second = json.loads(lines_of(files[1])[0])
    import hashlib

    assert first_of_second["prev"] == hashlib.sha256(lines_of(files[0])[-1]).hexdigest()
    result = log.verify()
    assert result.ok and result.lines == 12, result.message()


def test_dropped_rotated_file_is_caught(tmp_path):
    log = AuditLog(tmp_path, max_bytes=600)
    fill(log, 12)
    files = log.files()
    files[1].unlink()  # a middle file
    result = log.verify()
    assert not result.ok and result.file == files[2].name and result.line == 1


def test_dropped_oldest_file_is_caught(tmp_path):
    log = AuditLog(tmp_path, max_bytes=600)
    fill(log, 12)
    log.files()[0].unlink()
    result = log.verify()
    assert not result.ok and "removed" in result.problem


# -- locking, privacy --------------------------------------------------------------------------


def _append_many(folder: str, tag: int, n: int) -> None:
    log = AuditLog(folder, max_bytes=4000)
    for i in range(n):
        log.append({"event": "test", "writer": tag, "i": i, "pad": "x" * 200})


def test_two_processes_never_interleave(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), tag, 40)) for tag in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    result = AuditLog(tmp_path).verify()
    assert result.ok and result.lines == 80, result.message()


def test_salt_is_private_and_subjects_hide_identifiers(tmp_path):
    log = AuditLog(tmp_path)
    image = SimpleNamespace(metadata=SimpleNamespace(sop_instance_uid="1.2.3.4.5"), path="/x/DOE^JOHN.dcm")
    digest, kind = log.subject(image)
    assert kind == "sop_instance_uid" and len(digest) == 64
    assert stat.S_IMODE((tmp_path / "salt").stat().st_mode) == 0o600
    # Another installation (another salt) gives another digest: not a plain hash of the UID.
    assert AuditLog(tmp_path / "other").subject(image)[0] != digest
    log.append(audit.inference_record(fake_prediction(), subject=digest, subject_kind=kind))
    text = (tmp_path / "audit.jsonl").read_text()
    assert "1.2.3.4.5" not in text and "DOE" not in text


def test_file_content_subject_is_stable_and_pixels_are_the_fallback(tmp_path):
    log = AuditLog(tmp_path / "log")
    f = tmp_path / "Smith_Jane.png"
    f.write_bytes(b"not really a png" * 100)
    image = SimpleNamespace(metadata=SimpleNamespace(sop_instance_uid=None), path=str(f))
    d1, kind = log.subject(image)
    assert kind == "file_content" and d1 == AuditLog(tmp_path / "log").subject(None, f)[0]
    f.write_bytes(b"other bytes")
    assert log.subject(image)[0] != d1
    gone = SimpleNamespace(
        metadata=None, path=str(tmp_path / "gone.png"), pixels=np.zeros((4, 5), np.float32)
    )
    assert log.subject(gone)[1] == "pixels"


# -- records, hooks ----------------------------------------------------------------------------


def test_record_inference_writes_scores_and_models(tmp_path):
    log = AuditLog(tmp_path)
    engine = SimpleNamespace(runtime_name="onnxruntime")
    pred = fake_prediction()
    assert audit.record_inference(
        pred,
        engine=engine,
        image=SimpleNamespace(metadata=SimpleNamespace(sop_instance_uid="9.9"), path="x"),
        source="test",
        log_=log,
    )
    rec = next(log.entries())
    assert rec["event"] == "inference" and rec["model"] == "student"
    assert rec["weights_sha256"] == "ab" * 32 and rec["runtime"] == "onnxruntime"
    assert rec["precision"] == "float32"
    assert rec["findings"][FINDING_KEYS[0]] == {"score": 0.1, "threshold": 0.25, "positive": False}
    assert rec["findings"][FINDING_KEYS[4]]["positive"] is True
    assert rec["energy_mj"] == pytest.approx(12.3) and rec["latency_ms"] == 12.5


def test_an_audit_failure_never_raises(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING, logger="kdviewer.core.audit"):
        ok = audit.record_inference(
            fake_prediction(), image=None, path="/secret/DOE^JOHN.dcm", log_=AuditLog(blocker / "audit")
        )
    assert ok is False
    assert "could not record" in caplog.text and "DOE" not in caplog.text


def test_record_export_hashes_the_output_not_its_name(tmp_path):
    log = AuditLog(tmp_path / "log")
    out = tmp_path / "Report_DOE_JOHN.pdf"
    out.write_bytes(b"%PDF-1.4 fake")
    assert audit.record_export("report-pdf", subjects=["d" * 64], output=out, log_=log)
    rec = next(log.entries())
    import hashlib

    assert rec["output_sha256"] == hashlib.sha256(b"%PDF-1.4 fake").hexdigest()
    assert "DOE" not in (tmp_path / "log" / "audit.jsonl").read_text()


def test_csv_export_since(tmp_path):
    log = AuditLog(tmp_path)
    log.append(audit.inference_record(fake_prediction(), subject="s" * 64, subject_kind="pixels"))
    raw = lines_of(tmp_path / "audit.jsonl")
    assert len(raw) == 1
    future = datetime(2999, 1, 1, tzinfo=UTC)
    assert list(log.entries(future)) == []
    buf = io.StringIO()
    assert audit.write_csv(log.entries(datetime(2000, 1, 1, tzinfo=UTC)), buf) == 1
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert rows[0]["model"] == "student" and float(rows[0][f"{FINDING_KEYS[1]}_score"]) == pytest.approx(0.2)


def test_cli_audit_verify_and_export(tmp_path, capsys, monkeypatch):
    from kdviewer.cli import main

    monkeypatch.setenv("KDVIEWER_AUDIT_DIR", str(tmp_path / "log"))
    log = AuditLog(tmp_path / "log")
    fill(log, 3)
    assert main(["audit", "verify"]) == 0
    out = tmp_path / "out.csv"
    assert main(["audit", "export", "--since", "2000-01-01", "-o", str(out)]) == 0
    assert len(list(csv.DictReader(out.open(newline="")))) == 3
    path = tmp_path / "log" / "audit.jsonl"
    raw = lines_of(path)
    path.write_bytes(raw[0] + raw[2])
    capsys.readouterr()
    assert main(["audit", "verify"]) == 1
    assert "audit.jsonl line 2" in capsys.readouterr().err
    assert main(["audit", "export", "-o", str(out)]) == 1
    with pytest.raises(SystemExit):
        main(["audit", "export", "--since", "yesterday"])


def test_predict_audits_each_inference_without_identifiers(tmp_path, monkeypatch):
    """``kdviewer predict`` on a DICOM whose name fields are distinctive: one line per model,
    the salted UID digest, never the name, the UID or the file name."""
    from kdviewer.cli import main

    monkeypatch.setenv("KDVIEWER_AUDIT_DIR", str(tmp_path / "log"))
    ds = dicom_factory.make_dataset(dicom_factory.ramp(256, 256))
    ds.PatientName = "Zyxwvut^Qrstuv"
    path = tmp_path / "Zyxwvut_Qrstuv.dcm"
    dicom_factory.write(ds, path)
    assert main(["predict", str(path), "--teacher", "-o", str(tmp_path / "out.json")]) == 0
    log = AuditLog(tmp_path / "log")
    records = list(log.entries())
    assert [r["model"] for r in records] == ["student", "teacher"]
    assert all(r["subject_kind"] == "sop_instance_uid" for r in records)
    assert records[0]["subject"] == records[1]["subject"]
    printed = json.loads((tmp_path / "out.json").read_text())
    assert records[0]["weights_sha256"] == printed[0]["weights_sha256"]
    assert records[0]["findings"][FINDING_KEYS[0]]["score"] == pytest.approx(
        printed[0]["findings"][FINDING_KEYS[0]]["score"], abs=1e-6
    )
    text = "".join(p.read_text() for p in log.files())
    assert "Zyxwvut" not in text and str(ds.SOPInstanceUID) not in text
    assert log.verify().ok


def test_default_folder_is_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("KDVIEWER_AUDIT_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if not sys.platform.startswith("linux"):
        pytest.skip("XDG_DATA_HOME applies on Linux")
    assert audit.audit_dir() == tmp_path / "kdviewer" / "audit"


def test_dicom_node_audits_what_it_scores(tmp_path, monkeypatch):
    """``kdviewer listen`` scores each arrival: one audit line, named by the salted UID digest."""
    from kdviewer.core.engine import load_engine
    from kdviewer.net import results
    from kdviewer.net.arrivals import ArrivalScorer
    from kdviewer.net.store import ReceiveStore

    monkeypatch.setenv("KDVIEWER_AUDIT_DIR", str(tmp_path / "log"))
    ds = dicom_factory.make_dataset(
        dicom_factory.ramp(200, 180, 0, 4095), bits_stored=12, PatientName="Zyxwvut^Node"
    )
    store = ReceiveStore(tmp_path / "store", max_bytes=1 << 28, min_free_bytes=0)
    path = store.put(ds.StudyInstanceUID, ds.SOPInstanceUID, results.encode(ds)).path
    ArrivalScorer(store, load_engine("student")).process(path)
    log = AuditLog(tmp_path / "log")
    (record,) = list(log.entries())
    assert record["source"] == "listen" and record["subject_kind"] == "sop_instance_uid"
    assert "Zyxwvut" not in (tmp_path / "log" / "audit.jsonl").read_text() and log.verify().ok
