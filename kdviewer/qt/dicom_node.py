"""The viewer's DICOM node (kdviewer.net): File > Receive over DICOM starts and stops the listener,
File > DICOM node settings… configures it, File > Query PACS… finds and retrieves studies.

Whatever reaches the store, pushed to the listener or retrieved from a PACS, goes through
:meth:`DicomReceiver.deliver`: one ``arrived`` signal, queued to the GUI thread, adds it to the
study list, where background scoring takes it up. The listener's and the retrievals' threads call
it from outside the GUI thread.

Settings are the viewer's (:class:`kdviewer.net.config.NodeConfig`, defaults those of ``kdviewer
listen``: AE title KDVIEWER, port 11112, 127.0.0.1); ``KDVIEWER_DICOM_PORT``,
``KDVIEWER_DICOM_AE_TITLE`` and ``KDVIEWER_DICOM_STORE`` override them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel

from kdviewer.net.config import NodeConfig

log = logging.getLogger(__name__)

STORE_BYTES = 20 * 2**30


def default_store() -> Path:
    """Where received images go unless the settings name a folder: the application data folder."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".kdviewer") / "dicom-received"


class DicomReceiver(QObject):
    """Starts and stops a :class:`~kdviewer.net.listener.Listener`; emits ``arrived`` (in the GUI
    thread) with the path of each new image, ``state_changed`` with a line saying what it is doing
    (listening, stopped, or why it cannot listen). ``settings``: the viewer's (None: defaults)."""

    arrived = Signal(str)
    state_changed = Signal(str)

    def __init__(self, parent: QObject | None = None, settings=None):
        super().__init__(parent)
        self.settings = settings
        self._listener = None
        self._store = None
        self.address: tuple[str, int] | None = None
        self.state = "Not receiving over DICOM"
        self.error = False  # the last start failed
        self.action: QAction | None = None  # File > Receive over DICOM, set by install()
        self.dialogs: list = []  # open node dialogs, closed (and their threads stopped) at shutdown

    @property
    def running(self) -> bool:
        return self._listener is not None

    def config(self) -> NodeConfig:
        """The saved settings with the environment's overrides."""
        saved = self.settings.dicom_node if self.settings is not None else NodeConfig()
        return saved.with_environment()

    def store_path(self, config: NodeConfig | None = None) -> Path:
        config = config or self.config()
        return Path(config.store) if config.store else default_store()

    def store(self):
        """The running listener's :class:`~kdviewer.net.store.ReceiveStore`, else one for the
        configured folder (retrievals write there too, within the same budget)."""
        # The node's library loads only when asked for: importing pynetdicom takes about 1 s.
        from kdviewer.net.store import ReceiveStore

        if self._listener is not None:
            return self._listener.store
        path = self.store_path()
        if self._store is None or self._store.root != path:
            self._store = ReceiveStore(path, max_bytes=STORE_BYTES)
        return self._store

    def deliver(self, path) -> None:
        """An image reached the store (any thread): it joins the study list."""
        self.arrived.emit(str(path))

    def start(
        self,
        store: Path | None = None,
        *,
        port: int | None = None,
        ae_title: str | None = None,
        bind: str | None = None,
    ) -> bool:
        """Start listening (arguments override the settings); False, with ``state_changed`` saying
        why, when it cannot."""
        from kdviewer.net.listener import Listener, quiet_libraries
        from kdviewer.net.store import ReceiveStore

        if self._listener is not None:
            return True
        quiet_libraries()
        try:
            config = self.config()
        except ValueError as exc:  # a KDVIEWER_DICOM_* variable that is not a port or AE title
            self._set_state(f"Cannot receive over DICOM: {exc}", error=True)
            return False
        port = config.port if port is None else port
        ae_title, bind = ae_title or config.ae_title, bind or config.bind
        store = Path(store) if store is not None else self.store_path(config)
        try:
            if self._store is None or self._store.root != store:
                self._store = ReceiveStore(store, max_bytes=STORE_BYTES)
            listener = Listener(
                self._store,
                port=port,
                ae_title=ae_title,
                bind=bind,
                allow=config.allow,
                on_stored=self.deliver,
            )
            self.address = listener.start()
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._set_state(f"Cannot receive over DICOM on {bind}:{port}: {reason}", error=True)
            return False
        self._listener = listener
        host, bound = self.address
        self._set_state(f"Receiving over DICOM as {ae_title} on {host}:{bound} into {store}")
        return True

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
            self.address = None
            self._set_state("Stopped receiving over DICOM")

    def _set_state(self, text: str, *, error: bool = False) -> None:
        self.state, self.error = text, error
        if self.action is not None:
            self.action.blockSignals(True)  # show the state; do not start or stop again
            self.action.setChecked(self.running)
            self.action.blockSignals(False)
        self.state_changed.emit(text)

    def threads(self) -> list:
        """The node dialogs' worker threads (for clean-shutdown checks)."""
        return [t for d in self.dialogs for t in d.threads()]

    def shutdown(self) -> None:
        """Stop the listener, cancel what the dialogs are doing and wait for their threads."""
        for dialog in self.dialogs:
            dialog.shutdown()
        self.stop()


