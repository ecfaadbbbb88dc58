"""The status bar: models' state, a busy indicator, cursor, window, zoom, the research notice."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from kdviewer import RESEARCH_NOTICE
from kdviewer.qt.scores_panel import ROLE_TITLES


def models_summary(model) -> tuple[str, str]:
    """(status text, warning banner) for a :class:`~kdviewer.core.viewer_model.ViewerModel`'s models."""
    parts = []
    for role in model.active_roles():
        if role in model.unavailable:
            parts.append(f"{ROLE_TITLES[role]}: unavailable")
        elif role not in model.wanted:
            parts.append(f"{ROLE_TITLES[role]}: waiting")
        elif role not in model.engines:
            parts.append(f"{ROLE_TITLES[role]}: loading…")
        else:
            parts.append(f"{ROLE_TITLES[role]}: {model.engines[role].status.state}")
    loaded = [r for r in model.active_roles() if r in model.engines]
    untrained = [ROLE_TITLES[r] for r in loaded if model.engines[r].status.state == "untrained"]
    failed = [ROLE_TITLES[r] for r in loaded if not model.usable(r)]
    banner = []
    if untrained:
        banner.append(
            f"{' and '.join(untrained)}: UNTRAINED (random weights) — scores and heat maps are meaningless"
        )
    if failed:
        banner.append(f"{' and '.join(failed)}: failed self-test — not used")
    return "   ".join(parts), "   ·   ".join(banner)


class ViewerStatusBar(QStatusBar):
    """Messages on the left (cleared when the next image comes); fixed readouts on the right."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.models_label = QLabel("Loading models…")
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)  # indeterminate: a slow heat-map method is running
        self.busy_bar.setMaximumWidth(90)
        self.busy_bar.setMaximumHeight(14)
        self.busy_bar.setVisible(False)
        self.cursor_label = QLabel("")
        self.window_label = QLabel("")
        self.zoom_label = QLabel("")
        notice = QLabel(RESEARCH_NOTICE)
        notice.setObjectName("statusNotice")
        self.addWidget(self.models_label, 1)
        for w in (self.busy_bar, self.cursor_label, self.window_label, self.zoom_label, notice):
            self.addPermanentWidget(w)

    def show_cursor(self, info) -> None:
        self.cursor_label.setText("" if info is None else "x {}  y {}  value {:g}".format(*info))

    def show_window(self, center: float, width: float) -> None:
        self.window_label.setText(f"C {center:.0f}  W {width:.0f}")

    def show_zoom(self, level: float) -> None:
        self.zoom_label.setText(f"zoom {100 * level:.0f} %")
        self.zoom_label.setToolTip("screen pixels per image pixel; Ctrl+0 or Z: actual pixels (100 %)")

    def show_busy(self, text: str) -> None:
        self.busy_bar.setVisible(bool(text))
        self.busy_bar.setToolTip(text)
