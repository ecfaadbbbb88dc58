"""A searchable view of every DICOM attribute of the open file (pixel data excluded)."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout

from kdviewer.core.image import IDENTIFYING_KEYWORDS

HIDDEN = "‹hidden›"
MAX_VALUE_CHARS = 160


def _value_text(elem) -> str:
    if elem.VR in ("OB", "OW", "OF", "OD", "OL", "UN") and elem.value is not None:
        try:
            return f"<{len(elem.value)} bytes>"
        except TypeError:
            return "<binary>"
    text = str(elem.value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


class TagViewerDialog(QDialog):
    """Tree of tags with a filter box; identifying values are masked unless shown on purpose."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("DICOM tags")
        self.resize(760, 640)
        self._dataset = None
        self._show_identifiers = False
        layout = QVBoxLayout(self)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Search tag, keyword or value…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._on_filter_changed)
        layout.addWidget(self.filter_edit)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        layout.addWidget(self.tree, 1)
        self.info = QLabel("")
        self.info.setObjectName("hint")
        layout.addWidget(self.info)

    def set_dataset(self, dataset, show_identifiers: bool = False, title: str = "") -> None:
        self._dataset = dataset
        self._show_identifiers = show_identifiers
        if title:
            self.setWindowTitle(f"DICOM tags — {title}")
        self.tree.clear()
        if dataset is None:
            self.info.setText("Not a DICOM file: no tags to show.")
            return
        self._add(dataset, self.tree.invisibleRootItem())
        for col in range(3):
            self.tree.resizeColumnToContents(col)
        self.info.setText(
            "Patient identifiers are hidden." if not show_identifiers else "Patient identifiers are shown."
        )
        self._on_filter_changed(self.filter_edit.text())

    def _add(self, dataset, parent: QTreeWidgetItem) -> None:
        for elem in dataset:
            if elem.tag == 0x7FE00010:  # pixel data
                continue
            keyword = elem.keyword or elem.name
            if elem.VR == "SQ":
                value = f"<sequence of {len(elem.value)} item(s)>"
            elif keyword in IDENTIFYING_KEYWORDS and not self._show_identifiers:
                value = HIDDEN
            else:
                value = _value_text(elem)
            tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
            item = QTreeWidgetItem([tag, keyword, elem.VR, value])
            parent.addChild(item)
            if elem.VR == "SQ":
                for i, child in enumerate(elem.value, start=1):
                    sub = QTreeWidgetItem([f"Item {i}", "", "", ""])
                    item.addChild(sub)
                    self._add(child, sub)

    def visible_rows(self) -> list[tuple[str, str, str]]:
        """(tag, keyword, value) of the top-level rows the filter leaves visible."""
        root = self.tree.invisibleRootItem()
        return [
            (root.child(i).text(0), root.child(i).text(1), root.child(i).text(3))
            for i in range(root.childCount())
            if not root.child(i).isHidden()
        ]

    def _on_filter_changed(self, text: str) -> None:
        needle = text.strip().lower()

        def apply(item: QTreeWidgetItem) -> bool:
            own = not needle or any(needle in item.text(c).lower() for c in range(4))
            child_hit = False
            for i in range(item.childCount()):
                child_hit = apply(item.child(i)) or child_hit
            visible = own or child_hit
            item.setHidden(not visible)
            if needle and child_hit:
                item.setExpanded(True)
            return visible

        root = self.tree.invisibleRootItem()
        for i in range(root.childCount()):
            apply(root.child(i))
