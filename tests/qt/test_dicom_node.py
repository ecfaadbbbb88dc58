"""File > Receive over DICOM: images sent to the viewer's listener appear in the study list, are
scored in the background, and the image on screen stays where it was. File > DICOM node settings…
keeps the listener's settings and shows its state (listening, stopped, port in use). The store
folder is measured on a worker thread, never on the GUI thread."""

from __future__ import annotations

import socket
import subprocess
import sys

from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ComputedRadiographyImageStorage, Verification
from PySide6.QtCore import QCoreApplication, Qt, QThread
from PySide6.QtWidgets import QLabel

from kdviewer.net import store as store_module
from kdviewer.net.config import NodeConfig
from kdviewer.qt.dicom_node import DicomReceiver
from kdviewer.qt.node_settings import NodeSettingsDialog
from tests.core.dicom_factory import make_dataset, ramp
from tests.qt.conftest import write_png


def record_scan_threads(monkeypatch) -> list[bool]:
    """Each measurement of a store folder from now on appends whether it ran on the GUI thread."""
    on_gui_thread = []
    measure = store_module.folder_bytes

    def recording(root):
        on_gui_thread.append(QThread.currentThread() is QCoreApplication.instance().thread())
        return measure(root)

    monkeypatch.setattr(store_module, "folder_bytes", recording)
    return on_gui_thread


def test_the_viewer_loads_no_network_library_until_the_node_is_used():
    code = "import sys, kdviewer.qt.dicom_node; sys.exit('pynetdicom' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _send(port: int, ds) -> int:
    ae = AE(ae_title="XRAY1")
    ae.add_requested_context(ComputedRadiographyImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="KDVIEWER")
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def _icon_key(w, path: str) -> int:
    return w.study_list.list.item(w.study_list.paths().index(path)).icon().cacheKey()


def test_arrivals_join_the_study_list_and_are_scored(
    make_window, qtbot, tmp_path, recorded_warnings, monkeypatch
):
    monkeypatch.setenv("KDVIEWER_DICOM_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("KDVIEWER_DICOM_PORT", "0")  # any free port
    shown = write_png(tmp_path / "open.png")
    other = write_png(tmp_path / "other.png", seed=1)
    scans = record_scan_threads(monkeypatch)
    w = make_window()
    with qtbot.waitSignal(w.view_ready, timeout=60_000):
        w.start([shown, other])
    qtbot.waitUntil(lambda: w.study_list.thumbnail_count == 2, timeout=60_000)
    qtbot.waitUntil(lambda: other in w.model.list_scores, timeout=60_000)
    before = {p: (w.study_list.item_text(p), _icon_key(w, p)) for p in (shown, other)}
    file_menu = w.menuBar().actions()[0].menu()
    assert w.dicom_receiver.action in file_menu.actions()
    w.dicom_receiver.action.trigger()  # File > Receive over DICOM
    assert w.dicom_receiver.starting and w.dicom_receiver.action.isChecked()
    qtbot.waitUntil(lambda: w.dicom_receiver.running, timeout=30_000)
    assert scans == [False]  # the store was measured once, on a worker thread
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
    # the arrival blanks no other entry: each keeps its thumbnail, description and score
    assert {p: (w.study_list.item_text(p), _icon_key(w, p)) for p in (shown, other)} == before
    w.dicom_receiver.action.trigger()  # and again: stopped
    assert not w.dicom_receiver.running
    assert recorded_warnings == []


def test_a_busy_port_is_reported_not_raised(make_window, qtbot, tmp_path):
    w = make_window()
    first = w.dicom_receiver
    first.start(tmp_path / "a", port=0)
    qtbot.waitUntil(lambda: first.running, timeout=30_000)
    second = DicomReceiver(w)
    messages = []
    second.state_changed.connect(messages.append)
    second.start(tmp_path / "b", port=first.address[1])
    qtbot.waitUntil(lambda: not second.starting, timeout=30_000)
    assert "Cannot receive over DICOM" in messages[-1] and not second.running and second.error
    first.stop()
    second.shutdown()


def test_stopping_while_it_starts_leaves_it_stopped(make_window, qtbot, tmp_path):
    w = make_window()
    receiver = w.dicom_receiver
    receiver.start(tmp_path / "a", port=0)
    assert receiver.starting and receiver.action.isChecked()
    receiver.action.trigger()  # File > Receive over DICOM again, before it listens: stop
    assert not receiver.starting and not receiver.action.isChecked()
    qtbot.waitUntil(lambda: not receiver.threads(), timeout=30_000)  # the store was readied meanwhile
    assert not receiver.running and receiver.address is None
    assert receiver.state == "Stopped receiving over DICOM"


def _echo(port: int, calling_ae: str) -> bool:
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="KDTEST")
    if not assoc.is_established:
        return False
    assoc.release()
    return True