def _file_menu(window):
    return next(m.menu() for m in window.menuBar().actions() if m.text() == "&File")


def install(window) -> DicomReceiver:
    """Add the node to ``window`` (a ViewerWindow): File > Receive over DICOM (checkable; starts
    and stops the listener), File > DICOM node settings…, File > Query PACS…, and a status-bar
    label with the listener's state. Arrivals are added to the window's study list."""
    receiver = DicomReceiver(window, getattr(window, "settings", None))
    action = QAction("Receive over &DICOM", window)
    action.setCheckable(True)
    action.setToolTip("Listen for images from an X-ray unit or PACS (File > DICOM node settings…)")
    settings_action = QAction("DICOM &node settings…", window)
    query_action = QAction("&Query PACS…", window)
    query_action.setToolTip("Find studies on a PACS (C-FIND) and retrieve them into the study list")
    file_menu = _file_menu(window)
    quit_action = file_menu.actions()[-1]
    for a in (query_action, action, settings_action):
        file_menu.insertAction(quit_action, a)  # above Quit
    file_menu.insertSeparator(quit_action)

    state = QLabel("")
    state.setObjectName("dicomState")
    state.setVisible(False)
    window.statusBar().addPermanentWidget(state)

    def show_state(text: str) -> None:
        window.statusBar().showMessage(text, 10_000)
        if receiver.running:
            host, port = receiver.address
            state.setText(f"DICOM: {host}:{port}")
        else:
            state.setText("DICOM: error" if receiver.error else "")
        state.setToolTip(text)
        state.setStyleSheet("color: #e06060;" if receiver.error else "")
        state.setVisible(bool(state.text()))
        action.setToolTip(text)

    def toggled(on: bool) -> None:
        if on:
            receiver.start()
        else:
            receiver.stop()

    def open_dialog(kind: str) -> None:
        # Imported when first opened: they import pynetdicom (about 1 s).
        if kind == "pacs":
            from kdviewer.qt.pacs_dialog import PacsDialog as Dialog
        else:
            from kdviewer.qt.node_settings import NodeSettingsDialog as Dialog
        dialog = next((d for d in receiver.dialogs if isinstance(d, Dialog)), None)
        if dialog is None:
            dialog = Dialog(receiver, window)
            receiver.dialogs.append(dialog)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()

    action.toggled.connect(toggled)
    settings_action.triggered.connect(lambda: open_dialog("settings"))
    query_action.triggered.connect(lambda: open_dialog("pacs"))
    receiver.arrived.connect(lambda path: window.model.add_studies([path]))
    receiver.state_changed.connect(show_state)
    receiver.action, receiver.settings_action, receiver.query_action = action, settings_action, query_action
    return receiver
