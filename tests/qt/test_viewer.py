"""The viewer end to end on the offscreen platform, with the real engines and bundled models."""

from __future__ import annotations

import contextlib
import csv
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QKeySequence

from kdviewer import RESEARCH_NOTICE
from kdviewer.core.findings import FINDING_KEYS, FINDINGS
from kdviewer.core.resources import example_image
from tests.qt.conftest import shared_engine_loader, write_png, write_truncated_png

LONG = 120_000  # ms; generous for 2 shared cores, never reached when things work


def _overlay(window) -> np.ndarray:
    return window.image_view.overlay_item.image


def test_example_shows_both_models_heat_maps_switching_and_teacher_toggle(make_window, settings, tmp_path):
    settings.teacher_enabled = True
    w = make_window()
    with qtbot_wait(w.view_ready):
        w.start()
    # the built-in example, scored by both models, heat map of the selected finding on the image
    assert Path(w.current_path).name == example_image().name
    for role in ("student", "teacher"):
        scores = w.scores_panel.displayed_scores(role)
        assert all(scores[k] is not None and 0.0 <= scores[k] <= 1.0 for k in FINDING_KEYS), (role, scores)
        assert "sha256" in w.scores_panel.model_labels[role].text()
        assert w.prediction(role).precision in w.scores_panel.model_labels[role].text()  # which graph ran
        assert w.prediction(role).trained  # the bundled trained models, no untrained marking
        assert not w.scores_panel.state_labels[role].isVisibleTo(w)
    assert not w.untrained_banner.isVisibleTo(w)
    assert w.scores_panel.notice.text() == RESEARCH_NOTICE and w.scores_panel.notice.isVisibleTo(w)
    assert w.image_view.has_heatmap and w.image_view.overlay_item.isVisible()
    assert _overlay(w).shape == w.current_image.shape
    # same geometry as the image, so aligned at every zoom
    assert w.image_view.overlay_item.mapRectToView(
        w.image_view.overlay_item.boundingRect()
    ) == w.image_view.image_item.mapRectToView(w.image_view.image_item.boundingRect())
    np.testing.assert_array_equal(_overlay(w), w.prediction("student").heatmaps[FINDING_KEYS[0]])
    # the models score the model path's read (half-resolution JPEG 2000 decode, as `kdviewer
    # predict` does), the view shows the full decode
    assert not w.current_image.reduced and w.model.model_image.reduced
    assert w.model.model_image.geometry == w.current_image.shape
    marked = w.scores_panel.disagreements()
    s, t = w.prediction("student"), w.prediction("teacher")
    assert marked == [k for k in FINDING_KEYS if s.positive[k] != t.positive[k]]

    # switch finding (shortcut "4" → edema) and model
    assert QKeySequence("4") in w.finding_actions[3].shortcuts()
    with qtbot_wait(w.view_ready):
        w.finding_actions[3].trigger()
    assert w.model.heatmap_key == ("student", "gradcam", "edema")
    np.testing.assert_array_equal(_overlay(w), w.prediction("student").heatmaps["edema"])
    with qtbot_wait(w.heatmap_shown):  # upsampled off the GUI thread
        w.select_overlay_model("teacher")
    np.testing.assert_array_equal(_overlay(w), w.prediction("teacher").heatmaps["edema"])

    # telemetry polled from both engines, with the power method named; exportable
    w.telemetry_panel.poll()
    assert w.telemetry_panel.sample_count("student") > 0 and w.telemetry_panel.sample_count("teacher") > 0
    method = w.telemetry_panel.method_label.text()
    assert "estimate" in method or "measured" in method
    assert "idle baseline" in method  # the baseline is shown apart from the per-inference energy
    n = w.telemetry_panel.export_csv(tmp_path / "t.csv")
    rows = list(csv.DictReader((tmp_path / "t.csv").read_text(encoding="utf-8").splitlines()))
    assert len(rows) == n > 0 and {r["model_name"] for r in rows} >= {"student", "teacher"}

    # teacher off: column blanked, overlay falls back to the student, setting persisted
    w.scores_panel.teacher_checkbox.click()
    assert not w.model.teacher_enabled and not settings.teacher_enabled
    assert w.model.heatmap_key[0] == "student"
    assert all(v is None for v in w.scores_panel.displayed_scores("teacher").values())
    assert w.scores_panel.disagreements() == []
    # and on again: the loaded teacher answers without reloading
    with qtbot_wait(w.view_ready):
        w.scores_panel.teacher_checkbox.click()
    assert w.model.teacher_enabled and settings.teacher_enabled
    assert all(v is not None for v in w.scores_panel.displayed_scores("teacher").values())


