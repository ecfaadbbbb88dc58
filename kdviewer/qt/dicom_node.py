"""File > Receive over DICOM: the viewer runs the DICOM node's listener (kdviewer.net) and shows
each image that arrives in the study list, where background scoring takes it up.

The listener's threads call back from outside the GUI thread; a queued signal brings each arrival
to the GUI thread. Defaults are those of ``kdviewer listen`` (AE title KDVIEWER, port 11112,
127.0.0.1); ``KDVIEWER_DICOM_PORT``, ``KDVIEWER_DICOM_AE_TITLE`` and ``KDVIEWER_DICOM_STORE`` change them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, Signal
from PySide6.QtGui import QAction

from kdviewer.net import DEFAULT_AE_TITLE, DEFAULT_PORT

log = logging.getLogger(__name__)

STORE_BYTES = 20 * 2**30


def default_store() -> Path:
    """Where received images go: ``KDVIEWER_DICOM_STORE``, else the application data folder."""
    env = os.environ.get("KDVIEWER_DICOM_STORE")
    if env:
        return Path(env)
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".kdviewer") / "dicom-received"


class DicomReceiver(QObject):
    """Starts and stops a :class:`~kdviewer.net.listener.Listener`; emits ``arrived`` (in the GUI
    thread) with the path of each new image, ``state_changed`` with a line for the status bar."""

    arrived = Signal(str)
    state_changed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._listener = None
        self.address: tuple[str, int] | None = None
        self.action: QAction | None = None  # File > Receive over DICOM, set by install()

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(
        self,
        store: Path | None = None,
        *,
        port: int | None = None,
        ae_title: str | None = None,
        bind: str = "127.0.0.1",
    ) -> bool:
        """Start listening; False (and a ``state_changed`` line saying why) when it cannot."""
        # The node's library loads only when asked for: importing pynetdicom takes about 1 s.
        from kdviewer.net.listener import Listener
        from kdviewer.net.store import ReceiveStore

        if self._listener is not None:
            return True
        store = Path(store) if store is not None else default_store()
        port = int(os.environ.get("KDVIEWER_DICOM_PORT", DEFAULT_PORT)) if port is None else port
        ae_title = ae_title or os.environ.get("KDVIEWER_DICOM_AE_TITLE", DEFAULT_AE_TITLE)
        try:
            listener = Listener(
                ReceiveStore(store, max_bytes=STORE_BYTES),
                port=port,
                ae_title=ae_title,
                bind=bind,
                on_stored=lambda p: self.arrived.emit(str(p)),
            )
            self.address = listener.start()
        except (OSError, ValueError) as exc:
            self.state_changed.emit(f"Cannot receive over DICOM on {bind}:{port}: {exc}")
            return False
        self._listener = listener
        host, bound = self.address
        self.state_changed.emit(f"Receiving over DICOM as {ae_title} on {host}:{bound} into {store}")
        return True

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
            self.state_changed.emit("Stopped receiving over DICOM")


def install(window) -> DicomReceiver:
    """Add File > Receive over DICOM to ``window`` (a ViewerWindow): a checkable action that starts
    and stops the receiver; arrivals are added to the window's study list."""
    receiver = DicomReceiver(window)
    action = QAction("Receive over &DICOM", window)
    action.setCheckable(True)
    action.setToolTip(
        f"Listen for images from an X-ray unit or PACS (AE title {DEFAULT_AE_TITLE}, port "
        f"{DEFAULT_PORT}, this computer only)"
    )
    file_menu = window.menuBar().actions()[0].menu()
    file_menu.insertAction(file_menu.actions()[-1], action)  # above Quit
    file_menu.insertSeparator(file_menu.actions()[-1])

    def toggled(on: bool) -> None:
        if on and not receiver.start():
            action.setChecked(False)
        elif not on:
            receiver.stop()

    action.toggled.connect(toggled)
    receiver.arrived.connect(lambda path: window.model.add_studies([path]))
    receiver.state_changed.connect(lambda text: window.statusBar().showMessage(text, 10_000))
    receiver.action = action
    return receiver
