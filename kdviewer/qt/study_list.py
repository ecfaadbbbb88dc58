"""The study list: thumbnails, what each file is and the student's top finding once scored."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QMenu, QProgressBar, QVBoxLayout, QWidget

from kdviewer.core.findings import finding
from kdviewer.qt.triage_bar import TriageBar

PATH_ROLE = Qt.ItemDataRole.UserRole


def _describe(metadata) -> str:
    if metadata is None:
        return ""
    parts = [metadata.modality or metadata.source_format, metadata.view_position]
    return " · ".join(p for p in parts if p)


def top_finding(pred) -> tuple[str, float]:
    """The finding with the highest score: (key, score)."""
    key = max(pred.scores, key=lambda k: pred.scores[k])
    return key, float(pred.scores[key])


class StudyListPanel(QWidget):
    """A list of files; emits ``study_selected`` with the path the user moves to."""

    study_selected = Signal(str)
    read_toggled = Signal(str, bool)  # path, read: the user marked a study read or unread

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("studyListPanel")
        self.setMinimumWidth(150)
        self._rows: dict[str, int] = {}
        self._info: dict[str, dict] = {}
        self._scored: set[str] = set()
        self._thumbs: set[str] = set()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        self.triage = TriageBar()
        layout.addWidget(self.triage)
        self.list = QListWidget()
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._on_context_menu)
        self._read: set[str] = set()
        self.list.setIconSize(QSize(64, 64))
        self.list.setUniformItemSizes(True)
        self.list.setSpacing(1)
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.currentRowChanged.connect(self._on_current_row_changed)
        layout.addWidget(self.list, 1)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("scored %v / %m")
        self.progress.setMaximumHeight(16)
        self.progress.setVisible(False)
        layout.addWidget(self.progress)

    # -- content --------------------------------------------------------------------------------
    def set_studies(self, paths: list[str], current: str | None = None) -> None:
        """Show ``paths``; an entry already listed keeps its thumbnail and description (a file is
        read for its thumbnail once: an arrival must not blank the others). Scores and errors come
        again from the model."""
        kept = {
            path: (self.list.item(row).icon(), self._info[path]["desc"])
            for path, row in self._rows.items()
            if path in self._thumbs and not self._info[path]["error"]
        }
        self.list.blockSignals(True)
        self.list.clear()
        self._rows.clear()
        self._info.clear()
        self._scored.clear()
        self._thumbs.clear()
        placeholder = QPixmap(64, 64)
        placeholder.fill(QColor("#1c1f24"))
        for i, path in enumerate(paths):
            icon, desc = kept.get(path, (QIcon(placeholder), ""))
            if path in kept:
                self._thumbs.add(path)
            item = QListWidgetItem(icon, "")
            item.setData(PATH_ROLE, path)
            item.setSizeHint(QSize(160, 70))
            item.setToolTip(path)
            if path not in self._read:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.list.addItem(item)
            self._rows[path] = i
            self._info[path] = {"name": Path(path).name, "desc": desc, "finding": "scoring…", "error": None}
            self._refresh(path)
        if current in self._rows:
            self.list.setCurrentRow(self._rows[current])
        self.list.blockSignals(False)
        self.progress.setRange(0, len(paths))
        self.progress.setValue(0)
        self.progress.setVisible(len(paths) > 1)

    def paths(self) -> list[str]:
        return [self.list.item(i).data(PATH_ROLE) for i in range(self.list.count())]

    def _refresh(self, path: str) -> None:
        row = self._rows.get(path)
        if row is None:
            return
        info = self._info[path]
        lines = [info["name"]]
        if info["error"]:
            lines.append("unreadable")
            self.list.item(row).setForeground(QColor("#ef9a9a"))
            self.list.item(row).setToolTip(f"{path}\n{info['error']}")
        else:
            lines.append(info["desc"] or " ")
            lines.append(info["finding"])
        self.list.item(row).setText("\n".join(lines))

    def set_thumbnail(self, thumb) -> None:
        row = self._rows.get(thumb.path)
        if row is None:
            return
        self._thumbs.add(thumb.path)
        if thumb.error:
            self.set_error(thumb.path, thumb.error)
            return
        self.list.item(row).setIcon(QIcon(QPixmap.fromImage(thumb.image)))
        self._info[thumb.path]["desc"] = _describe(thumb.metadata)
        self._refresh(thumb.path)

    def set_score(self, path: str, pred) -> None:
        if path not in self._rows:
            return
        key, score = top_finding(pred)
        untrained = "" if getattr(pred, "trained", True) else " (untrained)"
        self._info[path]["finding"] = f"{finding(key).name} {score:.2f}{untrained}"
        self._mark_scored(path)
        self._refresh(path)

    def set_error(self, path: str, message: str) -> None:
        if path not in self._rows:
            return
        self._info[path]["error"] = message
        self._mark_scored(path)
        self._refresh(path)

    def _mark_scored(self, path: str) -> None:
        self._scored.add(path)
        self.progress.setValue(len(self._scored))
        if len(self._scored) >= len(self._rows):
            self.progress.setFormat("all %m scored")

    def item_text(self, path: str) -> str:
        return self.list.item(self._rows[path]).text()

    @property
    def thumbnail_count(self) -> int:
        return len(self._thumbs)

    @property
    def scored_count(self) -> int:
        return len(self._scored)

    # -- navigation -----------------------------------------------------------------------------
    def current_path(self) -> str | None:
        item = self.list.currentItem()
        return item.data(PATH_ROLE) if item is not None else None

    def select_path(self, path: str) -> None:
        """Highlight ``path`` without emitting ``study_selected``."""
        row = self._rows.get(path)
        if row is not None:
            self.list.blockSignals(True)
            self.list.setCurrentRow(row)
            self.list.blockSignals(False)

    def select_next(self) -> None:
        self._step(+1)

    def select_previous(self) -> None:
        self._step(-1)

    def _step(self, delta: int) -> None:
        rows = [r for r in range(self.list.count()) if not self.list.item(r).isHidden()]
        if rows:  # the next shown row in list order (hidden ones are filtered out by the triage bar)
            current = self.list.currentRow()
            after = [r for r in rows if r > current] if delta > 0 else [r for r in rows if r < current][::-1]
            if after:
                self.list.setCurrentRow(after[0])

    # -- triage ---------------------------------------------------------------------------------
    def apply_worklist(self, paths: list[str], counts: dict[str, int]) -> None:
        """Show ``paths`` in this order and hide the other entries; show the positives' counts."""
        self.triage.set_counts(counts)
        shown = [p for p in paths if p in self._rows]
        order = shown + [p for p in self.paths() if p not in set(shown)]
        current = self.current_path()
        self.list.blockSignals(True)
        if order != self.paths():
            items = {}
            while self.list.count():
                item = self.list.takeItem(0)
                items[item.data(PATH_ROLE)] = item
            for row, path in enumerate(order):
                self.list.addItem(items[path])
                self._rows[path] = row
        keep = set(shown)
        for path, row in self._rows.items():
            self.list.item(row).setHidden(path not in keep)
        if current in self._rows:
            self.list.setCurrentRow(self._rows[current])
        self.list.blockSignals(False)

    def set_read(self, path: str, read: bool) -> None:
        """Unread studies are shown in bold."""
        if read:
            self._read.add(path)
        else:
            self._read.discard(path)
        row = self._rows.get(path)
        if row is not None:
            font = self.list.item(row).font()
            font.setBold(not read)
            self.list.item(row).setFont(font)

    def is_read(self, path: str) -> bool:
        return path in self._read

    def _on_context_menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        path = item.data(PATH_ROLE)
        read = path in self._read
        menu = QMenu(self)
        action = menu.addAction("Mark as unread" if read else "Mark as read")
        action.triggered.connect(lambda: self.read_toggled.emit(path, not read))
        menu.popup(self.list.viewport().mapToGlobal(pos))

    def _on_current_row_changed(self, row: int) -> None:
        if row >= 0:
            self.study_selected.emit(self.list.item(row).data(PATH_ROLE))
