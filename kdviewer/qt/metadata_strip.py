"""One line under the image: what the file is, with patient identifiers hidden by default."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QWidget

from kdviewer.core.image import IDENTIFYING_FIELDS
from kdviewer.qt.elided_label import ElidedLabel

NAME_WIDTH = 260  # px of the strip a file name may take


def describe_metadata(meta, path: str | None = None) -> list[str]:
    """Non-identifying facts in reading order: modality, view, body part, date, size, encoding."""
    parts = []
    if path:
        parts.append(Path(path).name)
    parts.append(meta.modality or meta.source_format)
    for v in (meta.view_position, meta.body_part, meta.study_date):
        if v:
            parts.append(str(v))
    parts.append(f"{meta.cols} × {meta.rows}")
    if meta.bits_stored:
        parts.append(f"{meta.bits_stored}-bit")
    if meta.transfer_syntax:
        parts.append(meta.transfer_syntax)
    if meta.lossy_compression is not None:
        parts.append("lossy" if meta.lossy_compression else "lossless")
    return parts


def describe_identifiers(meta) -> list[str]:
    out = []
    for key in IDENTIFYING_FIELDS:
        value = getattr(meta, key, None)
        if value:
            out.append(f"{key.replace('_', ' ')}: {value}")
    return out


class MetadataStrip(QWidget):
    """What the file is, elided to the window's width (a long name or identifier never widens it)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("metadataStrip")
        self._meta = None
        self._path = None
        self._show_identifiers = False
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 3, 8, 3)
        self.label = ElidedLabel("")
        self.identifiers = ElidedLabel("")
        self.identifiers.setObjectName("identifiers")
        self.identifiers.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.identifiers)

    def resizeEvent(self, event):  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self._share_width()

    def _share_width(self) -> None:
        """The description first; identifiers take what it leaves, and at least 40 % when both are long."""
        layout = self.layout()
        m = layout.contentsMargins()
        room = self.width() - m.left() - m.right() - layout.spacing()
        wanted = max(room - self.label.sizeHint().width(), room * 2 // 5)
        self.identifiers.setMaximumWidth(max(self.identifiers.minimumSizeHint().width(), wanted))

    def set_metadata(self, meta, path: str | None = None) -> None:
        self._meta, self._path = meta, path
        self._refresh()

    def set_show_identifiers(self, on: bool) -> None:
        self._show_identifiers = bool(on)
        self._refresh()

    @property
    def text(self) -> str:
        return (self.label.text() + " " + self.identifiers.text()).strip()

    def _refresh(self) -> None:
        if self._meta is None:
            self.label.setText("")
            self.identifiers.setText("")
            return
        parts = describe_metadata(self._meta)
        if self._path:  # a long name keeps its start and extension and leaves room for the facts
            name = Path(self._path).name
            parts.insert(
                0, self.label.fontMetrics().elidedText(name, Qt.TextElideMode.ElideMiddle, NAME_WIDTH)
            )
        self.label.setText("  ·  ".join(parts))
        self.label.set_tooltip_text(self._path or "")
        if self._show_identifiers:
            ids = describe_identifiers(self._meta)
            self.identifiers.setText("  ·  ".join(ids) if ids else "no identifiers in file")
        else:
            self.identifiers.setText("identifiers hidden")
        self._share_width()
