"""File > Query PACS…: find studies on a PACS (C-FIND, study level) and retrieve them (C-GET, or
C-MOVE when a move destination is set) into the node's store; what arrives joins the study list
through the receiver's one arrival path and is scored in the background.

The network work runs on :class:`~kdviewer.qt.net_job.NetJob` threads; the GUI thread never waits
for the PACS, the store folder or the network library (loaded on a job while the dialog opens; the
buttons are enabled once it is there). Errors (refused, no answer within the timeout, nothing
listening) are shown in the dialog, never as a modal box. Patient names and IDs are shown here
(it is the user's own PACS) but never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QDate, Qt, QThread, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kdviewer.net.association import Caller, MoveVia, Peer, Retrieved
from kdviewer.net.config import PacsConfig
from kdviewer.net.store import is_valid_uid
from kdviewer.qt.net_job import NetJob, NetJobs, load_network

log = logging.getLogger(__name__)

MODALITIES = ("Any", "CR", "DX", "CR\\DX")
COLUMNS = ("Date", "Modality", "Description", "Images", "Patient", "Patient ID", "Accession")
LOADING = "Loading the DICOM network library…"


def display_date(value: str) -> str:
    """``YYYYMMDD`` as ``YYYY-MM-DD`` (anything else as it is)."""
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def display_name(value: str) -> str:
    """A DICOM person name (``FAMILY^GIVEN^MIDDLE``) as ``FAMILY, GIVEN MIDDLE``."""
    family, _, rest = value.partition("^")
    rest = " ".join(p for p in rest.split("^") if p)
    return f"{family}, {rest}" if rest else family


def _add_fields(grid: QGridLayout, pairs) -> None:
    """``(label, field)`` pairs side by side on the grid's first row."""
    for i, (label, widget) in enumerate(pairs):
        grid.addWidget(QLabel(label), 0, 2 * i)
        grid.addWidget(widget, 0, 2 * i + 1)


def _add_second_row(grid: QGridLayout, left, right, *, stretch: dict[int, int]) -> None:
    """A row of widgets under the fields, ``right`` pushed to the end; ``stretch``: column ->
    stretch factor for the fields above."""
    row = QHBoxLayout()
    for widget in left:
        row.addWidget(widget)
    row.addStretch(1)
    for widget in right:
        row.addWidget(widget)
    grid.addLayout(row, 1, 0, 1, grid.columnCount())
    for column, factor in stretch.items():
        grid.setColumnStretch(column, factor)


def _sum(results: list[Retrieved]) -> Retrieved:
    return Retrieved(
        next((r.status for r in results if r.status), 0),
        sum(r.completed for r in results),
        sum(r.failed for r in results),
        sum(r.warning for r in results),
    )


