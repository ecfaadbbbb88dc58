"""The scope banner: says why the image on screen is outside what the models were trained for.

It renders the viewer model's ``scope_changed`` event (:mod:`kdviewer.core.scope`): while an
out-of-scope image's scores are hidden, the banner names the reason, the findings panel is
hidden (the heat map is withheld by the model itself) and "Show anyway" asks the model to show
them (``ViewerModel.show_anyway``, which records the choice in the audit log). After that the
banner stays, as a reminder, without the button.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget


class ScopeBanner(QFrame):
    """A strip above the image; hidden while the image on screen is in scope."""

    show_anyway_clicked = Signal()

    def __init__(self, model, *, hide_when_out: list[QWidget] = (), parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("scopeBanner")
        self.setStyleSheet("#scopeBanner { background: #7a4b00; } #scopeBanner QLabel { color: white; }")
        self._model = model
        self._hidden_widgets = list(hide_when_out)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.button = QPushButton("Show anyway")
        self.button.setToolTip("Show the scores and heat maps of this image (recorded in the audit log)")
        self.button.clicked.connect(self.show_anyway_clicked.emit)
        self.show_anyway_clicked.connect(model.show_anyway)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.button)
        self.setVisible(False)
        model.events.scope_changed.connect(self._on_scope_changed)
        model.events.image_changed.connect(
            lambda _path, image: image is None and self._on_scope_changed(None, None, False)
        )

    def _on_scope_changed(self, _path, verdict, hidden: bool) -> None:
        out = verdict is not None and not verdict.in_scope
        if out:
            shown = "scores and heat maps hidden" if hidden else "scores shown at your request"
            self.label.setText(f"Outside what the models were trained for: {verdict.reason} — {shown}")
        self.button.setVisible(hidden)
        self.setVisible(out)
        for w in self._hidden_widgets:
            w.setVisible(not hidden)