def test_bad_file_shows_message_inline_and_keeps_previous_image(make_window, tmp_path, recorded_warnings):
    good = write_png(tmp_path / "good.png")
    bad = write_truncated_png(tmp_path / "bad.png")
    w = make_window(loaders={"student": lambda: (_ for _ in ()).throw(RuntimeError("not needed"))})
    with qtbot_wait(w.image_shown):
        w.open_paths([good])
    shown = w.current_image
    with qtbot_wait(w.image_load_failed):
        w.open_paths([bad])
    assert w.current_path == good and w.current_image is shown and w.image_view.image is shown
    # said inline (status bar and over the image), never in a modal dialog
    assert recorded_warnings == []
    assert "bad.png" in w.statusBar().currentMessage() and "bad.png" in w.image_view.message
    assert w.study_list.paths() == [good]
    # a missing file too
    with qtbot_wait(w.image_load_failed):
        w.open_paths([str(tmp_path / "missing.dcm")])
    assert "missing.dcm" in w.statusBar().currentMessage() and w.current_path == good
    assert recorded_warnings == []


def test_folder_of_mixed_files_is_scored_in_background(make_window, tmp_path, recorded_warnings):
    folder = tmp_path / "study"
    (folder / "sub").mkdir(parents=True)
    paths = [
        write_png(folder / "a.png", (40, 32), 1),
        write_png(folder / "sub" / "c.png", (24, 48), 3),
        write_png(folder / "b.png", (30, 30), 2),
    ]
    bad = write_truncated_png(folder / "broken.png")
    (folder / "notes.txt").write_text("not an image")
    w = make_window()
    with qtbot_wait(w.study_list_scored):
        w.start([str(folder)])
    listed = w.study_list.paths()
    assert sorted(listed) == sorted(paths + [bad])  # the text file is not listed
    assert w.study_list.progress.value() == len(listed)
    names = [f.name for f in FINDINGS]
    for p in paths:
        text = w.study_list.item_text(p)
        assert any(n in text for n in names) and "(untrained)" not in text  # top finding shown
    assert "unreadable" in w.study_list.item_text(bad)
    # next / previous by keyboard shortcut actions, across the unreadable file without a dialog
    # and without the selection jumping back
    first = w.current_path
    assert first == listed[0]
    for i in range(1, len(listed)):
        if listed[i] == bad:
            w.next_action.trigger()  # known unreadable: shown as such at once, not read again
            assert w.current_path == bad and w.current_image is None and "broken.png" in w.image_view.message
        else:
            with qtbot_wait(w.image_shown):
                w.next_action.trigger()
            assert w.current_path == listed[i] and w.image_view.message == ""
        assert w.study_list.current_path() == listed[i]
    with qtbot_wait(w.image_shown) if listed[-2] != bad else _nothing():
        w.prev_action.trigger()
    assert w.current_path == listed[-2]
    assert recorded_warnings == []


class _HeldStudent:
    """The shared student whose first two on-screen inferences each wait until the test releases
    them, so the first one's result can arrive after another image is opened: a real late result."""

    def __init__(self, engine):
        self._engine = engine
        self.started = [threading.Event(), threading.Event()]
        self.release = [threading.Event(), threading.Event()]
        self.results: list = []

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def predict(self, image, **kwargs):
        on_screen = kwargs.get("request_id") is not None
        n = len(self.results)
        if on_screen and n < 2:
            self.started[n].set()
            self.release[n].wait(LONG / 1000)
        pred = self._engine.predict(image, **kwargs)
        if on_screen:
            self.results.append(pred)
        return pred


