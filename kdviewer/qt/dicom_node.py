"""The viewer's DICOM node (kdviewer.net): File > Receive over DICOM starts and stops the listener,
File > DICOM node settings… configures it, File > Query PACS… finds and retrieves studies.

Whatever reaches the store, pushed to the listener or retrieved from a PACS, goes through
:meth:`DicomReceiver.deliver`: one ``arrived`` signal, queued to the GUI thread, adds it to the
study list, where background scoring takes it up. The listener's and the retrievals' threads call
it from outside the GUI thread.

The GUI thread never waits for the node: importing the network library (about 1 s) and measuring
the store folder (a walk of the whole folder) run on :class:`~kdviewer.qt.net_job.NetJob` threads.

Settings are the viewer's (:class:`kdviewer.net.config.NodeConfig`, defaults those of ``kdviewer
listen``: AE title KDVIEWER, port 11112, 127.0.0.1); ``KDVIEWER_DICOM_PORT``,
``KDVIEWER_DICOM_AE_TITLE`` and ``KDVIEWER_DICOM_STORE`` override them.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel

from kdviewer.net.config import NodeConfig
from kdviewer.net.store import ReceiveStore
from kdviewer.qt.net_job import NetJob, NetJobs, load_network
from kdviewer.qt.node_settings import NodeSettingsDialog
from kdviewer.qt.pacs_dialog import PacsDialog

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
        self._preparing: NetJob | None = None  # the store and library being readied for start()
        self._store: ReceiveStore | None = None
        self._store_lock = threading.Lock()  # store() is called from worker threads
        self._jobs = NetJobs()
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

    @property
    def starting(self) -> bool:
        """start() is readying the store; the listener starts when it is done."""
        return self._preparing is not None

    def store_folder(self) -> Path:
        """Where images go now: the running listener's folder, else the configured one."""
        return self._listener.store.root if self._listener is not None else self.store_path()

    def store(self, folder: Path | None = None) -> ReceiveStore:
        """The :class:`~kdviewer.net.store.ReceiveStore` for ``folder`` (default: the running
        listener's, else the configured folder; retrievals write there too, within the same
        budget). Its first use measures the folder: call this off the GUI thread."""
        listener = self._listener
        if folder is None and listener is not None:
            return listener.store
        folder = Path(folder) if folder is not None else self.store_path()
        with self._store_lock:
            if self._store is None or self._store.root != folder:
                self._store = ReceiveStore(folder, max_bytes=STORE_BYTES)
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
    ) -> None:
        """Start listening (arguments override the settings): the store and the network library
        are readied on a worker thread, then the listener starts; ``state_changed`` says when it
        listens, or why it cannot."""
        if self.running or self.starting:
            return
        try:
            config = self.config()
        except ValueError as exc:  # a KDVIEWER_DICOM_* variable that is not a port or AE title
            self._set_state(f"Cannot receive over DICOM: {exc}", error=True)
            return
        port = config.port if port is None else port
        ae_title, bind = ae_title or config.ae_title, bind or config.bind
        folder = Path(store) if store is not None else self.store_path(config)

        def prepare(_cancel, _progress):
            load_network()
            return self.store(folder)

        job = NetJob("dicom-prepare", prepare, self)
        where = f"{bind}:{port}"
        job.succeeded.connect(lambda ready: self._listen(job, ready, port, ae_title, bind, config.allow))
        job.failed.connect(lambda reason: self._cannot_listen(job, f"{where}: {reason}"))
        self._preparing = job
        self._set_state(f"Preparing to receive over DICOM on {where}…")
        self._jobs.start(job)

    def _listen(self, job: NetJob, store: ReceiveStore, port: int, ae_title: str, bind: str, allow) -> None:
        if self._preparing is not job:
            return  # stopped meanwhile
        self._preparing = None
        # Lazy: pynetdicom must not load on the GUI thread; the job has loaded it, so this costs nothing.
        from kdviewer.net.listener import Listener

        try:
            listener = Listener(
                store, port=port, ae_title=ae_title, bind=bind, allow=allow, on_stored=self.deliver
            )
            self.address = listener.start()
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._set_state(f"Cannot receive over DICOM on {bind}:{port}: {reason}", error=True)
            return
        self._listener = listener
        host, bound = self.address
        self._set_state(f"Receiving over DICOM as {ae_title} on {host}:{bound} into {store.root}")

    def _cannot_listen(self, job: NetJob, reason: str) -> None:
        if self._preparing is job:
            self._preparing = None
            self._set_state(f"Cannot receive over DICOM on {reason}", error=True)

    def stop(self) -> None:
        if self._preparing is not None:
            self._preparing = None  # its result is dropped when it comes
            self._set_state("Stopped receiving over DICOM")
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
            self.address = None
            self._set_state("Stopped receiving over DICOM")

    def _set_state(self, text: str, *, error: bool = False) -> None:
        self.state, self.error = text, error
        if self.action is not None:
            self.action.blockSignals(True)  # show the state; do not start or stop again
            self.action.setChecked(self.running or self.starting)
            self.action.blockSignals(False)
        self.state_changed.emit(text)

    def threads(self) -> list:
        """The node's and its dialogs' worker threads (for clean-shutdown checks)."""
        return self._jobs.threads() + [t for d in self.dialogs for t in d.threads()]

    def shutdown(self) -> None:
        """Stop the listener, cancel what the dialogs are doing and wait for all threads."""
        for dialog in self.dialogs:
            dialog.shutdown()
        self.stop()
        self._jobs.shutdown()


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

    def open_dialog(dialog_class) -> None:
        dialog = next((d for d in receiver.dialogs if isinstance(d, dialog_class)), None)
        if dialog is None:
            dialog = dialog_class(receiver, window)
            receiver.dialogs.append(dialog)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()

    action.toggled.connect(toggled)
    settings_action.triggered.connect(lambda: open_dialog(NodeSettingsDialog))
    query_action.triggered.connect(lambda: open_dialog(PacsDialog))
    receiver.arrived.connect(lambda path: window.model.add_studies([path]))
    receiver.state_changed.connect(show_state)
    receiver.action, receiver.settings_action, receiver.query_action = action, settings_action, query_action
    return receiver