def test_node_settings_are_kept_and_the_listener_state_is_shown(
    make_window, qtbot, tmp_path, settings, monkeypatch
):
    for name in ("KDVIEWER_DICOM_PORT", "KDVIEWER_DICOM_AE_TITLE", "KDVIEWER_DICOM_STORE"):
        monkeypatch.delenv(name, raising=False)
    w = make_window()
    receiver = w.dicom_receiver
    receiver.settings_action.trigger()  # File > DICOM node settings…
    dialog = next(d for d in receiver.dialogs if isinstance(d, NodeSettingsDialog))
    assert (
        dialog.isVisible() and dialog.port_edit.text() == "11112" and dialog.bind_edit.text() == "127.0.0.1"
    )
    store = tmp_path / "node"
    for edit, text in (
        (dialog.port_edit, "0"),  # any free port
        (dialog.ae_edit, "KDTEST"),
        (dialog.store_edit, str(store)),
        (dialog.allow_edit, "XRAY1, PACS"),
    ):
        edit.clear()
        qtbot.keyClicks(edit, text)
    assert dialog.save()
    assert settings.dicom_node == NodeConfig(0, "KDTEST", str(store), "127.0.0.1", ("XRAY1", "PACS"))
    dialog.ae_edit.setText("BAD\\AE")  # no backslash in an AE title
    assert not dialog.save() and "Not saved" in dialog.state.text()
    assert settings.dicom_node.ae_title == "KDTEST"
    dialog.ae_edit.setText("KDTEST")

    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: receiver.running, timeout=30_000)
    assert receiver.action.isChecked() and dialog.start_button.text() == "Stop"
    host, port = receiver.address
    assert dialog.state.text().startswith(f"Receiving over DICOM as KDTEST on 127.0.0.1:{port} into {store}")
    assert w.findChild(QLabel, "dicomState").text() == f"DICOM: 127.0.0.1:{port}"
    assert _echo(port, "XRAY1") and not _echo(port, "OTHER")  # the allowed calling AE titles hold

    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert not receiver.running and dialog.state.text() == "Stopped receiving over DICOM"
    assert not receiver.action.isChecked() and not w.findChild(QLabel, "dicomState").isVisible()

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        dialog.port_edit.setText(str(busy.getsockname()[1]))
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        assert dialog.start_button.text() == "Stop"  # while it starts, the button stops it
        qtbot.waitUntil(lambda: not receiver.starting, timeout=30_000)
    assert not receiver.running and receiver.error and not receiver.action.isChecked()
    assert "Cannot receive over DICOM" in dialog.state.text() and "in use" in dialog.state.text()
    assert w.findChild(QLabel, "dicomState").text() == "DICOM: error"

    monkeypatch.setenv("KDVIEWER_DICOM_AE_TITLE", "ENVAE")  # the environment overrides the settings
    assert receiver.config().ae_title == "ENVAE" and settings.dicom_node.ae_title == "KDTEST"
