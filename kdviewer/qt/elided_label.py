"""A one-line label that shortens its text to the width it gets instead of widening the window."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QSizePolicy

# What a label may ask for at least: a few characters, so a long file name, preset or
# identifier can never push the window past the screen.
MIN_CHARS = 6


class ElidedLabel(QLabel):
    """Plain text drawn elided ("…") to the label's width; the full text is its tooltip when cut.

    ``text()`` returns the full text. The label asks for its full width (``sizeHint``) but accepts
    as little as :data:`MIN_CHARS` characters (``minimumSizeHint``), so layouts shrink it rather
    than grow the window.
    """

    def __init__(self, text: str = "", parent=None, *, elide: Qt.TextElideMode = Qt.TextElideMode.ElideRight):
        super().__init__(parent)
        self._elide = elide
        self._tooltip = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt naming)
        super().setText(text)
        self._refresh_tooltip()

    def set_tooltip_text(self, tooltip: str) -> None:
        """A tooltip shown always (the full text is added to it when the text is cut)."""
        self._tooltip = tooltip
        self._refresh_tooltip()

    def elided_text(self) -> str:
        """The text as drawn at the current width."""
        return self.fontMetrics().elidedText(super().text(), self._elide, max(0, self.contentsRect().width()))

    @property
    def is_elided(self) -> bool:
        return self.elided_text() != super().text()

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        fm = self.fontMetrics()
        m = self.contentsMargins()
        width = min(fm.horizontalAdvance("M" * MIN_CHARS), fm.horizontalAdvance(super().text()) + 2)
        return QSize(width + m.left() + m.right(), fm.height() + m.top() + m.bottom())

    def sizeHint(self) -> QSize:  # noqa: N802
        fm = self.fontMetrics()
        m = self.contentsMargins()
        return QSize(
            fm.horizontalAdvance(super().text()) + 2 + m.left() + m.right(),
            fm.height() + m.top() + m.bottom(),
        )

    def resizeEvent(self, event):  # noqa: N802
        super().resizeEvent(event)
        self._refresh_tooltip()

    def paintEvent(self, _event):  # noqa: N802
        painter = QPainter(self)
        self.style().drawItemText(
            painter,
            self.contentsRect(),
            int(self.alignment()),
            self.palette(),
            self.isEnabled(),
            self.elided_text(),
            self.foregroundRole(),
        )
        painter.end()

    def _refresh_tooltip(self) -> None:
        full = super().text()
        parts = [p for p in (self._tooltip, full if self.is_elided else "") if p]
        super().setToolTip("\n".join(parts))
