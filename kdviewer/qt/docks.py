"""Side panels as dock widgets, and a window size that fits the screen it opens on.

Each panel sits in a scroll area inside a QDockWidget: it can be closed (and brought back from
the View menu), resized against the image or floated, and a laptop screen never has to be as
tall or wide as the panel's content (it scrolls instead of pushing the window past the screen).
Which panels are shown and their sizes are saved with the window's state (QSettings).
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QTabWidget, QWidget

# The share of the screen a window takes when no size was saved (or the saved one no longer fits).
SCREEN_SHARE = 0.94
# Screen height (px) from which the scores and the telemetry panels sit one above the other.
TALL_SCREEN = 900


def panel_dock(title: str, panel: QWidget, object_name: str, *, scroll: bool = True) -> QDockWidget:
    """``panel`` in a closable, movable, floatable dock named ``object_name``, inside a frameless
    scroll area unless ``scroll`` is False (a panel that scrolls by itself, like a list).

    The object name is what :meth:`QMainWindow.saveState` records, so it must stay stable.
    """
    dock = QDockWidget(title)
    dock.setObjectName(object_name)
    if scroll:
        area = QScrollArea()
        area.setObjectName("panelScroll")
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        area.setWidget(panel)
        # never a horizontal scroll bar: the dock is at least as wide as the panel needs
        area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        panel.ensurePolished()
        area.setMinimumWidth(panel.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width())
        dock.setWidget(area)
    else:
        dock.setWidget(panel)
    dock.setFeatures(
        QDockWidget.DockWidgetFeature.DockWidgetClosable
        | QDockWidget.DockWidgetFeature.DockWidgetMovable
        | QDockWidget.DockWidgetFeature.DockWidgetFloatable
    )
    dock.toggleViewAction().setText(title)
    dock.toggleViewAction().setToolTip(f"Show or hide the {title.lower()} panel")
    return dock


def arrange_docks(window: QMainWindow, left: QDockWidget, right: QDockWidget, below: QDockWidget) -> None:
    """The default arrangement: ``left`` beside the image, ``right`` on the other side with ``below``
    under it, or, on a screen less than :data:`TALL_SCREEN` high, ``below`` as a tab behind ``right``
    (stacked there, neither would have room for its content)."""
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, left)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, right)
    screen = window.screen()
    if screen is None or screen.availableGeometry().height() >= TALL_SCREEN:
        window.splitDockWidget(right, below, Qt.Orientation.Vertical)
        window.resizeDocks([right, below], [350, 430], Qt.Orientation.Vertical)
    else:
        window.setTabPosition(Qt.DockWidgetArea.RightDockWidgetArea, QTabWidget.TabPosition.North)
        window.tabifyDockWidget(right, below)
        right.raise_()
    window.resizeDocks([left, right], [190, 380], Qt.Orientation.Horizontal)


def fit_size(wanted: QSize, available: QRect) -> QSize:
    """``wanted``, shrunk to :data:`SCREEN_SHARE` of the ``available`` screen area where larger."""
    return QSize(
        min(wanted.width(), int(available.width() * SCREEN_SHARE)),
        min(wanted.height(), int(available.height() * SCREEN_SHARE)),
    )


def restore_window(window: QMainWindow, geometry, state, default: QSize) -> None:
    """Restore saved geometry and dock state, or size ``window`` to ``default``; either way no larger
    than the screen it is on."""
    if geometry is None or not window.restoreGeometry(geometry):
        window.resize(default)
    screen = window.screen()
    if screen is not None:
        size = fit_size(window.size(), screen.availableGeometry())
        if size != window.size():
            window.resize(size)
    if state is not None:
        window.restoreState(state)
