"""The dark theme: radiology reading rooms are dim, and so is the viewer."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

BACKGROUND = "#15171a"
PANEL = "#1c1f24"
BORDER = "#2c3036"
TEXT = "#e8eaed"
MUTED = "#9aa0a6"
ACCENT = "#4fc3f7"

STYLESHEET = f"""
QWidget {{ font-size: 9pt; }}
QMainWindow, QDialog {{ background: {BACKGROUND}; }}
QToolBar {{ background: {PANEL}; border: none; border-bottom: 1px solid {BORDER};
    spacing: 2px; padding: 3px; }}
QToolBar QToolButton {{ color: {TEXT}; padding: 3px 4px; border-radius: 3px; }}
QToolBar QToolButton:hover {{ background: #2a2f36; }}
QToolBar QToolButton:checked {{ background: #2d3e4d; color: {ACCENT}; }}
QStatusBar {{ background: {PANEL}; color: {MUTED}; border-top: 1px solid {BORDER}; }}
QStatusBar QLabel {{ color: {MUTED}; padding: 0 6px; }}
QLabel#statusNotice {{ color: #ffcc80; font-weight: 600; }}
QSplitter::handle {{ background: {BORDER}; }}
QSplitter::handle:horizontal {{ width: 1px; }}
QSplitter::handle:vertical {{ height: 1px; }}
#studyListPanel, #scoresPanel, #telemetryPanel {{ background: {PANEL}; }}
QScrollArea#panelScroll {{ background: {PANEL}; border: none; }}
QDockWidget {{ color: {MUTED}; font-weight: 600; }}
QDockWidget::title {{ background: {PANEL}; padding: 3px 6px; border-bottom: 1px solid {BORDER}; }}
QMainWindow > QTabBar::tab {{ background: {BACKGROUND}; color: {MUTED}; padding: 4px 12px;
    border: 1px solid {BORDER}; }}
QMainWindow > QTabBar::tab:selected {{ background: {PANEL}; color: {TEXT}; border-bottom-color: {ACCENT}; }}
QMainWindow::separator {{ background: {BORDER}; width: 3px; height: 3px; }}
QMainWindow::separator:hover {{ background: #2f5673; }}
QToolBar QToolButton#qt_toolbar_ext_button {{ background: #2a2f36; }}
QLabel#panelTitle {{ color: {TEXT}; font-size: 10pt; font-weight: 600; letter-spacing: 0.5px; }}
QLabel#hint {{ color: {MUTED}; font-size: 8pt; }}
QLabel#metric {{ color: {TEXT}; font-family: "DejaVu Sans Mono", monospace; }}
QLabel#researchNotice {{ color: #ffcc80; background: #2b2418; border: 1px solid #5d4a26; border-radius: 4px;
    padding: 5px; font-weight: 600; }}
QLabel#untrainedBanner {{ color: #1b1300; background: #ffb300; font-weight: 700; padding: 3px; }}
#metadataStrip {{ background: {PANEL}; border-top: 1px solid {BORDER}; }}
#metadataStrip QLabel {{ color: #bdc1c6; font-family: "DejaVu Sans Mono", monospace; font-size: 8pt; }}
#metadataStrip QLabel#identifiers {{ color: {MUTED}; font-style: italic; }}
#findingRow {{ border-radius: 4px; }}
#findingRow:hover {{ background: #242a31; }}
#findingRow[selected="true"] {{ background: #23384a; border: 1px solid #2f5673; }}
QLabel#disagreement {{ color: #ffb74d; font-size: 12pt; font-weight: 700; }}
QListWidget {{ background: {BACKGROUND}; border: 1px solid {BORDER}; color: {TEXT}; }}
QListWidget::item {{ padding: 2px; border-bottom: 1px solid #202328; }}
QListWidget::item:selected {{ background: #23384a; color: {TEXT}; }}
QComboBox, QLineEdit {{ background: #23272d; color: {TEXT}; border: 1px solid {BORDER}; border-radius: 3px;
    padding: 2px 6px; }}
QPushButton {{ background: #23272d; color: {TEXT}; border: 1px solid {BORDER}; border-radius: 3px;
    padding: 3px 10px; }}
QPushButton:hover {{ background: #2a2f36; }}
QPushButton:checked {{ background: #2d3e4d; color: {ACCENT}; }}
QProgressBar {{ background: #23272d; border: 1px solid {BORDER}; border-radius: 3px; color: {TEXT};
    text-align: center; font-size: 8pt; }}
QProgressBar::chunk {{ background: #2f5673; border-radius: 3px; }}
QTreeWidget {{ background: {BACKGROUND}; alternate-background-color: #1a1d21; color: {TEXT};
    border: 1px solid {BORDER}; }}
QHeaderView::section {{ background: {PANEL}; color: {MUTED}; border: none; padding: 3px; }}
QMenuBar {{ background: {PANEL}; color: {TEXT}; }}
QMenuBar::item:selected, QMenu::item:selected {{ background: #2d3e4d; }}
QMenu {{ background: {PANEL}; color: {TEXT}; border: 1px solid {BORDER}; }}
QCheckBox {{ color: {TEXT}; }}
QToolTip {{ background: #2a2f36; color: {TEXT}; border: 1px solid {BORDER}; }}
"""


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style, a dark palette and the panel stylesheet; pyqtgraph matches the panels."""
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: BACKGROUND,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BACKGROUND,
        QPalette.ColorRole.AlternateBase: PANEL,
        QPalette.ColorRole.ToolTipBase: PANEL,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: "#23272d",
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.BrightText: "#ff5252",
        QPalette.ColorRole.Highlight: "#2f5673",
        QPalette.ColorRole.HighlightedText: TEXT,
        QPalette.ColorRole.PlaceholderText: MUTED,
    }
    for role, color in roles.items():
        pal.setColor(role, QColor(color))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#5f6368"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#5f6368"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#5f6368"))
    app.setPalette(pal)
    app.setStyleSheet(STYLESHEET)
    pg.setConfigOptions(background=PANEL, foreground=MUTED, antialias=True, imageAxisOrder="row-major")