def test_a_late_prediction_for_the_previous_image_is_dropped(make_window, tmp_path, request):
    from PySide6.QtWidgets import QApplication

    held = _HeldStudent(shared_engine_loader("student")())
    w = make_window(loaders={"student": lambda: held})
    request.addfinalizer(lambda: [e.set() for e in held.release])  # before the window closes
    first, second = write_png(tmp_path / "a.png", seed=1), write_png(tmp_path / "b.png", seed=2)
    w.start([first])
    _QTBOT.waitUntil(held.started[0].is_set, timeout=LONG)  # the first image's inference is under way
    with qtbot_wait(w.image_shown):
        w.open_paths([second])
    held.release[0].set()
    _QTBOT.waitUntil(held.started[1].is_set, timeout=LONG)  # the first result has been sent by now
    QApplication.processEvents()  # and is delivered: the late result, for an image no longer shown
    assert w.current_path == second and w.prediction("student") is None
    assert all(v is None for v in w.scores_panel.displayed_scores("student").values())
    with qtbot_wait(w.view_ready):
        held.release[1].set()
    late, answer = held.results
    assert late.request_id != answer.request_id and w.prediction("student") is answer
    expected = {k: pytest.approx(answer.scores[k]) for k in FINDING_KEYS}
    assert w.scores_panel.displayed_scores("student") == expected


def test_unavailable_teacher_disables_toggle_with_reason(make_window, settings, tmp_path):
    from kdviewer.core.errors import ModelLoadError

    def fail():
        raise ModelLoadError("teacher.safetensors", "SHA-256 does not match the model card")

    settings.teacher_enabled = True
    w = make_window(loaders={"teacher": fail})
    with qtbot_wait(w.engine_unavailable):
        w.start([write_png(tmp_path / "a.png")])
    box = w.scores_panel.teacher_checkbox
    assert not box.isEnabled() and not box.isChecked() and "SHA-256" in box.toolTip()
    assert not w.model.teacher_enabled and not w.teacher_action.isEnabled()


def test_tags_and_identifiers_hidden_by_default(make_window):
    w = make_window(loaders={"student": lambda: (_ for _ in ()).throw(RuntimeError("not needed"))})
    with qtbot_wait(w.image_shown):
        w.open_paths([str(example_image())])
    assert "identifiers hidden" in w.metadata_strip.text
    assert "CR" in w.metadata_strip.text and "lossless" in w.metadata_strip.text
    dialog = w.show_tags()
    dialog.filter_edit.setText("patientname")
    rows = dialog.visible_rows()
    assert rows and all(value == "‹hidden›" for _, _, value in rows)
    dialog.filter_edit.setText("Modality")
    assert any(kw == "Modality" and value == "CR" for _, kw, value in dialog.visible_rows())
    w.set_show_identifiers(True)
    assert "identifiers hidden" not in w.metadata_strip.text
    dialog.filter_edit.setText("patientname")
    assert all(value != "‹hidden›" for _, _, value in dialog.visible_rows())


def test_view_controls_and_settings_persist(make_window, settings, tmp_path):
    w = make_window(loaders={"student": lambda: (_ for _ in ()).throw(RuntimeError("not needed"))})
    with qtbot_wait(w.image_shown):
        w.open_paths([write_png(tmp_path / "a.png", (64, 48))])
    view = w.image_view
    view.set_window(100.0, 50.0)
    assert view.window() == pytest.approx((100.0, 50.0))
    view._on_window_dragged(30.0, -10.0)  # a left drag widens the window and moves the level
    c, width = view.window()
    assert width > 50.0 and c < 100.0
    w.invert_action.trigger()
    assert view.inverted
    w.opacity_slider.setValue(70)
    w.colormap_combo.setCurrentText("viridis")
    w.overlay_checkbox.setChecked(False)
    w.close()

    w2 = make_window()
    assert w2.opacity_slider.value() == 70
    assert w2.colormap_combo.currentText() == "viridis"
    assert not w2.overlay_checkbox.isChecked()
    assert str(Path(tmp_path / "a.png").resolve()) in settings.recent_files


def test_large_jpeg2000_shows_a_preview_then_the_full_decode(make_window, settings):
    """The half-resolution decode the models score is on screen first, over the full geometry;
    the full decode replaces it without a second prediction."""
    settings.teacher_enabled = False
    w = make_window()
    seen = []
    w.image_shown.connect(lambda _p: seen.append(("shown", w.current_image.shape)))
    w.image_refined.connect(lambda _p: seen.append(("refined", w.current_image.shape)))
    w.prediction_shown.connect(lambda role: seen.append(("scores", role)))
    with qtbot_wait(w.view_ready):
        w.start()
    images = [e for e in seen if e[0] != "scores"]
    assert images == [("shown", (978, 921)), ("refined", (1955, 1841))]
    assert seen.count(("scores", "student")) == 1  # scored once, on the preview's read
    rect = w.image_view.image_item.mapRectToView(w.image_view.image_item.boundingRect())
    assert (rect.width(), rect.height()) == (1841, 1955)
    assert w.image_view.overlay_item.mapRectToView(w.image_view.overlay_item.boundingRect()) == rect
    assert not w.current_image.reduced and w.model.model_image.reduced
    assert w.prediction("student").heatmaps[w.model.finding].shape == (1955, 1841)


