"""The node against a real PACS (Orthanc, started on free loopback ports) and DCMTK: Orthanc
pushes a study to ``kdviewer listen``, which stores and scores it and sends the SR and the
Secondary Capture back; ``kdviewer pacs find/get`` query and retrieve from Orthanc; DCMTK's
storescu and findscu are a second, independent peer."""

from __future__ import annotations

import json
import re
import subprocess

import highdicom as hd
import pydicom
import pytest
from pydicom.uid import CTImageStorage, generate_uid

from kdviewer.cli import main
from kdviewer.core.findings import FINDING_KEYS
from kdviewer.net import results
from tests.core.dicom_factory import make_dataset, ramp
from tests.net.peers import LISTENER_AE, ORTHANC_AE, free_port, start_listener, stop, wait_until

pytestmark = pytest.mark.shared_data

SOURCE = "cxr/pydicomdata_RG1_J2KI.dcm"  # CR, JPEG 2000 (lossy), 1955 x 1841
TO_RETRIEVE = "nih_google_dx/tfio_dicom_00000001_000.dcm"  # DX, Implicit VR Little Endian


def _instances(orthanc, study_id: str) -> list[dict]:
    return orthanc.rest("GET", f"/studies/{study_id}/instances")


@pytest.fixture(scope="module")
def pushed(orthanc, dicom_dir, tmp_path_factory):
    """Orthanc holds SOURCE and pushes its study to a scoring listener that sends results back."""
    orthanc.clear()
    source_path = dicom_dir / SOURCE
    up = orthanc.upload(source_path)
    store = tmp_path_factory.mktemp("received") / "store"
    node = start_listener(
        store,
        orthanc.listener_port,
        "--score",
        "--secondary-capture",
        "--send-to",
        f"127.0.0.1:{orthanc.dicom_port}:{ORTHANC_AE}",
    )
    try:
        job = orthanc.rest(
            "POST", "/modalities/kdviewer/store", {"Resources": [up["ParentStudy"]], "Synchronous": True}
        )
        assert job.get("FailedInstancesCount", 0) == 0, job
        source = pydicom.dcmread(source_path, stop_before_pixels=True)
        stored = store / source.StudyInstanceUID / f"{source.SOPInstanceUID}.dcm"
        wait_until(
            lambda: len(_instances(orthanc, up["ParentStudy"])) == 3,
            90,
            f"the SR and SC in Orthanc; listener log:\n{node.log()}",
        )
        yield source, stored, up["ParentStudy"], node, up["ID"]
    finally:
        stop(node.proc)


