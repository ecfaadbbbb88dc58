"""Scores: student and teacher side by side per finding, with thresholds and disagreements."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kdviewer import RESEARCH_NOTICE
from kdviewer.core.findings import FINDINGS

ROLES = ("student", "teacher")
ROLE_TITLES = {"student": "Student", "teacher": "Teacher"}
ROLE_COLORS = {"student": "#4fc3f7", "teacher": "#ffb74d"}
POSITIVE_COLOR = QColor("#ef5350")
NEGATIVE_COLOR = QColor("#66bb6a")
STATE_LABELS = {
    "ok": ("", ""),
    "untrained": ("⚠ UNTRAINED — random weights, scores are meaningless", "#ffb300"),
    "selftest_failed": ("✖ FAILED SELF-TEST — not used", "#ef5350"),
    "error": ("ERROR — not used", "#ef5350"),
}


class ScoreBar(QWidget):
    """One model's score for one finding: a bar, the card's threshold as a tick, the call."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.score: float | None = None
        self.threshold: float | None = None
        self.positive: bool | None = None
        self.placeholder = "—"
        self.setMinimumSize(90, 26)  # two bars and the names fit a laptop's side panel
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_value(self, score: float | None, threshold: float | None, positive: bool | None) -> None:
        self.score, self.threshold, self.positive = score, threshold, positive
        if score is None:
            self.setToolTip("")
        else:
            call = "positive" if positive else "negative"
            self.setToolTip(f"score {score:.3f}, threshold {threshold:.3f} (model card) → {call}")
        self.update()

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.set_value(None, None, None)

    @property
    def text(self) -> str:
        if self.score is None:
            return self.placeholder
        return f"{self.score:.2f} {'POS' if self.positive else 'neg'}"

    def paintEvent(self, _event):  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = self.rect().adjusted(1, 4, -1, -4)
        text_w = 62
        track = QRectF(r.left(), r.top() + 4, max(10, r.width() - text_w - 6), r.height() - 8)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#2b3038"))
        p.drawRoundedRect(track, 3, 3)
        if self.score is not None:
            fill = QRectF(track)
            fill.setWidth(track.width() * min(1.0, max(0.0, self.score)))
            color = QColor(POSITIVE_COLOR if self.positive else NEGATIVE_COLOR)
            color.setAlpha(210)
            p.setBrush(color)
            p.drawRoundedRect(fill, 3, 3)
            if self.threshold is not None:
                x = track.left() + track.width() * min(1.0, max(0.0, self.threshold))
                p.setPen(QPen(QColor("#e8eaed"), 2))
                p.drawLine(int(x), int(track.top()) - 3, int(x), int(track.bottom()) + 3)
        text_rect = QRectF(track.right() + 6, r.top(), text_w, r.height())
        font = QFont(self.font())
        font.setBold(bool(self.positive))
        p.setFont(font)
        p.setPen(QColor("#e8eaed") if self.score is not None else QColor("#80868b"))
        p.drawText(text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, self.text)
        p.end()


class _FindingRow(QFrame):
    clicked = Signal(str)

    def __init__(self, key: str, parent=None):
        super().__init__(parent)
        self.key = key
        self.setObjectName("findingRow")
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def mousePressEvent(self, event):  # noqa: N802
        self.clicked.emit(self.key)
        super().mousePressEvent(event)


