"""File > Receive over DICOM: images sent to the viewer's listener appear in the study list, are
scored in the background, and the image on screen stays where it was."""

from __future__ import annotations

from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ComputedRadiographyImageStorage

from tests.core.dicom_factory import make_dataset, ramp
from tests.qt.conftest import write_png


def _send(port: int, ds) -> int:
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ComputedRadiographyImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="KDVIEWER")
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def test_arrivals_join_the_study_list_and_are_scored(
    make_window, qtbot, tmp_path, recorded_warnings, monkeypatch
):
    monkeypatch.setenv("KDVIEWER_DICOM_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("KDVIEWER_DICOM_PORT", "0")  # any free port
    shown = write_png(tmp_path / "open.png")
    w = make_window()
    with qtbot.waitSignal(w.view_ready, timeout=60_000):
        w.start([shown])
    file_menu = w.menuBar().actions()[0].menu()
    assert w.dicom_receiver.action in file_menu.actions()
    w.dicom_receiver.action.trigger()  # File > Receive over DICOM
    assert w.dicom_receiver.running
    assert "Receiving over DICOM as KDVIEWER on 127.0.0.1" in w.statusBar().currentMessage()
    _, port = w.dicom_receiver.address
    ds = make_dataset(
        ramp(256, 240, 0, 4095),
        bits_stored=12,
        StudyInstanceUID=generate_uid(),
        SeriesInstanceUID=generate_uid(),
    )
    with qtbot.waitSignal(w.dicom_receiver.arrived, timeout=30_000) as arrival:
        assert _send(port, ds) == 0
    path = arrival.args[0]
    assert path == str(tmp_path / "store" / ds.StudyInstanceUID / f"{ds.SOPInstanceUID}.dcm")
    qtbot.waitUntil(lambda: path in w.study_list.paths(), timeout=10_000)
    assert w.current_path == shown  # the image on screen stays
    qtbot.waitUntil(lambda: path in w.model.list_scores, timeout=60_000)  # scored in the background
    w.dicom_receiver.action.trigger()  # and again: stopped
    assert not w.dicom_receiver.running
    assert recorded_warnings == []


def test_a_busy_port_is_reported_not_raised(make_window, qtbot, tmp_path):
    w = make_window()
    first = w.dicom_receiver
    assert first.start(tmp_path / "a", port=0)
    from kdviewer.qt.dicom_node import DicomReceiver

    second = DicomReceiver(w)
    messages = []
    second.state_changed.connect(messages.append)
    assert not second.start(tmp_path / "b", port=first.address[1])
    assert "Cannot receive over DICOM" in messages[-1] and not second.running
    first.stop()
