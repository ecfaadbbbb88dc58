"""The window's actions (with their shortcuts), its menus, and the Help menu's two sheets."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QLabel, QMenu, QVBoxLayout, QWidget

from kdviewer import RESEARCH_NOTICE, __version__
from kdviewer.core.findings import FINDINGS

ABOUT_PACKAGES = ("PySide6-Essentials", "pyqtgraph", "numpy", "pydicom", "onnxruntime", "torch", "grad-cam")


@dataclass
class ViewerActions:
    """Every action of the window; shortcuts work wherever the focus is in the window."""

    open: QAction
    open_folder: QAction
    next: QAction
    previous: QAction
    reset: QAction
    zoom_in: QAction
    zoom_out: QAction
    zoom_actual: QAction
    invert: QAction
    overlay: QAction
    teacher: QAction
    identifiers: QAction
    tags: QAction
    export: QAction
    quit: QAction
    shortcuts: QAction
    about: QAction
    findings: list[QAction] = field(default_factory=list)

    def with_shortcuts(self) -> list[QAction]:
        """The actions that have a keyboard shortcut, in menu order."""
        every = [
            self.open,
            self.open_folder,
            self.next,
            self.previous,
            self.reset,
            self.zoom_in,
            self.zoom_out,
            self.zoom_actual,
            self.invert,
            self.overlay,
            self.teacher,
            self.tags,
            *self.findings,
            self.shortcuts,
            self.quit,
        ]
        return [a for a in every if a.shortcuts()]


def add_menu_actions(
    window: QWidget, menu: QMenu, entries: Sequence[tuple[str, str, Callable[[], object]]]
) -> list[QAction]:
    """One action per ``(text, shortcut, slot)``, in ``menu`` and on ``window`` (so the shortcut
    works wherever the focus is in the window)."""
    actions = []
    for text, key, slot in entries:
        a = QAction(text, window)
        a.setShortcut(QKeySequence(key))
        a.triggered.connect(slot)
        window.addAction(a)
        menu.addAction(a)
        actions.append(a)
    return actions


def build_actions(window: QWidget, slots) -> ViewerActions:
    """Create the actions on ``window``; ``slots`` maps each action's name to what it triggers."""

    def action(name, text, shortcuts=(), checkable=False, tip=""):
        a = QAction(text, window)
        if shortcuts:
            a.setShortcuts([QKeySequence(s) for s in shortcuts])
        a.setCheckable(checkable)
        if tip:
            a.setToolTip(tip)
        a.triggered.connect(slots[name])
        window.addAction(a)
        return a

    acts = ViewerActions(
        open=action("open", "&Open…", [QKeySequence.StandardKey.Open]),
        open_folder=action("open_folder", "Open &Folder…", ["Ctrl+Shift+O"]),
        next=action("next", "&Next study", ["PgDown", "N"]),
        previous=action("previous", "&Previous study", ["PgUp", "P"]),
        reset=action("reset", "&Reset view", ["R", "Home"]),
        zoom_in=action("zoom_in", "Zoom &in", ["+", "="]),
        zoom_out=action("zoom_out", "Zoom &out", ["-"]),
        zoom_actual=action("zoom_actual", "&Actual pixels (1:1)", ["Ctrl+0", "Z"]),
        invert=action("invert", "&Invert", ["I"], checkable=True),
        overlay=action("overlay", "&Heat map overlay", ["H"]),
        teacher=action("teacher", "Compare with &teacher", ["T"], checkable=True),
        identifiers=action(
            "identifiers",
            "Show patient &identifiers",
            [],
            checkable=True,
            tip="Patient identifiers are hidden by default",
        ),
        tags=action("tags", "DICOM &tags…", ["Ctrl+D"]),
        export=action("export", "Export telemetry &CSV…"),
        quit=action("quit", "&Quit", [QKeySequence.StandardKey.Quit]),
        shortcuts=action("shortcuts", "&Keyboard shortcuts", ["F1", "?"]),
        about=action("about", "&About kdviewer"),
    )
    for i, f in enumerate(FINDINGS, start=1):
        a = QAction(f.name, window)
        a.setShortcut(QKeySequence(str(i)))
        a.triggered.connect(lambda _=False, k=f.key: slots["finding"](k))
        window.addAction(a)
        acts.findings.append(a)
    return acts


