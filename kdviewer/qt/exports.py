"""The File menu's reading-workflow exports: a PDF report of the study on screen, the view as PNG
or to the clipboard, and the study list with its scores as CSV.

The report reuses the predictions the viewer already holds (no model runs again) and is written
on a background thread; every export goes to the audit log.
"""

from __future__ import annotations

import csv
import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMenu

from kdviewer.core import audit
from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.records import prediction_record
from kdviewer.core.triage import disagreement

log = logging.getLogger(__name__)


class WorkflowExports(QObject):
    """Owns the export actions of a :class:`~kdviewer.qt.main_window.ViewerWindow`."""

    report_written = Signal(str)  # the PDF's path
    export_failed = Signal(str)  # what went wrong (names the output, never a patient)

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self._threads: list[threading.Thread] = []
        self.report_action = QAction("&Report of this study (PDF)…", window)
        self.report_action.triggered.connect(
            lambda: self._ask("Report", "PDF (*.pdf)", ".pdf", self.write_report)
        )
        self.view_action = QAction("Export &view as PNG…", window)
        self.view_action.triggered.connect(
            lambda: self._ask("Export view", "PNG (*.png)", ".png", self.write_view_png)
        )
        self.copy_action = QAction("Cop&y view", window)
        self.copy_action.triggered.connect(self.copy_view)
        self.list_action = QAction("Export study &list as CSV…", window)
        self.list_action.triggered.connect(
            lambda: self._ask("Export study list", "CSV (*.csv)", ".csv", self.write_study_list_csv)
        )
        self.report_written.connect(lambda p: window.statusBar().showMessage(f"Report written to {p}", 8000))
        self.export_failed.connect(lambda m: window.statusBar().showMessage(m, 12000))

    def install(self, menu: QMenu, before: QAction) -> None:
        """Add the actions to ``menu`` (the File menu) above ``before`` (Quit)."""
        for action in (self.report_action, self.view_action, self.copy_action, self.list_action):
            menu.insertAction(before, action)
        menu.insertSeparator(before)

    def _ask(self, title: str, kind: str, suffix: str, write) -> None:
        folder = Path(self.window.settings.last_folder or Path.home())
        out, _ = QFileDialog.getSaveFileName(self.window, title, str(folder / f"kdviewer{suffix}"), kind)
        if out:
            write(out)

    # -- report -----------------------------------------------------------------------------------
    def write_report(self, out: str) -> threading.Thread | None:
        """Write a de-identified PDF of the study on screen from the predictions shown, on a
        background thread; ``report_written`` or ``export_failed`` says how it went."""
        # reportlab takes 0.5 s to import (measured): loaded on the first report, not at start-up
        from kdviewer.report import StudyResult

        model = self.window.model
        preds = [(role, model.prediction(role)) for role in ("student", "teacher")]
        preds = [(role, p) for role, p in preds if p is not None]
        if model.path is None or model.image is None or not preds or preds[0][0] != "student":
            self.export_failed.emit("Report: no scored image on screen yet")
            return None
        try:
            records = [prediction_record(model.path, p) for _, p in preds]
        except ValueError as exc:
            self.export_failed.emit(f"Report: {exc}")
            return None
        study = StudyResult(
            1,
            model.path,
            image=model.image,
            records=records,
            predictions=[p for _, p in preds],
            engines=[model.engines.get(role) for role, _ in preds],
            measurements=self.window.measure.summaries(),
        )
        focus = model.finding
        thread = threading.Thread(
            target=self._report_job,
            args=(study, model.model_image, Path(out), focus),
            name="ReportWriter",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()
        return thread

    def _report_job(self, study, model_image, out: Path, focus: str) -> None:
        from kdviewer.report import write_pdf  # reportlab: see write_report

        try:
            study.subject = audit.default_log().subject(model_image, study.path)[0]
        except Exception:  # noqa: BLE001 - the digest only labels the page
            log.warning("report: no audit digest for the study")
        try:
            write_pdf([study], out, focus=focus)
        except Exception as exc:  # noqa: BLE001 - reported in the window; the viewer carries on
            log.warning("report could not be written: %s", exc)
            self.export_failed.emit(
                f"Report: cannot write {out.name}: {getattr(exc, 'strerror', None) or exc}"
            )
            return
        audit.record_export(
            "report-pdf", subjects=[study.subject] if study.subject else [], output=out, source="viewer"
        )
        self.report_written.emit(str(out))

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for reports still being written (at shutdown, and in tests)."""
        for thread in self._threads:
            thread.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    # -- view ---------------------------------------------------------------------------------------
    def write_view_png(self, out: str) -> bool:
        """The image view as shown (window, zoom, heat map) to a PNG file."""
        ok = self.window.image_view.grab().save(out, "PNG")
        if not ok:
            self.export_failed.emit(f"Export view: cannot write {Path(out).name}")
            return False
        audit.record_export("view-png", output=out, source="viewer")
        return True

    def copy_view(self) -> None:
        """The image view as shown, to the clipboard."""
        QGuiApplication.clipboard().setPixmap(self.window.image_view.grab())
        audit.record_export("view-clipboard", source="viewer")

    # -- study list -----------------------------------------------------------------------------------
    def write_study_list_csv(self, out: str) -> bool:
        """The study list in the order shown (filters applied) with every score the viewer holds:
        the student's per finding (score, positive), the teacher's where it ran, their largest
        difference, read state and why a file could not be read. RFC 4180."""
        model = self.window.model
        head = ["file", "read", "error"]
        head += [f"student_{k}_{x}" for k in FINDING_KEYS for x in ("score", "positive")]
        head += [f"teacher_{k}_score" for k in FINDING_KEYS] + ["disagreement"]
        try:
            with open(out, "w", encoding="utf-8", newline="") as f:
                writer = csv.writer(f, lineterminator="\r\n")
                writer.writerow(head)
                for path in model.worklist():
                    student, teacher = model.list_scores.get(path), model.teacher_scores.get(path)
                    row = [path, path in model.read, model.failures.get(path, "")]
                    for k in FINDING_KEYS:
                        row += (
                            ["", ""]
                            if student is None
                            else [f"{student.scores[k]:.6f}", bool(student.positive[k])]
                        )
                    row += ["" if teacher is None else f"{teacher.scores[k]:.6f}" for k in FINDING_KEYS]
                    gap = disagreement(student, teacher)
                    writer.writerow(row + ["" if gap is None else f"{gap:.6f}"])
        except OSError as exc:
            self.export_failed.emit(
                f"Export study list: cannot write {Path(out).name}: {exc.strerror or exc}"
            )
            return False
        audit.record_export("study-list-csv", output=out, source="viewer")
        return True