class ScoresPanel(QWidget):
    """Formats the predictions it is given; owns no model."""

    finding_selected = Signal(str)
    teacher_toggled = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("scoresPanel")
        self._selected: str | None = None
        self._rows: dict[str, _FindingRow] = {}
        self.bars: dict[tuple[str, str], ScoreBar] = {}
        self.disagreement: dict[str, QLabel] = {}
        self.model_labels: dict[str, QLabel] = {}
        self.state_labels: dict[str, QLabel] = {}
        self.predictions: dict[str, object] = {}

        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 8)
        outer.setSpacing(6)

        self.teacher_checkbox = QCheckBox("Compare with teacher")
        self.teacher_checkbox.setToolTip("Run the DenseNet-121 teacher too (loaded in the background)")
        self.teacher_checkbox.toggled.connect(self.teacher_toggled)
        outer.addWidget(self.teacher_checkbox)  # the dock's title says "Findings"

        for role in ROLES:
            name = QLabel(f"<b style='color:{ROLE_COLORS[role]}'>{ROLE_TITLES[role]}</b> · loading…")
            name.setObjectName(f"{role}ModelLabel")
            name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            name.setWordWrap(True)
            state = QLabel("")
            state.setObjectName("stateLabel")
            state.setWordWrap(True)
            state.setVisible(False)
            self.model_labels[role] = name
            self.state_labels[role] = state
            outer.addWidget(name)
            outer.addWidget(state)

        grid_host = QWidget()
        grid = QGridLayout(grid_host)
        grid.setContentsMargins(0, 4, 0, 4)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(2)
        for col, text in enumerate(("", "Student", "Teacher", "")):
            h = QLabel(text)
            h.setObjectName("columnHeader")
            if text:
                h.setStyleSheet(f"color:{ROLE_COLORS[text.lower()]}; font-weight:600;")
            grid.addWidget(h, 0, col)
        name_width = (
            max(
                self.fontMetrics().horizontalAdvance(f"{i}   {f.name}")
                for i, f in enumerate(FINDINGS, start=1)
            )
            + 6
        )
        for i, f in enumerate(FINDINGS, start=1):
            row = _FindingRow(f.key)
            row.clicked.connect(self._on_row_clicked)
            row_layout = QHBoxLayout(row)
            row_layout.setContentsMargins(6, 2, 6, 2)
            label = QLabel(f"<span style='color:#80868b'>{i}</span>&nbsp;&nbsp;{f.name}")
            label.setMinimumWidth(name_width)  # the same in every row, so the bars line up
            row_layout.addWidget(label)
            for role in ROLES:
                bar = ScoreBar()
                self.bars[(role, f.key)] = bar
                row_layout.addWidget(bar, 1)
            marker = QLabel("")
            marker.setObjectName("disagreement")
            marker.setFixedWidth(18)
            marker.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.disagreement[f.key] = marker
            row_layout.addWidget(marker)
            self._rows[f.key] = row
            grid.addWidget(row, i, 0, 1, 4)
        outer.addWidget(grid_host)

        legend = QLabel(
            "Bar: score · white tick: the model card's threshold · "
            "<span style='color:#ffb74d'>≠</span>: student and teacher disagree"
        )
        legend.setObjectName("hint")
        legend.setWordWrap(True)
        outer.addWidget(legend)

        self.notice = QLabel(RESEARCH_NOTICE)
        self.notice.setObjectName("researchNotice")
        self.notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.notice.setWordWrap(True)
        outer.addWidget(self.notice)
        outer.addStretch(1)
        self.set_teacher_enabled(False)

    # -- model state ---------------------------------------------------------------------------
    def set_model(self, role: str, engine) -> None:
        """Show the loaded engine's name, version, weights hash, runtime and status."""
        card = engine.card
        runtime = getattr(engine, "runtime_name", "")
        precision = getattr(engine, "precision", "")
        if runtime and precision:
            runtime = f"{runtime} {precision}"  # which graph ran: "onnxruntime int8"
        text = (
            f"<b style='color:{ROLE_COLORS[role]}'>{ROLE_TITLES[role]}</b> · {card.name} · "
            f"{card.architecture} · v{card.version} · "
            f"<span style='font-family:monospace'>sha256 {card.weights_sha256[:12]}</span>"
            + (f" · {runtime}" if runtime else "")
        )
        self.model_labels[role].setText(text)
        self.model_labels[role].setToolTip(f"weights SHA-256: {card.weights_sha256}\n{engine.status.message}")
        self.set_state(role, engine.status.state, engine.status.message)

    def set_state(self, role: str, state: str, message: str = "") -> None:
        """Mark a model untrained / failed; the engine's own message goes in the tooltip."""
        label = self.state_labels[role]
        if state == "ok":
            label.setVisible(False)
            return
        text, color = STATE_LABELS.get(state, (state.upper(), "#ef5350"))
        label.setText(f"<span style='color:{color}; font-weight:600'>{text}</span>")
        label.setToolTip(message)
        label.setVisible(True)

    def set_model_unavailable(self, role: str, reason: str) -> None:
        self.model_labels[role].setText(
            f"<b style='color:{ROLE_COLORS[role]}'>{ROLE_TITLES[role]}</b> · unavailable: "
            f"<span style='color:#9aa0a6'>{reason}</span>"
        )
        self.set_state(role, "error", reason)
        for f in FINDINGS:
            self.bars[(role, f.key)].set_placeholder("n/a")

    def set_teacher_available(self, available: bool, reason: str = "") -> None:
        self.teacher_checkbox.setEnabled(available)
        self.teacher_checkbox.setToolTip(
            "Run the DenseNet-121 teacher too (loaded in the background)" if available else reason
        )
        if not available:
            self.set_model_unavailable("teacher", reason)

    def set_teacher_enabled(self, on: bool) -> None:
        """Reflect the teacher toggle (without emitting) and blank its column when off."""
        self.teacher_checkbox.blockSignals(True)
        self.teacher_checkbox.setChecked(on)
        self.teacher_checkbox.blockSignals(False)
        if not on:
            self.predictions.pop("teacher", None)
            for f in FINDINGS:
                self.bars[("teacher", f.key)].set_placeholder("off")
            self._update_disagreement()

    def set_pending(self, role: str, text: str = "…") -> None:
        self.predictions.pop(role, None)
        for f in FINDINGS:
            self.bars[(role, f.key)].set_placeholder(text)
        self._update_disagreement()

    # -- results -------------------------------------------------------------------------------
    def set_prediction(self, role: str, pred) -> None:
        self.predictions[role] = pred
        for f in FINDINGS:
            bar = self.bars[(role, f.key)]
            if f.key in pred.scores:
                k = f.key
                bar.set_value(float(pred.scores[k]), float(pred.thresholds[k]), bool(pred.positive[k]))
            else:
                bar.set_placeholder("n/a")
        self._update_disagreement()

    def _update_disagreement(self) -> None:
        s, t = self.predictions.get("student"), self.predictions.get("teacher")
        for f in FINDINGS:
            marker = self.disagreement[f.key]
            differ = (
                s is not None
                and t is not None
                and f.key in s.positive
                and f.key in t.positive
                and bool(s.positive[f.key]) != bool(t.positive[f.key])
            )
            marker.setText("≠" if differ else "")
            marker.setToolTip("student and teacher disagree on positive/negative" if differ else "")

    def disagreements(self) -> list[str]:
        return [k for k, m in self.disagreement.items() if m.text()]

    def displayed_scores(self, role: str) -> dict[str, float | None]:
        return {f.key: self.bars[(role, f.key)].score for f in FINDINGS}

    # -- selection -----------------------------------------------------------------------------
    def set_selected_finding(self, key: str) -> None:
        self._selected = key
        for k, row in self._rows.items():
            row.setProperty("selected", k == key)
            row.style().unpolish(row)
            row.style().polish(row)

    def _on_row_clicked(self, key: str) -> None:
        self.finding_selected.emit(key)
