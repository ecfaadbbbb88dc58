"""The C-STORE SCP in-process against pynetdicom and raw-socket peers: what is stored, what is
refused with which status, and that hostile peers leave no partial files and no dead listener."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import ComputedRadiographyImageStorage

from kdviewer.net.listener import CANNOT_UNDERSTAND, DATASET_MISMATCH, OUT_OF_RESOURCES, Listener
from kdviewer.net.results import encode
from kdviewer.net.store import ReceiveStore, is_valid_uid
from tests.core.dicom_factory import make_dataset, ramp
from tests.net.peers import wait_until

AET = "KDVIEWER"


def image(**tags):
    """A small CR image; tags override attributes (PatientName etc.)."""
    uids = {"StudyInstanceUID": generate_uid(), "SeriesInstanceUID": generate_uid()}
    return make_dataset(ramp(64, 60, 0, 4095), bits_stored=12, **{**uids, **tags})


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def node(tmp_path):
    stored: list[Path] = []
    store = ReceiveStore(tmp_path / "store", max_bytes=64 * 1024 * 1024, min_free_bytes=0)
    listener = Listener(store, port=0, ae_title=AET, max_associations=2, on_stored=stored.append)
    _, port = listener.start()
    yield store, port, stored, listener
    listener.stop()


def associate(port: int, *contexts, calling: str = "TESTSCU"):
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    for c in contexts or (ComputedRadiographyImageStorage,):
        ae.add_requested_context(c, ExplicitVRLittleEndian)
    return ae.associate("127.0.0.1", port, ae_title=AET)


def send(port: int, ds) -> int:
    assoc = associate(port, ds.SOPClassUID)
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def test_uids_are_validated_before_becoming_paths():
    assert is_valid_uid("1.2.840.10008.5.1.4.1.1.1")
    for bad in ("../etc", "1.2/3", "1..2", "01.2", "1.2.", "", "1." + "1" * 70, "1.2\x00", None, 5):
        assert not is_valid_uid(bad)
    store = ReceiveStore.__new__(ReceiveStore)
    store.root = Path("/nowhere")
    with pytest.raises(ValueError, match="invalid Study Instance UID"):
        store.path_for("..", "1.2")


def test_stores_atomically_at_study_and_sop_uid_and_duplicates_are_idempotent(node):
    store, port, stored, _ = node
    ds = image()
    assert send(port, ds) == 0
    path = store.root / ds.StudyInstanceUID / f"{ds.SOPInstanceUID}.dcm"
    assert files(store.root) == [path]
    first = path.read_bytes()
    import pydicom

    back = pydicom.dcmread(path)
    assert back.SOPInstanceUID == ds.SOPInstanceUID
    np.testing.assert_array_equal(back.pixel_array, ds.pixel_array)
    assert send(port, ds) == 0  # the same instance again: success, nothing new
    assert files(store.root) == [path] and path.read_bytes() == first
    assert stored == [path]


def test_unsupported_sop_class_is_refused_at_association(node):
    _, port, _, _ = node
    assoc = associate(port, CTImageStorage)
    # Refused either way: the association, or (pynetdicom's way) every presentation context.
    if assoc.is_established:
        assert assoc.accepted_contexts == []
        assert [cx.result for cx in assoc.rejected_contexts] == [0x03]  # abstract syntax not supported
        assoc.release()


def send_file(port: int, path: Path, monkeypatch) -> int:
    """C-STORE a file's bytes as they are (pynetdicom's chunked sending: the Affected SOP UIDs
    and transfer syntax come from its File Meta, the data set is never parsed here)."""
    from pynetdicom import _config

    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    assoc = associate(port)
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(path).Status)
    finally:
        assoc.release()


def raw_file(tmp_path: Path, body: bytes, sop_uid: str | None = None) -> Path:
    """File Meta for a CR image (SOP Instance ``sop_uid``) followed by ``body`` as the data set."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, meta)
    path = tmp_path / f"{generate_uid()}.dcm"
    path.write_bytes(buf.getvalue() + body)
    return path


