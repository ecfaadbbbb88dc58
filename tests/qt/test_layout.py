"""The window fits a 1366 × 768 laptop screen and never widens itself (issue #11, part 3)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QApplication, QLabel, QToolBar

from kdviewer.core.telemetry import InferenceSample, Telemetry
from kdviewer.qt.elided_label import ElidedLabel
from kdviewer.qt.telemetry_panel import TelemetryPanel
from tests.core.dicom_factory import make_dataset, ramp, write
from tests.qt.conftest import write_png

LAPTOP = QSize(1366, 768)
# what a desktop takes from the screen's height: a title bar and a panel
DECORATIONS_H = 70
LONG = 120_000  # ms; never reached when things work


def _settle(qtbot, ms: int = 300) -> None:
    qtbot.wait(ms)
    QApplication.processEvents()


def _menu_actions(window) -> set:
    found, todo = set(), list(window.menuBar().actions())
    while todo:
        a = todo.pop()
        found.add(a)
        if a.menu() is not None:
            todo.extend(a.menu().actions())
    return found


# ------------------------------------------------------------------------------------------------
def test_elided_label_shortens_instead_of_growing(qtbot):
    label = ElidedLabel("x" * 400 + "END")
    qtbot.addWidget(label)
    label.resize(120, 20)
    label.show()
    assert label.minimumSizeHint().width() < 80  # a layout may shrink it to a few characters
    assert label.sizeHint().width() > 1000  # but it asks for its text when there is room
    assert label.is_elided and label.elided_text().endswith("…")
    assert label.text().endswith("END") and "END" in label.toolTip()
    label.setText("short")
    assert not label.is_elided and label.toolTip() == ""


def test_telemetry_summary_fits_a_side_panel_without_overlap(qtbot):
    class Engine:
        telemetry = Telemetry()

    engine = Engine()
    for role in ("student", "teacher"):
        engine.telemetry.append(
            InferenceSample(
                # a slow laptop's teacher: three-digit stages, four-digit energy
                t=time.monotonic(),
                model_name=role,
                energy_mj=4321.7,
                power_w=23.5,
                timings_ms={"preprocess": 123.0, "forward": 456.0, "heatmap": 12.0, "total": 591.0},
                energy_method="process CPU time × TDP",
                is_estimate=True,
                idle_power_w=12.5,
            )
        )
    panel = TelemetryPanel()
    qtbot.addWidget(panel)
    panel.set_engine("student", engine)
    panel.set_engine("teacher", engine)
    panel.poll()
    panel.stop()
    width = panel.minimumSizeHint().width()
    assert width <= 380, width
    panel.resize(width, 700)
    panel.show()
    _settle(qtbot, 50)
    labels = [lab for lab in panel.findChildren(QLabel) if lab.isVisible() and not lab.wordWrap()]
    for lab in labels:  # none clipped
        assert lab.width() >= lab.sizeHint().width(), lab.text()
    rects = [
        (lab.text(), lab.geometry().translated(lab.parentWidget().mapTo(panel, lab.pos()) - lab.pos()))
        for lab in labels
    ]
    for i, (text_a, a) in enumerate(rects):  # and none on top of another
        for text_b, b in rects[i + 1 :]:
            assert not a.intersects(b), (text_a, text_b)


# ------------------------------------------------------------------------------------------------
def test_minimum_size_fits_a_laptop_screen(make_window, qtbot):
    w = make_window()
    _settle(qtbot)
    hint = w.minimumSizeHint().expandedTo(w.minimumSize())
    assert hint.width() <= LAPTOP.width(), hint
    assert hint.height() <= LAPTOP.height() - DECORATIONS_H, hint


@pytest.fixture
def awkward_folder(tmp_path):
    """A 200-character file name, long identifiers and preset names, and a large image."""
    folder = tmp_path / "studies"
    folder.mkdir()
    write_png(folder / ("n" * 196 + ".png"), shape=(64, 48))
    ds = make_dataset(
        ramp(96, 80, hi=4000),
        bits_stored=12,
        windows=[(2000, 4000), (1000, 1500), (3000, 800)],
        window_explanations=[
            "LUNG WINDOW WITH A VERY LONG NAME FROM THE MODALITY",
            "MEDIASTINUM AND SOFT TISSUE, ALSO A LONG NAME",
            "BONE",
        ],
        PatientName="Verylongfamilyname^Givennameandanothergivenname^Middlenames",
        PatientID="ID-" + "0123456789" * 6,  # the longest the standard allows is 64
        AccessionNumber="ACC" + "9" * 13,
        InstitutionName="The Institution With A Remarkably Long Name For A Hospital",
    )
    write(ds, folder / "identifiers.dcm")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, size=(3000, 4000), dtype=np.uint8)).save(folder / "big.png")
    return folder


def test_long_names_identifiers_presets_and_a_big_image_never_widen_the_window(
    make_window, qtbot, awkward_folder
):
    w = make_window()
    w.resize(LAPTOP)
    with qtbot.waitSignal(w.image_shown, timeout=LONG):
        w.start([str(awkward_folder)])
    w.set_show_identifiers(True)
    paths = w.study_list.paths()
    assert len(paths) == 3
    widths = []
    for path in paths:
        if w.current_path != path:
            with qtbot.waitSignal(w.image_shown, timeout=LONG):
                w.study_list.select_path(path)
                w.study_list.study_selected.emit(path)
        _settle(qtbot)
        widths.append((path[-20:], w.width(), w.minimumSizeHint().width()))
        if path.endswith(".dcm"):
            assert "Verylongfamilyname" in w.metadata_strip.text  # shown, and elided in place
    _settle(qtbot, 1500)  # models load and fill their labels: the window used to widen here
    widths.append(("later", w.width(), w.minimumSizeHint().width()))
    assert all(width <= LAPTOP.width() and hint <= LAPTOP.width() for _, width, hint in widths), widths


def test_the_image_gets_most_of_a_laptop_screen(make_window, qtbot):
    w = make_window()
    w.resize(LAPTOP)
    _settle(qtbot)
    assert w.image_view.width() > LAPTOP.width() / 2, [d.width() for d in (w.study_dock, w.scores_dock)]
    assert w.image_view.height() > LAPTOP.height() / 2


def test_every_toolbar_action_is_reachable_at_1366(make_window, qtbot):
    w = make_window()
    w.resize(LAPTOP)
    _settle(qtbot)
    toolbars = w.findChildren(QToolBar)
    assert toolbars
    in_menus = _menu_actions(w)
    unreachable = []
    for tb in toolbars:
        for a in tb.actions():
            if a.isSeparator():
                continue
            widget = tb.widgetForAction(a)
            shown = widget is not None and widget.isVisible() and tb.rect().contains(widget.geometry())
            if not (shown or a in in_menus):
                unreachable.append(a.text() or type(widget).__name__)
    assert not unreachable, unreachable


def test_panels_collapse_resize_and_are_remembered(make_window, qtbot, settings):
    w = make_window()
    docks = {d.objectName(): d for d in (w.study_dock, w.scores_dock, w.telemetry_dock)}
    in_menus = _menu_actions(w)
    assert all(d.toggleViewAction() in in_menus for d in docks.values())  # each can be brought back
    _settle(qtbot)
    w.resizeDocks([w.study_dock], [260], Qt.Orientation.Horizontal)
    w.telemetry_dock.toggleViewAction().trigger()
    _settle(qtbot)
    assert not w.telemetry_dock.isVisible()
    study_width = w.study_dock.width()
    w.close()

    again = make_window(settings=settings)
    _settle(qtbot)
    assert not again.telemetry_dock.isVisible()
    assert abs(again.study_dock.width() - study_width) <= 4, (again.study_dock.width(), study_width)


def test_default_size_fits_the_screen():
    from PySide6.QtCore import QRect

    from kdviewer.qt.docks import fit_size

    assert fit_size(QSize(1600, 980), QRect(0, 0, 1366, 740)) == QSize(1284, 695)
    assert fit_size(QSize(1600, 980), QRect(0, 0, 1920, 1050)) == QSize(1600, 980)