def test_drop_and_recent_files_open_images(make_window, settings, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    settings.teacher_enabled = False
    a, b = write_png(tmp_path / "a.png"), write_png(tmp_path / "b.png")
    w = make_window()
    with qtbot_wait(w.image_shown):
        w.start([str(a)])
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(b))])
    drop = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot_wait(w.image_shown):
        w.dropEvent(drop)
    assert Path(w.current_path).name == "b.png"
    # the recent-files menu holds both; choosing the older one opens it again
    actions = {act.text(): act for act in w.recent_menu.actions()}
    assert {"a.png", "b.png"} <= set(actions)
    with qtbot_wait(w.image_shown):
        actions["a.png"].trigger()
    assert Path(w.current_path).name == "a.png"


# -- helpers -----------------------------------------------------------------------------------------
_QTBOT = None


@pytest.fixture(autouse=True)
def _remember_qtbot(qtbot):
    global _QTBOT
    _QTBOT = qtbot
    yield
    _QTBOT = None


def qtbot_wait(signal, timeout=LONG):
    return _QTBOT.waitSignal(signal, timeout=timeout)


@contextlib.contextmanager
def _nothing():
    yield


def test_untrained_models_are_marked_in_the_scores_panel_and_banner(make_window, tmp_path):
    from kdviewer.core.engine import InferenceEngine

    def untrained(role, arch):
        return lambda: InferenceEngine.untrained(role, arch, runtime="torch-eager")

    w = make_window(loaders={"student": untrained("student", "mobilenet_v2")})
    png = write_png(tmp_path / "a.png", (40, 32), 1)
    with qtbot_wait(w.view_ready):
        w.start([png])
    assert not w.prediction("student").trained
    assert w.scores_panel.state_labels["student"].isVisibleTo(w)
    assert "UNTRAINED" in w.untrained_banner.text() and w.untrained_banner.isVisibleTo(w)


def test_folder_of_only_unreadable_files_says_why_and_never_stays_loading(
    make_window, tmp_path, qtbot, recorded_warnings
):
    folder = tmp_path / "bad"
    folder.mkdir()
    bad = [write_truncated_png(folder / f"{i}.png") for i in range(3)]
    w = make_window()
    with qtbot_wait(w.study_list_scored):
        w.start([str(folder)])
    qtbot.waitUntil(lambda: w.model.loading_path is None and w.model.error is not None, timeout=LONG)
    assert w.current_image is None and w.current_path in bad
    assert Path(w.current_path).name in w.image_view.message
    for p in bad:
        assert "unreadable" in w.study_list.item_text(p)
    assert "Reading" not in w.statusBar().currentMessage()
    shown = [w.scores_panel.bars[("student", k)].text for k in FINDING_KEYS]
    assert not any("loading" in t for t in shown), shown
    qtbot.waitUntil(lambda: "loading" not in w.models_label.text(), timeout=LONG)
    assert recorded_warnings == []


class CountingEngine:
    """Wraps an engine and records every inference: (file, heat maps asked, method)."""

    def __init__(self, engine, gate=None):
        self._engine = engine
        self.calls: list[tuple[str, object, str]] = []
        self.gate = gate  # a threading.Event that slow methods wait for (None: no wait)

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def predict(self, image, *, heatmaps=True, cam_method="gradcam", **kwargs):
        from dataclasses import replace

        self.calls.append((Path(image.path).name, heatmaps, cam_method))
        if cam_method == "gradcam":
            return self._engine.predict(image, heatmaps=heatmaps, cam_method=cam_method, **kwargs)
        # a stand-in for a library method: as slow as the test wants, a recognisably different map
        assert self.gate is None or self.gate.wait(60)
        pred = self._engine.predict(image, heatmaps=heatmaps, **kwargs)
        flipped = {k: np.ascontiguousarray(1.0 - pred.heatmaps[k]) for k in pred.heatmaps}
        return replace(pred, heatmaps=flipped, cam_method=cam_method)