def build_menus(menu_bar, acts: ViewerActions) -> QMenu:
    """File, View, Findings, Models and Help menus; returns the (empty) Open Recent menu."""
    m = menu_bar.addMenu("&File")
    m.addAction(acts.open)
    m.addAction(acts.open_folder)
    recent = m.addMenu("Open &Recent")
    m.addSeparator()
    m.addAction(acts.export)
    m.addSeparator()
    m.addAction(acts.quit)
    m = menu_bar.addMenu("&View")
    for a in (
        acts.next,
        acts.previous,
        None,
        acts.reset,
        acts.zoom_in,
        acts.zoom_out,
        acts.zoom_actual,
        acts.invert,
        None,
        acts.overlay,
        None,
        acts.identifiers,
        acts.tags,
    ):
        m.addSeparator() if a is None else m.addAction(a)
    m = menu_bar.addMenu("F&indings")
    for a in acts.findings:
        m.addAction(a)
    m = menu_bar.addMenu("&Models")
    m.addAction(acts.teacher)
    m = menu_bar.addMenu("&Help")
    m.addAction(acts.shortcuts)
    m.addAction(acts.about)
    return recent


def fill_recent_menu(
    menu: QMenu, recent: list[str], open_path: Callable[[str], None], clear: Callable[[], None]
) -> None:
    """The Open Recent menu: one entry per file (full path in the tooltip), then Clear."""
    menu.clear()
    for path in recent:
        a = menu.addAction(Path(path).name)
        a.setToolTip(path)
        a.triggered.connect(lambda _=False, p=path: open_path(p))
    if recent:
        menu.addSeparator()
        menu.addAction("Clear", clear)
    menu.setEnabled(bool(recent))


def ask_for_files(parent: QWidget, folder: str) -> list[str]:
    """The Open dialog, starting in ``folder``; [] when cancelled."""
    paths, _ = QFileDialog.getOpenFileNames(
        parent, "Open images", folder, "Images (*.dcm *.dicom *.png *.jpg *.jpeg);;All files (*)"
    )
    return list(paths)


def ask_for_folder(parent: QWidget, folder: str) -> list[str]:
    """The Open Folder dialog, starting in ``folder``; [] when cancelled."""
    chosen = QFileDialog.getExistingDirectory(parent, "Open folder", folder)
    return [chosen] if chosen else []


def shortcut_sheet(acts: ViewerActions) -> str:
    """An HTML table of every action with a shortcut (the Help menu's sheet)."""
    rows = []
    for a in acts.with_shortcuts():
        keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in a.shortcuts())
        rows.append(
            f"<tr><td style='padding-right:18px'>{a.text().replace('&', '')}</td><td><b>{keys}</b></td></tr>"
        )
    rows.append("<tr><td style='padding-right:18px'>Window / level</td><td><b>left drag</b></td></tr>")
    rows.append(
        "<tr><td style='padding-right:18px'>Pan</td><td><b>middle drag, Shift+left drag</b></td></tr>"
    )
    rows.append("<tr><td style='padding-right:18px'>Zoom</td><td><b>wheel, right drag</b></td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def about_text(engines: dict) -> str:
    """Versions, the models in use with their weights' SHA-256, and the research-use notice."""
    lines = [
        f"<h3>kdviewer {__version__}</h3>",
        f"<p><b>{RESEARCH_NOTICE}</b></p>",
        "<p>Python "
        + platform.python_version()
        + f" on {sys.platform}<br>"
        + "<br>".join(f"{p} {_version(p)}" for p in ABOUT_PACKAGES)
        + "</p>",
    ]
    models = []
    for role, engine in sorted(engines.items()):
        card = getattr(engine, "card", None)
        if card is not None:
            models.append(
                f"{role}: {card.name} ({card.architecture}, v{card.version}"
                f"{'' if card.trained else ', UNTRAINED'})<br>"
                f"<span style='font-family:monospace'>sha256 {card.weights_sha256}</span>"
            )
    lines.append("<p>" + ("<br>".join(models) if models else "No model loaded yet.") + "</p>")
    return "".join(lines)


def show_sheet(parent: QWidget, title: str, html: str) -> QDialog:
    """A non-modal dialog showing ``html``; closed with Escape or its button."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    layout = QVBoxLayout(dialog)
    label = QLabel(html)
    label.setObjectName("sheetText")
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setWordWrap(True)
    layout.addWidget(label)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.close)
    layout.addWidget(buttons)
    dialog.show()
    return dialog