class PacsDialog(QDialog):
    """Query a PACS and retrieve studies into the study list. ``receiver``: the window's
    :class:`~kdviewer.qt.dicom_node.DicomReceiver` (its settings, store and arrival path)."""

    search_done = Signal(int)  # studies found
    retrieve_done = Signal(object)  # Retrieved (summed over the studies)
    job_failed = Signal(str)  # the inline error

    def __init__(self, receiver, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Query PACS — research use only")
        self.receiver = receiver
        self.settings = receiver.settings
        self.net = None  # kdviewer.net.scu, once a job has loaded it
        self.job: NetJob | None = None  # the search or retrieval in progress
        self._jobs = NetJobs()
        self.studies: list[dict[str, str]] = []
        self._build()
        self._load(self.settings.pacs if self.settings is not None else PacsConfig())
        self.resize(940, 560)
        loader = NetJob("pacs-load", lambda _cancel, _progress: load_network(), self)
        loader.succeeded.connect(self._on_network_loaded)
        loader.failed.connect(self._on_failed)
        self.show_message(LOADING)
        self._jobs.start(loader)

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        pacs = QGroupBox("PACS")
        g = QGridLayout(pacs)
        self.host_edit = QLineEdit(placeholderText="pacs.hospital.local or 10.0.0.5")
        self.port_edit = QLineEdit(placeholderText="104")
        self.port_edit.setMaximumWidth(70)
        self.ae_edit = QLineEdit(placeholderText="called AE title")
        self.ae_edit.setMaxLength(16)
        self.timeout_spin = QDoubleSpinBox(suffix=" s", decimals=0, minimum=1, maximum=600)
        self.timeout_spin.setToolTip("How long to wait for the PACS to answer")
        fields = [("Host", self.host_edit), ("Port", self.port_edit), ("AE title", self.ae_edit)]
        _add_fields(g, [*fields, ("Timeout", self.timeout_spin)])
        self.get_radio = QRadioButton("C-GET")
        self.move_radio = QRadioButton("C-MOVE to AE")
        self.get_radio.setToolTip("The PACS sends the images back on the same connection")
        self.move_radio.setToolTip(
            "The PACS sends the images to this AE title, which it must know at this computer's "
            "address and the node's port (File > DICOM node settings…)"
        )
        group = QButtonGroup(self)
        group.addButton(self.get_radio)
        group.addButton(self.move_radio)
        self.move_edit = QLineEdit(placeholderText="destination AE title")
        self.move_edit.setMaxLength(16)
        self.move_radio.toggled.connect(self.move_edit.setEnabled)
        self.calling_label = QLabel("")
        self.calling_label.setObjectName("pacsCallingAe")
        left = [QLabel("Retrieve by"), self.get_radio, self.move_radio, self.move_edit]
        _add_second_row(g, left, [self.calling_label], stretch={1: 3, 5: 2})
        layout.addWidget(pacs)

        search = QGroupBox("Search")
        s = QGridLayout(search)
        self.patient_id_edit = QLineEdit()
        self.patient_name_edit = QLineEdit(placeholderText="DOE or DOE^JOHN (matches names starting so)")
        self.modality_combo = QComboBox()
        self.modality_combo.addItems(MODALITIES)
        self.modality_combo.setEditable(True)
        self.date_check = QCheckBox("Study date from")
        today = QDate.currentDate()
        self.date_from = QDateEdit(today.addDays(-7), calendarPopup=True, displayFormat="yyyy-MM-dd")
        self.date_to = QDateEdit(today, calendarPopup=True, displayFormat="yyyy-MM-dd")
        for edit in (self.date_from, self.date_to):
            edit.setEnabled(False)
            self.date_check.toggled.connect(edit.setEnabled)
        self.search_button = QPushButton("&Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        fields = [("Patient ID", self.patient_id_edit), ("Patient name", self.patient_name_edit)]
        _add_fields(s, [*fields, ("Modality", self.modality_combo)])
        dates = [self.date_check, self.date_from, QLabel("to"), self.date_to]
        _add_second_row(s, dates, [self.search_button], stretch={1: 2, 3: 3})
        layout.addWidget(search)

        self.message = QLabel("")
        self.message.setObjectName("pacsMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setSortingEnabled(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.doubleClicked.connect(lambda _index: self.retrieve())
        layout.addWidget(self.table, 1)

        bottom = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.progress.setFormat("%v of %m images")
        self.retrieve_button = QPushButton("&Retrieve")
        self.retrieve_button.setToolTip("Retrieve the selected studies into the study list")
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        bottom.addWidget(self.progress, 1)
        bottom.addStretch(1)  # the buttons keep their size while no progress bar shows
        bottom.addWidget(self.retrieve_button)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(close)
        layout.addLayout(bottom)
        self._update_buttons()

    def _load(self, config: PacsConfig) -> None:
        self.host_edit.setText(config.host)
        self.port_edit.setText(str(config.port))
        self.ae_edit.setText(config.ae_title)
        self.timeout_spin.setValue(config.timeout_s)
        self.move_edit.setText(config.move_destination)
        (self.move_radio if config.move_destination else self.get_radio).setChecked(True)
        self.move_edit.setEnabled(bool(config.move_destination))

    def showEvent(self, event):  # noqa: N802
        super().showEvent(event)
        try:
            calling = self.receiver.config().ae_title
        except ValueError:
            calling = "?"
        self.calling_label.setText(f"this node: {calling}")
        self.calling_label.setToolTip("The calling AE title the PACS must know (File > DICOM node settings…)")

    # -- state --------------------------------------------------------------------------------
    def config(self) -> PacsConfig:
        """The PACS fields as typed (ValueError naming what is missing or wrong)."""
        return PacsConfig(
            host=self.host_edit.text(),
            port=self.port_edit.text() or "0",
            ae_title=self.ae_edit.text(),
            move_destination=self.move_edit.text() if self.move_radio.isChecked() else "",
            timeout_s=self.timeout_spin.value(),
        ).checked()

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setProperty("error", error)
        self.message.setStyleSheet("color: #e06060; font-weight: bold;" if error else "")

    def is_ready(self) -> bool:
        """The network library is loaded and no search or retrieval runs."""
        return self.net is not None and self.job is None

    def _update_buttons(self) -> None:
        self.search_button.setEnabled(self.is_ready())
        self.retrieve_button.setEnabled(self.is_ready() and bool(self.table.selectionModel().selectedRows()))
        self.cancel_button.setEnabled(self.job is not None)

    def _on_network_loaded(self, scu) -> None:
        self.net = scu
        if self.message.text() == LOADING:
            self.show_message("")
        self._update_buttons()

    def _start(self, name: str, work: Callable, on_success: Callable) -> None:
        job = NetJob(name, work, self)
        # The dialog is free again as soon as the job reports (before its thread has quite ended).
        for signal in (job.succeeded, job.failed, job.cancelled):
            signal.connect(lambda *_args: self._on_reported(job))
        job.succeeded.connect(on_success)
        job.failed.connect(self._on_failed)
        job.cancelled.connect(self._on_cancelled)
        job.progress.connect(self._on_progress)
        self.job = job
        self._update_buttons()
        self._jobs.start(job)

    def _on_reported(self, job: NetJob) -> None:
        if self.job is job:
            self.job = None
        self._update_buttons()

    def _on_failed(self, text: str) -> None:
        self.progress.setVisible(False)
        self.show_message(text[:1].upper() + text[1:], error=True)
        self.job_failed.emit(text)

    def _on_cancelled(self) -> None:
        self.progress.setVisible(False)
        self.show_message("Cancelled. Images already retrieved stay in the study list.")

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(total, done, 1))
        self.progress.setValue(done)

    def _check(self) -> tuple[PacsConfig, object] | None:
        """The PACS settings and the node's (saved for next time); None, with the reason shown, when
        a field is wrong."""
        try:
            config = self.config()
            node = self.receiver.config()
        except ValueError as exc:
            self.show_message(f"{str(exc)[:1].upper()}{str(exc)[1:]}.", error=True)
            return None
        if self.settings is not None:
            self.settings.pacs = config
        return config, node

    # -- intents ------------------------------------------------------------------------------
    def search(self) -> None:
        """C-FIND at study level with the search fields, on a worker thread."""
        if not self.is_ready() or (checked := self._check()) is None:
            return
        config, node = checked
        name = self.patient_name_edit.text().strip()
        if name and not any(c in name for c in "*?"):
            name += "*"
        modality = self.modality_combo.currentText().strip()
        try:
            query = self.net.study_query(
                patient_id=self.patient_id_edit.text().strip() or None,
                patient_name=name or None,
                date_from=self.date_from.date().toString("yyyyMMdd") if self.date_check.isChecked() else None,
                date_to=self.date_to.date().toString("yyyyMMdd") if self.date_check.isChecked() else None,
                modality=None if modality in ("", "Any") else modality,
            )
        except ValueError as exc:
            self.show_message(str(exc), error=True)
            return
        peer = Peer(config.host, config.port, config.ae_title)
        self.show_message(f"Searching {config.ae_title} at {config.host}:{config.port}…")

        find_studies = self.net.find_studies

        def work(cancel, _progress):
            return find_studies(peer, query, Caller(node.ae_title, config.timeout_s, cancel))

        self._start("pacs-find", work, self._on_found)

    def _on_found(self, studies: list[dict[str, str]]) -> None:
        self.studies = studies
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(studies))
        for row, study in enumerate(studies):
            count = study.get("NumberOfStudyRelatedInstances", "")
            values = (
                display_date(study["StudyDate"]),
                study["ModalitiesInStudy"].replace("\\", ", "),
                study["StudyDescription"],
                int(count) if count.isdigit() else count,
                display_name(study["PatientName"]),
                study["PatientID"],
                study["AccessionNumber"],
            )
            for col, value in enumerate(values):
                item = QTableWidgetItem()
                item.setData(Qt.ItemDataRole.DisplayRole, value)
                item.setData(Qt.ItemDataRole.UserRole, row)
                self.table.setItem(row, col, item)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.table.resizeColumnsToContents()
        if studies:
            self.table.selectRow(0)
        n = len(studies)
        self.show_message(
            f"{n} stud{'y' if n == 1 else 'ies'} found."
            + (
                " Select one or more and press Retrieve."
                if n
                else " Widen the search (fields may be left empty)."
            )
        )
        log.info("PACS query: %d studies found", n)  # counts only: no identifiers in the log
        self.search_done.emit(n)

    def selected_studies(self) -> list[dict[str, str]]:
        rows = {
            self.table.item(i.row(), 0).data(Qt.ItemDataRole.UserRole)
            for i in self.table.selectionModel().selectedRows()
        }
        return [self.studies[r] for r in sorted(rows)]

    def retrieve(self) -> None:
        """Retrieve the selected studies into the node's store, on a worker thread; each image
        joins the study list as it arrives."""
        studies = self.selected_studies()
        if not self.is_ready() or not studies or (checked := self._check()) is None:
            return
        config, node = checked
        peer = Peer(config.host, config.port, config.ae_title)
        receiver, net = self.receiver, self.net
        # C-MOVE to a running listener: the images come in through it; else one listens for the transfer.
        to_listener = bool(config.move_destination) and receiver.running
        move = None if not config.move_destination else MoveVia(node.port, node.bind, config.move_destination)
        expected = sum(
            int(s["NumberOfStudyRelatedInstances"] or 0)
            for s in studies
            if s["NumberOfStudyRelatedInstances"].isdigit()
        )
        uids = [s["StudyInstanceUID"] for s in studies]

        def work(cancel, progress):
            try:
                store = receiver.store()  # measures the folder the first time: here, not on the GUI thread
            except OSError as exc:
                raise RuntimeError(f"cannot use the store folder: {exc.strerror or exc}") from exc
            counts = {"stored": 0, "before": 0, "pacs": 0}
            delivered: set = set()  # paths on_stored has handed to the study list already

            def report():
                done = max(counts["stored"], counts["before"] + counts["pacs"])
                progress(done, max(expected, done))

            def on_stored(path):
                counts["stored"] += 1
                delivered.add(path)
                receiver.deliver(path)
                report()

            def on_progress(done, _total):
                counts["pacs"] = done
                report()

            caller = Caller(node.ae_title, config.timeout_s, cancel, on_progress)
            results = []
            for uid in uids:
                if to_listener:
                    results.append(net.request_move(peer, uid, config.move_destination, caller))
                else:
                    results.append(
                        net.retrieve_study(peer, uid, store, caller, move=move, on_stored=on_stored)
                    )
                counts["before"] += max(
                    counts["pacs"], results[-1].completed + results[-1].failed + results[-1].warning
                )
                counts["pacs"] = 0
                # Images stored before (an earlier retrieval) are not new to the store, but are
                # what the user asked for: they join the list too (it ignores paths it has).
                for path in sorted((store.root / uid).glob("*.dcm")):
                    # <SOP>.dcm, not a result such as <SOP>.sr.dcm
                    if path not in delivered and is_valid_uid(path.stem):
                        receiver.deliver(path)
            return _sum(results)

        self.progress.setRange(0, max(expected, 1))
        self.progress.setValue(0)
        self.progress.setVisible(True)
        how = f"C-MOVE to {config.move_destination}" if move else "C-GET"
        n = len(uids)
        self.show_message(
            f"Retrieving {n} stud{'y' if n == 1 else 'ies'} by {how} into {receiver.store_folder()}…"
        )
        self._start("pacs-retrieve", work, self._on_retrieved)

    def _on_retrieved(self, result: Retrieved) -> None:
        self.progress.setVisible(False)
        text = result.summary()
        self.show_message(text[:1].upper() + text[1:] + ".", error=not result.ok and result.completed == 0)
        log.info("PACS retrieve: %s", text)
        self.retrieve_done.emit(result)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.show_message("Cancelling…")

    # -- lifetime -----------------------------------------------------------------------------
    def threads(self) -> list[QThread]:
        return self._jobs.threads()

    def shutdown(self) -> None:
        """Cancel what runs and wait for it (the window is closing)."""
        self._jobs.shutdown()
        self.close()