def test_pushed_study_is_stored_as_sent_and_scored(pushed, dicom_dir):
    source, stored, _, _, _ = pushed
    assert stored.is_file()
    received = pydicom.dcmread(stored)
    assert received.SOPInstanceUID == source.SOPInstanceUID
    assert received.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.91"  # as stored, not transcoded
    original = pydicom.dcmread(dicom_dir / SOURCE)
    assert received.PixelData == original.PixelData
    record = json.loads(stored.with_name(stored.stem + ".json").read_text())
    assert record["error"] is None and record["model"] == "student" and record["file"] == str(stored)
    assert list(record["findings"]) == list(FINDING_KEYS)
    for f in record["findings"].values():
        assert 0.0 <= f["score"] <= 1.0 and f["positive"] == (f["score"] >= f["threshold"])
    # The same record as `kdviewer predict` makes for that file (latency and energy aside).
    out = stored.parent / "predict.json"
    assert main(["predict", str(stored), "--format", "json", "-o", str(out)]) == 0
    (expected,) = json.loads(out.read_text())
    assert {k: expected[k] for k in ("file", "model", "weights_sha256")} == {
        k: record[k] for k in ("file", "model", "weights_sha256")
    }
    # Scores to within ONNX Runtime's run-to-run float noise (its threads may split the sums differently
    # in two processes); thresholds and flags exactly.
    for key, f in record["findings"].items():
        e = expected["findings"][key]
        assert f["score"] == pytest.approx(e["score"], abs=2e-6)
        assert (f["threshold"], f["positive"]) == (e["threshold"], e["positive"])
    assert not [p for p in stored.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


def _download(orthanc, study_id: str, modality: str) -> pydicom.Dataset:
    for inst in _instances(orthanc, study_id):
        tags = orthanc.rest("GET", f"/instances/{inst['ID']}/simplified-tags")
        if tags.get("Modality") == modality:
            from io import BytesIO

            return pydicom.dcmread(BytesIO(orthanc.rest("GET", f"/instances/{inst['ID']}/file")))
    raise AssertionError(f"no {modality} instance in the study")


def test_sr_arrives_in_orthanc_with_references_and_scores(pushed, orthanc):
    source, stored, study_id, _, _ = pushed
    record = json.loads(stored.with_name(stored.stem + ".json").read_text())
    ds = _download(orthanc, study_id, "SR")
    sr = hd.sr.ComprehensiveSR.from_dataset(ds)
    for kw in ("PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber"):
        assert ds.get(kw) == source.get(kw), kw
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == source.StudyInstanceUID
    series = evidence.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == source.SeriesInstanceUID
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sr.SOPInstanceUID == ds.SOPInstanceUID  # highdicom parses it back
    measured = {}
    positive = {}
    for group in _measurement_groups(ds):
        finding = next(
            i.ConceptCodeSequence[0].CodeValue
            for i in group.ContentSequence
            if i.ConceptNameCodeSequence[0].CodeValue == "121071"
        )
        refs = [i for i in group.ContentSequence if i.ValueType == "IMAGE"]
        assert refs[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        for item in group.ContentSequence:
            code = item.ConceptNameCodeSequence[0].CodeValue
            if item.ValueType == "NUM":
                measured[(finding, code)] = float(item.MeasuredValueSequence[0].NumericValue)
            if code == "positive":
                positive[finding] = item.ConceptCodeSequence[0].CodeValue == "373066001"
    for key, f in record["findings"].items():
        snomed = results.FINDING_CODES[key][0]
        assert measured[(snomed, "score")] == pytest.approx(f["score"], abs=1e-6)
        assert measured[(snomed, "threshold")] == pytest.approx(f["threshold"], abs=1e-9)
        assert positive[snomed] == f["positive"]
    text = " ".join(str(e.value) for e in ds.iterall() if e.VR in ("UT", "LO", "ST", "LT", "SH"))
    assert "research use only" in text and record["weights_sha256"] in text
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"


def _measurement_groups(ds):
    """TID 1501 groups ("Measurement Group", DCM 125007) anywhere in the document tree."""
    found = []

    def walk(items):
        for item in items:
            if item.ValueType == "CONTAINER" and item.ConceptNameCodeSequence[0].CodeValue == "125007":
                found.append(item)
            elif "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(ds.ContentSequence)
    assert len(found) == len(FINDING_KEYS)
    return found


def test_secondary_capture_arrives_with_references_and_a_burnt_in_label(pushed, orthanc):
    source, _, study_id, _, _ = pushed
    sc = _download(orthanc, study_id, "OT")
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    for kw in ("PatientID", "PatientName", "StudyInstanceUID"):
        assert sc.get(kw) == source.get(kw), kw
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert sc.BurnedInAnnotation == "YES" and sc.PhotometricInterpretation == "RGB"
    pixels = sc.pixel_array
    assert pixels.ndim == 3 and pixels.shape[2] == 3
    # The label box: white text on black at the top left; the heat map tints the image red-yellow.
    corner = pixels[: pixels.shape[0] // 40, : pixels.shape[1] // 4]
    assert (corner.max(axis=2) == 0).mean() > 0.5 and (corner.min(axis=2) > 200).any()
    body = pixels[pixels.shape[0] // 2 :].astype(int)
    assert (body[..., 0] - body[..., 2]).max() > 60


def test_results_are_idempotent_when_the_study_is_pushed_again(pushed, orthanc):
    _, stored, study_id, _, instance_id = pushed
    mtime = stored.stat().st_mtime_ns
    job = orthanc.rest(
        "POST", "/modalities/kdviewer/store", {"Resources": [instance_id], "Synchronous": True}
    )
    assert job.get("FailedInstancesCount", 0) == 0
    assert stored.stat().st_mtime_ns == mtime  # the identical instance was left as it was
    assert len(_instances(orthanc, study_id)) == 3


def test_listener_log_has_no_patient_identifiers(pushed):
    source, _, _, node, _ = pushed
    log = node.log()
    assert "stored instance" in log and "scored instance" in log and "sent 2 result(s)" in log
    for value in (str(source.PatientName), source.PatientID, source.StudyInstanceUID, source.SOPInstanceUID):
        if value:
            assert value not in log


def test_pacs_find_and_get_from_orthanc(orthanc, dicom_dir, tmp_path, capsys):
    path = dicom_dir / TO_RETRIEVE
    orthanc.upload(path)
    want = pydicom.dcmread(path, stop_before_pixels=True)
    common = ["--port", str(orthanc.dicom_port), "--ae-title", ORTHANC_AE, "--calling-ae", LISTENER_AE]
    assert main(["pacs", "find", *common, "--modality", "DX", "--json"]) == 0
    studies = json.loads(capsys.readouterr().out)
    assert [s["StudyInstanceUID"] for s in studies] == [want.StudyInstanceUID]
    assert studies[0]["PatientID"] == want.PatientID
    assert main(["pacs", "find", *common, "--patient-id", "no-such-patient", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    store = tmp_path / "got"
    assert main(["pacs", "get", want.StudyInstanceUID, "--store", str(store), *common]) == 0
    got = store / want.StudyInstanceUID / f"{want.SOPInstanceUID}.dcm"
    assert pydicom.dcmread(got).PixelData == pydicom.dcmread(path).PixelData


def test_pacs_get_by_c_move(orthanc, dicom_dir, tmp_path):
    path = dicom_dir / TO_RETRIEVE
    orthanc.upload(path)
    want = pydicom.dcmread(path, stop_before_pixels=True)
    store = tmp_path / "moved"
    assert (
        main(
            [
                "pacs",
                "get",
                want.StudyInstanceUID,
                "--store",
                str(store),
                "--move",
                "--port",
                str(orthanc.dicom_port),
                "--ae-title",
                ORTHANC_AE,
                "--calling-ae",
                "KDMOVE",
                "--listen-port",
                str(orthanc.move_port),
            ]
        )
        == 0
    )
    assert (store / want.StudyInstanceUID / f"{want.SOPInstanceUID}.dcm").is_file()


def test_dcmtk_storescu_stores_and_unsupported_class_is_refused(dcmtk, dicom_dir, tmp_path):
    store = tmp_path / "store"
    port = free_port()
    node = start_listener(store, port)
    try:
        path = dicom_dir / TO_RETRIEVE
        ok = subprocess.run(
            ["storescu", "-aet", "MODALITY", "-aec", LISTENER_AE, "127.0.0.1", str(port), str(path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ok.returncode == 0, ok.stderr
        want = pydicom.dcmread(path, stop_before_pixels=True)
        assert (store / want.StudyInstanceUID / f"{want.SOPInstanceUID}.dcm").is_file()
        ct = make_dataset(
            ramp(32, 32),
            modality="CT",
            sop_class=CTImageStorage,
            StudyInstanceUID=generate_uid(),
            SeriesInstanceUID=generate_uid(),
        )
        ct_path = tmp_path / "ct.dcm"
        ct.save_as(ct_path, enforce_file_format=True)
        refused = subprocess.run(
            ["storescu", "-aec", LISTENER_AE, "127.0.0.1", str(port), str(ct_path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode != 0
        assert re.search(r"No presentation context|No Acceptable Presentation Contexts", refused.stderr), (
            refused.stderr
        )
        assert sorted(p.name for p in store.rglob("*.dcm")) == [f"{want.SOPInstanceUID}.dcm"]
        assert node.proc.poll() is None  # still listening
    finally:
        stop(node.proc)


def test_dcmtk_findscu_sees_the_results_in_orthanc(pushed, orthanc, dcmtk):
    source, _, _, _, _ = pushed
    out = subprocess.run(
        [
            "findscu",
            "-S",
            "-aet",
            LISTENER_AE,
            "-aec",
            ORTHANC_AE,
            "-k",
            "QueryRetrieveLevel=SERIES",
            "-k",
            f"StudyInstanceUID={source.StudyInstanceUID}",
            "-k",
            "Modality",
            "-k",
            "SeriesDescription",
            "127.0.0.1",
            str(orthanc.dicom_port),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    modalities = re.findall(r"\(0008,0060\) CS \[(\w+)\s*\]", out.stderr + out.stdout)
    assert sorted(modalities) == ["CR", "OT", "SR"], out.stderr + out.stdout
    assert "research use only" in out.stderr + out.stdout
