"""File > Query PACS… against a real Orthanc (tests/net/peers.py): the dialog finds a study that
was uploaded to Orthanc, retrieves it by C-GET or C-MOVE into the node's store, and the images
join the study list and are scored in the background, as received images are. A PACS that is
not there, does not answer or rejects the association is reported in the dialog, and the window
goes on working."""

from __future__ import annotations

import logging
import socket

import pydicom
import pytest
from PySide6.QtCore import QCoreApplication, Qt, QThread

from kdviewer.net.config import NodeConfig, PacsConfig
from kdviewer.net.listener import Listener
from kdviewer.net.store import ReceiveStore
from kdviewer.qt import pacs_dialog
from kdviewer.qt.pacs_dialog import COLUMNS, LOADING, PacsDialog
from tests.core.dicom_factory import make_dataset, ramp
from tests.net.peers import LISTENER_AE, MOVE_AE, ORTHANC_AE, free_port
from tests.qt.conftest import write_png
from tests.qt.test_dicom_node import record_scan_threads

PATIENT_NAME = "Kdtest^Alice"
PATIENT_ID = "PID-7734-XQ"


@pytest.fixture
def study(orthanc, tmp_path):
    """One CR image with a recognisable patient in an emptied Orthanc."""
    orthanc.clear()
    ds = make_dataset(
        ramp(256, 240, 0, 4095),
        bits_stored=12,
        PatientName=PATIENT_NAME,
        PatientID=PATIENT_ID,
        StudyDate="20260314",
        StudyDescription="CHEST PA",
        AccessionNumber="ACC991",
    )
    path = tmp_path / "source.dcm"
    ds.save_as(path, enforce_file_format=True)
    orthanc.upload(path)
    return ds


def _open_dialog(w, qtbot) -> PacsDialog:
    w.dicom_receiver.query_action.trigger()  # File > Query PACS…
    dialog = next(d for d in w.dicom_receiver.dialogs if isinstance(d, PacsDialog))
    qtbot.waitUntil(dialog.is_ready, timeout=30_000)  # the network library is loaded on a worker
    return dialog


def _fill(qtbot, dialog: PacsDialog, port: int, ae_title: str = ORTHANC_AE) -> None:
    for edit, text in (
        (dialog.host_edit, "127.0.0.1"),
        (dialog.port_edit, str(port)),
        (dialog.ae_edit, ae_title),
    ):
        edit.clear()
        qtbot.keyClicks(edit, text)


def _row(dialog: PacsDialog, row: int) -> dict[str, str]:
    return {name: dialog.table.item(row, col).text() for col, name in enumerate(COLUMNS)}


def _started_window(make_window, qtbot, tmp_path):
    shown = write_png(tmp_path / "open.png")
    w = make_window()
    with qtbot.waitSignal(w.view_ready, timeout=60_000):
        w.start([shown])
    return w, shown


def _assert_arrived(w, qtbot, path, shown) -> None:
    qtbot.waitUntil(lambda: str(path) in w.study_list.paths(), timeout=10_000)
    qtbot.waitUntil(lambda: str(path) in w.model.list_scores, timeout=60_000)  # scored in the background
    assert w.current_path == shown  # the image on screen stays


def test_the_dialog_opens_at_once_and_loads_the_network_library_on_a_worker(make_window, qtbot, monkeypatch):
    loaded_on_gui_thread = []
    load = pacs_dialog.load_network

    def recording():
        loaded_on_gui_thread.append(QThread.currentThread() is QCoreApplication.instance().thread())
        return load()

    monkeypatch.setattr(pacs_dialog, "load_network", recording)
    w = make_window()
    w.dicom_receiver.query_action.trigger()  # File > Query PACS…
    dialog = next(d for d in w.dicom_receiver.dialogs if isinstance(d, PacsDialog))
    assert dialog.isVisible() and dialog.message.text() == LOADING
    assert not dialog.search_button.isEnabled() and not dialog.retrieve_button.isEnabled()
    dialog.search()  # too early: nothing starts
    assert dialog.job is None
    qtbot.waitUntil(dialog.search_button.isEnabled, timeout=30_000)
    assert loaded_on_gui_thread == [False] and dialog.message.text() == ""