def test_one_inference_per_image_and_model(make_window, settings, tmp_path):
    """Background scoring, stepping through the list and back, all five findings and the teacher:
    each readable image is scored once by each model, and never for a finding switch or a revisit."""
    from collections import Counter

    from tests.qt.conftest import shared_engine_loader

    settings.teacher_enabled = True
    folder = tmp_path / "study"
    folder.mkdir()
    good = [write_png(folder / f"{i}.png", (40 + 8 * i, 36), i) for i in range(4)]
    write_truncated_png(folder / "2b.png")
    student = CountingEngine(shared_engine_loader("student")())
    teacher = CountingEngine(shared_engine_loader("teacher")())
    w = make_window(loaders={"student": lambda: student, "teacher": lambda: teacher})
    with qtbot_wait(w.study_list_scored):
        w.start([str(folder)])
    listed = w.study_list.paths()
    for i, path in enumerate(listed):
        if i:
            if path in good:
                with qtbot_wait(w.view_ready):
                    w.next_action.trigger()
            else:
                w.next_action.trigger()
                continue
        _QTBOT.waitUntil(w.is_view_complete, timeout=LONG)
        for action, key in zip(w.finding_actions, FINDING_KEYS, strict=True):
            action.trigger()
            _QTBOT.waitUntil(
                lambda key=key: w.model.shown_heatmap_key == ("student", "gradcam", key), timeout=LONG
            )
            np.testing.assert_array_equal(_overlay(w), w.prediction("student").heatmaps[key])
    # Back to the first image: revisits reuse both models' results.
    for path in reversed(listed[:-1]):
        if path in good:
            with qtbot_wait(w.view_ready):
                w.prev_action.trigger()
            _QTBOT.waitUntil(w.is_view_complete, timeout=LONG)
            assert w.prediction("teacher") is not None
        else:
            w.prev_action.trigger()
    names = sorted(Path(p).name for p in good)
    student_calls = Counter(name for name, _, _ in student.calls)
    teacher_calls = Counter(name for name, _, _ in teacher.calls)
    assert sorted(student_calls) == names and set(student_calls.values()) == {1}, student.calls
    assert sorted(teacher_calls) == names and set(teacher_calls.values()) == {1}, teacher.calls
    assert all(h is True for _, h, _ in student.calls + teacher.calls)  # all five maps at once


def test_slow_heat_map_method_shows_busy_and_keeps_the_previous_map(make_window, tmp_path):
    import threading

    from tests.qt.conftest import shared_engine_loader

    gate = threading.Event()
    student = CountingEngine(shared_engine_loader("student")(), gate=gate)
    w = make_window(loaders={"student": lambda: student})
    with qtbot_wait(w.view_ready):
        w.start([write_png(tmp_path / "a.png", (48, 40))])
    before = _overlay(w)
    try:
        w.method_combo.setCurrentText("eigencam")
        w.method_combo.activated.emit(w.method_combo.currentIndex())
        _QTBOT.waitUntil(lambda: len(student.calls) == 2, timeout=LONG)
        assert w.status.busy_bar.isVisibleTo(w) and "eigencam" in w.statusBar().currentMessage()
        assert _overlay(w) is before  # the previous map stays while the new one is computed
        assert "same map for every finding" in w.method_combo.toolTip()
        with qtbot_wait(w.view_ready):
            gate.set()
    finally:
        gate.set()
    assert not w.status.busy_bar.isVisibleTo(w)
    assert w.model.heatmap_key == ("student", "eigencam", FINDING_KEYS[0])
    shown = _overlay(w)
    np.testing.assert_array_equal(shown, w.model.prediction("student").heatmaps[FINDING_KEYS[0]])
    np.testing.assert_allclose(shown, 1.0 - before, atol=1e-6)  # the stand-in method's map
    assert "same map for every finding" in w.statusBar().currentMessage()