def _dataset_bytes(ds) -> bytes:
    """The data set alone, Explicit VR Little Endian (what travels in P-DATA)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    return buf.getvalue()


def test_invalid_uids_and_mismatches_are_refused_and_nothing_is_written(node, tmp_path, monkeypatch):
    store, port, stored, _ = node
    traversal = image(StudyInstanceUID="../../escape")
    assert send(port, traversal) == CANNOT_UNDERSTAND
    # A data set whose SOP Instance UID differs from the request's Affected SOP Instance UID.
    mismatched = raw_file(tmp_path, _dataset_bytes(image()), sop_uid=generate_uid())
    assert send_file(port, mismatched, monkeypatch) == DATASET_MISMATCH
    assert files(store.root) == [] and stored == []
    assert not (store.root.parent / "escape").exists()


@pytest.mark.parametrize(
    "body",
    [
        b"\x08\x00\x18\x00UI\xff\x7f" + b"1.2.3",  # a value length far past the end of the data
        b"\x08\x00\x16\x00SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff" * 7,  # a sequence cut short
        bytes(range(256)) * 8,  # noise
    ],
    ids=["overlong", "cut-sequence", "noise"],
)
def test_malformed_dataset_is_refused_and_the_listener_goes_on(node, tmp_path, monkeypatch, body):
    store, port, stored, _ = node
    status = send_file(port, raw_file(tmp_path, body), monkeypatch)
    assert status in (CANNOT_UNDERSTAND, DATASET_MISMATCH)
    assert files(store.root) == [] and stored == []
    assert send(port, image()) == 0


def test_peer_disconnecting_mid_transfer_leaves_no_partial_file(node):
    store, port, stored, _ = node
    earlier = image()
    assert send(port, earlier) == 0
    before = {p: p.read_bytes() for p in files(store.root)}
    big = make_dataset(
        ramp(1024, 1024, 0, 4095), StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid()
    )
    assoc = associate(port)
    req = C_STORE()
    req.MessageID, req.Priority = 1, 2
    req.AffectedSOPClassUID = ComputedRadiographyImageStorage
    req.AffectedSOPInstanceUID = big.SOPInstanceUID
    req.DataSet = io.BytesIO(_dataset_bytes(big))
    msg = C_STORE_RQ()
    msg.primitive_to_message(req)
    pdus = list(msg.encode_msg(assoc.accepted_contexts[0].context_id, 16382))
    assert len(pdus) > 10
    sock = assoc.dul.socket.socket
    for primitive in pdus[: len(pdus) // 2]:  # the command and half the data set's fragments
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        sock.sendall(pdu.encode())
    partial = P_DATA_TF()
    partial.from_primitive(pdus[len(pdus) // 2])
    sock.sendall(partial.encode()[:100])  # and part of one P-DATA-TF
    assoc.dul.socket.close()
    assoc.abort()
    time.sleep(0.5)
    assert send(port, image()) == 0  # the listener goes on
    after = files(store.root)
    assert all(p.read_bytes() == data for p, data in before.items())  # earlier images intact
    assert len(after) == 2 and not any(p.name.startswith(".") or p.suffix == ".part" for p in after)
    assert not any(big.SOPInstanceUID in p.name for p in after)
    assert len(stored) == 2


def test_association_flood_beyond_the_limit_is_refused_and_survived(node):
    store, port, _, _ = node
    held = [associate(port) for _ in range(6)]
    established = [a for a in held if a.is_established]
    assert len(established) == 2  # maximum_associations
    for a in established:
        a.release()

    def stored_one() -> bool:
        assoc = associate(port)
        if not assoc.is_established:
            return False
        try:
            return int(assoc.send_c_store(image()).Status) == 0
        finally:
            assoc.release()

    wait_until(stored_one, 10, "a store after the flood")
    assert len(files(store.root)) == 1


def test_an_image_larger_than_the_cap_aborts_its_association(tmp_path, caplog):
    store = ReceiveStore(tmp_path / "store", max_bytes=1 << 30, min_free_bytes=0)
    listener = Listener(store, port=0, ae_title=AET, max_dataset_bytes=1 << 20)
    _, port = listener.start()
    try:
        big = make_dataset(
            ramp(1024, 1024, 0, 4095), StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid()
        )  # 2 MiB of pixels
        assoc = associate(port)
        with caplog.at_level(logging.ERROR, logger="kdviewer.net"):
            status = assoc.send_c_store(big)
        assert "Status" not in status  # no answer: aborted
        wait_until(lambda: not assoc.is_established, 10, "the association to end")
        assert any("more than 1048576 bytes" in r.getMessage() for r in caplog.records)
        assert send(port, image()) == 0  # small ones still pass, also after the abort
        assert len(files(store.root)) == 1
    finally:
        listener.stop()


def test_store_full_is_refused_with_out_of_resources_and_logged(tmp_path, caplog):
    first = image()
    size = len(encode(first))
    store = ReceiveStore(tmp_path / "store", max_bytes=int(size * 1.5), min_free_bytes=0)
    listener = Listener(store, port=0, ae_title=AET)
    _, port = listener.start()
    try:
        with caplog.at_level(logging.ERROR, logger="kdviewer.net"):
            assert send(port, first) == 0
            assert send(port, image()) == OUT_OF_RESOURCES
        assert any("store full" in r.getMessage() for r in caplog.records)
        assert len(files(store.root)) == 1
    finally:
        listener.stop()


def test_calling_ae_titles_can_be_restricted(tmp_path):
    store = ReceiveStore(tmp_path / "store", max_bytes=1 << 26, min_free_bytes=0)
    listener = Listener(store, port=0, ae_title=AET, allow=["XRAY1"])
    _, port = listener.start()
    try:
        assert not associate(port, calling="INTRUDER").is_established
        assoc = associate(port, calling="XRAY1")
        assert assoc.is_established
        assoc.release()
    finally:
        listener.stop()


def test_no_patient_identifiers_in_the_log(node, caplog):
    _, port, _, _ = node
    ds = image(PatientName="Secret^Person", PatientID="PID-4711")
    with caplog.at_level(logging.DEBUG):
        assert send(port, ds) == 0
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("kdviewer"))
    assert "stored instance" in text
    for value in ("Secret", "PID-4711", ds.StudyInstanceUID, ds.SOPInstanceUID):
        assert value not in text