def test_find_and_retrieve_by_c_get(
    make_window, qtbot, tmp_path, settings, orthanc, study, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    scans = record_scan_threads(monkeypatch)
    store = tmp_path / "store"
    settings.dicom_node = NodeConfig(store=str(store))
    w, shown = _started_window(make_window, qtbot, tmp_path)
    dialog = _open_dialog(w, qtbot)
    assert dialog.isVisible() and w.dicom_receiver.query_action in w.menuBar().actions()[0].menu().actions()
    _fill(qtbot, dialog, orthanc.dicom_port)
    qtbot.keyClicks(dialog.patient_name_edit, "KDTEST")  # a prefix: the dialog adds the wildcard
    dialog.modality_combo.setCurrentText("CR")
    with qtbot.waitSignal(dialog.search_done, timeout=30_000) as found:
        qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    assert found.args == [1]
    assert _row(dialog, 0) == {
        "Date": "2026-03-14",
        "Modality": "CR",
        "Description": "CHEST PA",
        "Images": "1",
        "Patient": "Kdtest, Alice",
        "Patient ID": PATIENT_ID,
        "Accession": "ACC991",
    }
    # The PACS is remembered in the viewer's settings.
    assert settings.pacs == PacsConfig(host="127.0.0.1", port=orthanc.dicom_port, ae_title=ORTHANC_AE)

    shown_progress = []
    dialog.progress.valueChanged.connect(lambda v: shown_progress.append((v, dialog.progress.maximum())))
    with qtbot.waitSignal(dialog.retrieve_done, timeout=60_000) as done:
        qtbot.mouseClick(dialog.retrieve_button, Qt.MouseButton.LeftButton)
        assert dialog.progress.isVisible() and dialog.cancel_button.isEnabled()
    assert shown_progress[-1] == (1, 1)  # 1 of 1 images
    assert scans == [False]  # the store was measured once, on the retrieval's thread
    result = done.args[0]
    assert (result.completed, result.failed, result.status) == (1, 0, 0)
    got = store / study.StudyInstanceUID / f"{study.SOPInstanceUID}.dcm"
    assert pydicom.dcmread(got).PixelData == study.PixelData
    assert "retrieved 1 image" in dialog.message.text().lower()
    _assert_arrived(w, qtbot, got, shown)
    assert not w.dicom_receiver.running  # C-GET needs no listener
    # Shown in the dialog, never written to the log.
    assert "PACS query: 1 studies found" in caplog.text
    for value in (PATIENT_ID, "Kdtest", "Alice", "ACC991"):
        assert value not in caplog.text


def test_no_match_is_said_not_failed(make_window, qtbot, tmp_path, orthanc, study):
    w, _ = _started_window(make_window, qtbot, tmp_path)
    dialog = _open_dialog(w, qtbot)
    _fill(qtbot, dialog, orthanc.dicom_port)
    qtbot.keyClicks(dialog.patient_id_edit, "no-such-patient")
    with qtbot.waitSignal(dialog.search_done, timeout=30_000) as found:
        dialog.search()
    assert found.args == [0] and dialog.table.rowCount() == 0
    assert "0 studies found" in dialog.message.text() and not dialog.message.property("error")


def test_retrieve_by_c_move_with_remembered_settings(make_window, qtbot, tmp_path, settings, orthanc, study):
    store = tmp_path / "moved"
    # Orthanc knows KDMOVE at 127.0.0.1:move_port: the node listens there for the transfer.
    settings.dicom_node = NodeConfig(port=orthanc.move_port, store=str(store))
    settings.pacs = PacsConfig(
        host="127.0.0.1", port=orthanc.dicom_port, ae_title=ORTHANC_AE, move_destination=MOVE_AE
    )
    w, shown = _started_window(make_window, qtbot, tmp_path)
    dialog = _open_dialog(w, qtbot)
    assert dialog.move_radio.isChecked() and dialog.move_edit.text() == MOVE_AE
    with qtbot.waitSignal(dialog.search_done, timeout=30_000):
        dialog.search()
    dialog.table.selectRow(0)
    with qtbot.waitSignal(dialog.retrieve_done, timeout=60_000) as done:
        dialog.retrieve()
    assert done.args[0].completed == 1
    got = store / study.StudyInstanceUID / f"{study.SOPInstanceUID}.dcm"
    assert got.is_file()
    _assert_arrived(w, qtbot, got, shown)


def _assert_inline_error(w, qtbot, dialog, *expected: str) -> None:
    with qtbot.waitSignal(dialog.job_failed, timeout=30_000) as failed:
        qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    for text in expected:
        assert text in failed.args[0]
    assert dialog.message.property("error") and expected[0] in dialog.message.text()
    qtbot.waitUntil(lambda: dialog.job is None and dialog.search_button.isEnabled(), timeout=5_000)


def test_unreachable_silent_and_rejecting_peers_are_reported_inline(
    make_window, qtbot, tmp_path, settings, recorded_warnings
):
    w, _ = _started_window(make_window, qtbot, tmp_path)
    dialog = _open_dialog(w, qtbot)

    dialog.host_edit.clear()
    dialog.search()  # nothing to ask: no job starts
    assert dialog.job is None and "Enter the PACS's host" in dialog.message.text()

    _fill(qtbot, dialog, free_port())  # nothing listening there
    _assert_inline_error(w, qtbot, dialog, "nothing listening")

    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        _fill(qtbot, dialog, silent.getsockname()[1])
        dialog.timeout_spin.setValue(1)
        _assert_inline_error(w, qtbot, dialog, "no answer within 1 s")

    # A PACS that does not know this node's AE title rejects the association.
    picky = Listener(ReceiveStore(tmp_path / "picky", max_bytes=2**20), port=0, allow=["SOMEONE"])
    _, port = picky.start()
    try:
        _fill(qtbot, dialog, port, ae_title="PICKY")
        _assert_inline_error(w, qtbot, dialog, "rejected the association", LISTENER_AE)
    finally:
        picky.stop()

    # The window goes on working: another image opens, no modal box was raised.
    other = write_png(tmp_path / "other.png", seed=3)
    with qtbot.waitSignal(w.image_shown, timeout=30_000):
        w.open_paths([other])
    assert recorded_warnings == []


def test_cancel_stops_a_search_that_waits_for_a_silent_peer(make_window, qtbot, tmp_path):
    w, _ = _started_window(make_window, qtbot, tmp_path)
    dialog = _open_dialog(w, qtbot)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        _fill(qtbot, dialog, silent.getsockname()[1])
        dialog.timeout_spin.setValue(600)  # only Cancel can end it within the test's wait
        dialog.search()
        assert dialog.cancel_button.isEnabled() and not dialog.search_button.isEnabled()
        with qtbot.waitSignal(dialog.job.cancelled, timeout=15_000):
            qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert dialog.message.text().startswith("Cancelled")
    qtbot.waitUntil(lambda: dialog.job is None, timeout=5_000)


def test_c_move_to_the_running_listener_arrives_through_it(
    make_window, qtbot, tmp_path, settings, orthanc, study
):
    store = tmp_path / "received"
    settings.dicom_node = NodeConfig(port=orthanc.move_port, store=str(store))
    settings.pacs = PacsConfig(
        host="127.0.0.1", port=orthanc.dicom_port, ae_title=ORTHANC_AE, move_destination=MOVE_AE
    )
    w, shown = _started_window(make_window, qtbot, tmp_path)
    w.dicom_receiver.action.trigger()  # File > Receive over DICOM, on the port Orthanc moves to
    qtbot.waitUntil(lambda: w.dicom_receiver.running, timeout=30_000)
    dialog = _open_dialog(w, qtbot)
    with qtbot.waitSignal(dialog.search_done, timeout=30_000):
        dialog.search()
    # A second listener on that port could not start: the images must come through the running one.
    with qtbot.waitSignal(w.dicom_receiver.arrived, timeout=60_000) as arrival:
        dialog.retrieve()
    got = store / study.StudyInstanceUID / f"{study.SOPInstanceUID}.dcm"
    assert arrival.args == [str(got)]
    qtbot.waitUntil(lambda: dialog.job is None, timeout=30_000)
    assert "retrieved 1 image" in dialog.message.text().lower(), dialog.message.text()
    _assert_arrived(w, qtbot, got, shown)


def _retrieve_first_study(w, qtbot):
    dialog = _open_dialog(w, qtbot)
    with qtbot.waitSignal(dialog.search_done, timeout=30_000):
        dialog.search()
    with qtbot.waitSignal(dialog.retrieve_done, timeout=60_000) as done:
        dialog.retrieve()
    return done.args[0]


def test_a_study_already_in_the_store_still_joins_the_list(
    make_window, qtbot, tmp_path, settings, orthanc, study
):
    store = tmp_path / "store"
    settings.dicom_node = NodeConfig(store=str(store))
    settings.pacs = PacsConfig(host="127.0.0.1", port=orthanc.dicom_port, ae_title=ORTHANC_AE)
    got = store / study.StudyInstanceUID / f"{study.SOPInstanceUID}.dcm"
    first, _ = _started_window(make_window, qtbot, tmp_path)
    assert _retrieve_first_study(first, qtbot).completed == 1 and got.is_file()
    first.close()
    mtime = got.stat().st_mtime_ns
    # A later session retrieves it again: the store keeps its identical copy, and the list shows it.
    w, shown = _started_window(make_window, qtbot, tmp_path)
    assert str(got) not in w.study_list.paths()
    assert _retrieve_first_study(w, qtbot).completed == 1
    assert got.stat().st_mtime_ns == mtime  # not written again
    _assert_arrived(w, qtbot, got, shown)