def test_sigmoid_preset_is_rendered_as_the_dicom_standard_defines_it(make_window, tmp_path):
    """A DICOM whose presets are SIGMOID: the pixels drawn follow PS3.3 C.11.2.1.2's formula and
    pydicom's reference; thumbnails render through the same code; a hand drag makes it "Custom"."""
    import pydicom
    from pydicom.pixels import apply_windowing

    from kdviewer.core.display import to_display_uint8
    from tests.core.dicom_factory import make_dataset, ramp, write

    ds = make_dataset(
        ramp(96, 80, 0, 4095),
        bits_stored=12,
        windows=[(1000.0, 800.0), (2000.0, 1500.0)],
        window_explanations=["LUNG", "SOFT"],
        VOILUTFunction="SIGMOID",
    )
    path = write(ds, tmp_path / "sigmoid.dcm")
    w = make_window(loaders={"student": lambda: (_ for _ in ()).throw(RuntimeError("not needed"))})
    with qtbot_wait(w.image_shown):
        w.open_paths([str(path)])
    box, view = w.preset_combo, w.image_view
    assert "sigmoid" in box.currentText() and view.current_window.function == "SIGMOID"
    # the same bytes as the thumbnails' rendering of the file's default (first) preset
    np.testing.assert_array_equal(view.display_pixels, to_display_uint8(w.current_image))
    index = next(i for i in range(box.count()) if box.itemText(i).startswith("SOFT"))
    box.setCurrentIndex(index)
    box.activated.emit(index)
    x = w.current_image.pixels.astype(np.float64)
    standard = np.rint(255.0 / (1.0 + np.exp(-4.0 * (x - 2000.0) / 1500.0)))
    shown = view.display_pixels
    assert shown.dtype == np.uint8 and np.abs(shown.astype(int) - standard).max() <= 1
    assert np.mean(shown == standard) > 0.99
    on_disk = pydicom.dcmread(path)
    reference = apply_windowing(on_disk.pixel_array.astype(np.float64), on_disk, index=1) / 4095.0 * 255.0
    assert np.abs(shown.astype(int) - np.rint(reference)).max() <= 1
    # what the item draws is those bytes: no further levels or colour table
    assert tuple(view.image_item.getLevels()) == (0, 255) and view.image_item.lut is None
    # a hand drag: a custom window, and the box says so
    view._on_window_dragged(25.0, 0.0)
    assert box.currentText().startswith("Custom") and view.current_window.explanation == "custom"
    w.invert_action.trigger()
    assert view.image_item.lut is not None and view.image_item.lut[0] == 255


def test_help_menu_settings_zoom_and_stale_messages(make_window, settings, tmp_path):
    """Help has the shortcut sheet and About (versions, model hashes, the notice); the finding and
    heat-map method are remembered; Open dialogs never start inside the installed package; the
    zoom level is shown and 1:1 gives actual pixels; a message about one image goes with the next."""
    import kdviewer
    from kdviewer.qt.actions import about_text, shortcut_sheet

    menus = {
        m.title().replace("&", ""): m for m in (a.menu() for a in make_window().menuBar().actions()) if m
    }
    w = make_window()
    help_menu = next(m for t, m in menus.items() if t == "Help")
    assert [a.text().replace("&", "") for a in help_menu.actions()] == [
        "Keyboard shortcuts",
        "About kdviewer",
    ]
    sheet = shortcut_sheet(w.actions_)
    assert "Next study" in sheet and "PgDown" in sheet and "Actual pixels" in sheet
    a, b = write_png(tmp_path / "a.png", (64, 48), 1), write_png(tmp_path / "b.png", (64, 48), 2)
    with qtbot_wait(w.view_ready):
        w.start([a, b])
    about = about_text(w.model.engines)
    assert RESEARCH_NOTICE in about and w.model.engines["student"].card.weights_sha256 in about
    assert "PySide6" in about and "Python" in about
    # zoom shown, 1:1 = one screen pixel per image pixel
    w.actions_.zoom_actual.trigger()
    assert w.image_view.zoom_level() == pytest.approx(1.0, rel=0.02)
    assert w.status.zoom_label.text() == "zoom 100 %"
    # remembered choices
    w.finding_actions[3].trigger()
    w.model.select_cam_method("layercam")
    w.statusBar().showMessage("about a.png")
    with qtbot_wait(w.image_shown):
        w.next_action.trigger()
    assert w.statusBar().currentMessage() == ""  # stale message gone with the image it was about
    w.close()
    assert (settings.finding, settings.cam_method) == (FINDING_KEYS[3], "layercam")
    w2 = make_window()
    assert (w2.model.finding, w2.model.cam_method) == (FINDING_KEYS[3], "layercam")
    assert w2.finding_combo.currentIndex() == 3 and w2.method_combo.currentText() == "layercam"
    # the built-in example lives in the installed packages: dialogs start at home instead
    settings.last_folder = str(Path(example_image()).parent)
    assert settings.last_folder == str(Path.home())
    settings.last_folder = str(Path(kdviewer.__file__).parent)
    assert settings.last_folder == str(Path.home())
    settings.last_folder = str(tmp_path)
    assert settings.last_folder == str(tmp_path)
