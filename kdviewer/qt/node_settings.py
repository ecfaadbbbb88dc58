"""File > DICOM node settings…: the listener's port, AE title, store folder, allowed calling AE
titles and bind address, kept in the viewer's settings; a line saying what the listener is doing
(listening on …, stopped, or why it cannot listen) and a button that starts or stops it."""

from __future__ import annotations

import os

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kdviewer.net.config import LOOPBACK, NodeConfig

ENVIRONMENT = ("KDVIEWER_DICOM_PORT", "KDVIEWER_DICOM_AE_TITLE", "KDVIEWER_DICOM_STORE")


class NodeSettingsDialog(QDialog):
    """Edits ``receiver.settings.dicom_node``; Start/Stop runs the listener with what is saved."""

    def __init__(self, receiver, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("DICOM node settings")
        self.receiver = receiver
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Other DICOM devices (the X-ray unit, the PACS) send images to this AE title and port. "
            "Bind to 127.0.0.1 for this computer only, or 0.0.0.0 for the network."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.port_edit = QLineEdit()
        self.ae_edit = QLineEdit()
        self.ae_edit.setMaxLength(16)
        self.store_edit = QLineEdit()
        self.store_edit.setPlaceholderText(str(receiver.store_path(NodeConfig())))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        store_row = QHBoxLayout()
        store_row.addWidget(self.store_edit, 1)
        store_row.addWidget(browse)
        self.allow_edit = QLineEdit(placeholderText="any (or: XRAY1 PACS …)")
        self.bind_edit = QLineEdit(placeholderText=LOOPBACK)
        form.addRow("Port", self.port_edit)
        form.addRow("AE title", self.ae_edit)
        form.addRow("Store folder", store_row)
        form.addRow("Allowed calling AEs", self.allow_edit)
        form.addRow("Bind address", self.bind_edit)
        layout.addLayout(form)
        overridden = [v for v in ENVIRONMENT if os.environ.get(v)]
        verb = "it overrides" if len(overridden) == 1 else "they override"
        note = (
            f"{', '.join(overridden)} set in the environment: {verb} the saved value." if overridden else ""
        )
        self.env_note = QLabel(note)
        self.env_note.setWordWrap(True)
        self.env_note.setVisible(bool(overridden))
        layout.addWidget(self.env_note)
        self.state = QLabel("")
        self.state.setObjectName("nodeState")
        self.state.setWordWrap(True)
        layout.addWidget(self.state)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close
        )
        self.start_button = buttons.addButton("Start", QDialogButtonBox.ButtonRole.ActionRole)
        self.start_button.clicked.connect(self._on_start_clicked)
        buttons.button(QDialogButtonBox.StandardButton.Save).clicked.connect(self.save)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        receiver.state_changed.connect(self._show_state)
        self._load(receiver.settings.dicom_node if receiver.settings is not None else NodeConfig())
        self._show_state(receiver.state)
        self.resize(560, self.sizeHint().height())

    def _load(self, config: NodeConfig) -> None:
        self.port_edit.setText(str(config.port))
        self.ae_edit.setText(config.ae_title)
        self.store_edit.setText(config.store)
        self.allow_edit.setText(" ".join(config.allow))
        self.bind_edit.setText(config.bind)

    def _browse(self) -> None:
        start = self.store_edit.text() or str(self.receiver.store_path(NodeConfig()))
        chosen = QFileDialog.getExistingDirectory(self, "Store received images in", start)
        if chosen:
            self.store_edit.setText(chosen)

    def config(self) -> NodeConfig:
        """The fields as typed and checked (ValueError naming what is wrong)."""
        return NodeConfig(
            port=self.port_edit.text(),
            ae_title=self.ae_edit.text(),
            store=self.store_edit.text().strip(),
            bind=self.bind_edit.text() or LOOPBACK,
            allow=tuple(self.allow_edit.text().replace(",", " ").split()),
        ).checked()

    def save(self) -> bool:
        """Keep the fields in the settings; False, saying why, when one is wrong. A running
        listener keeps its address until it is stopped and started again."""
        try:
            config = self.config()
        except ValueError as exc:
            self._show_state(f"Not saved: {exc}", error=True)
            return False
        if self.receiver.settings is not None:
            self.receiver.settings.dicom_node = config
        self._show_state(
            "Saved; stop and start the listener to use them." if self.receiver.running else "Saved.",
            error=False,
        )
        return True

    def _on_start_clicked(self) -> None:
        if self.receiver.running or self.receiver.starting:
            self.receiver.stop()
        elif self.save():
            self.receiver.start()

    def _show_state(self, text: str, *, error: bool | None = None) -> None:
        error = self.receiver.error if error is None else error
        self.state.setText(text)
        self.state.setStyleSheet("color: #e06060; font-weight: bold;" if error else "")
        self.start_button.setText("Stop" if self.receiver.running or self.receiver.starting else "Start")

    def threads(self) -> list:
        return []

    def shutdown(self) -> None:
        self.close()
