"""The triage bar above the study list: sort, filter, unread only, and positives per finding."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QVBoxLayout, QWidget

from kdviewer.core.findings import FINDINGS
from kdviewer.core.triage import SORTS, TriageView

_SHORT = {f.key: f.name.split()[-1][:4] for f in FINDINGS}  # Atel, Card, Cons, Edem, Effu


class TriageBar(QWidget):
    """Emits ``view_changed`` with the :class:`~kdviewer.core.triage.TriageView` the user chose."""

    view_changed = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("triageBar")
        self.sort_combo = QComboBox()
        self.sort_combo.setToolTip(
            "Order of the study list (from the scores already made; nothing is re-run)"
        )
        for key, label in SORTS.items():
            if key == "finding":
                for f in FINDINGS:
                    self.sort_combo.addItem(f"{f.name} score", ("finding", f.key))
            else:
                self.sort_combo.addItem(label[0].upper() + label[1:], (key, None))
        self.filter_combo = QComboBox()
        self.filter_combo.setToolTip("Show only the studies the student calls positive for a finding")
        self.filter_combo.addItem("All studies", None)
        for f in FINDINGS:
            self.filter_combo.addItem(f"Positive: {f.name}", f.key)
        self.unread_box = QCheckBox("Unread only")
        self.counts_label = QLabel("")
        self.counts_label.setObjectName("positiveCounts")
        self.counts_label.setToolTip("Studies the student calls positive, per finding")
        self.counts_label.setWordWrap(True)

        layout = QVBoxLayout(self)  # one control per row: the dock is narrow
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        for widget in (self.sort_combo, self.filter_combo, self.unread_box, self.counts_label):
            layout.addWidget(widget)
        self.sort_combo.currentIndexChanged.connect(self._on_changed)
        self.filter_combo.currentIndexChanged.connect(self._on_changed)
        self.unread_box.toggled.connect(self._on_changed)

    def view(self) -> TriageView:
        """The view the controls describe."""
        sort, key = self.sort_combo.currentData()
        return TriageView(
            sort=sort,
            finding=key or FINDINGS[0].key,
            positive_for=self.filter_combo.currentData(),
            unread_only=self.unread_box.isChecked(),
        )

    def set_counts(self, counts: dict[str, int]) -> None:
        """Show how many studies are positive per finding."""
        self.counts_label.setText(
            "Positives: " + " · ".join(f"{_SHORT.get(k, k)} {n}" for k, n in counts.items())
        )

    def _on_changed(self, *_args) -> None:
        self.view_changed.emit(self.view())
