"""Compare with prior through the real window: the same patient's most recent other study beside
the current one, zoom, pan and window in step, its scores from the study list (no model runs)."""

from __future__ import annotations

import numpy as np

from kdviewer.core.audit import AuditLog
from tests.core import dicom_factory

LONG = 60000


def study(folder, name, patient, date, seed):
    rng = np.random.default_rng(seed)
    pixels = (1000 + 600 * rng.random((160 + 8 * seed, 150))).astype(np.uint16)
    ds = dicom_factory.make_dataset(
        pixels, bits_stored=12, PatientID=patient, StudyDate=date, WindowCenter=1300, WindowWidth=600
    )
    return str(dicom_factory.write(ds, folder / name))


def inferences() -> int:
    return sum(e["event"] == "inference" for e in AuditLog().entries())


def test_compare_with_prior_links_views_and_shows_its_scores(make_window, qtbot, tmp_path):
    folder = tmp_path / "patient"
    folder.mkdir()
    current = study(folder, "a_current.dcm", "P1", "20240105", 0)
    older = study(folder, "b_older.dcm", "P1", "20190101", 1)
    prior = study(folder, "c_prior.dcm", "P1", "20220301", 2)
    study(folder, "d_someone_else.dcm", "P2", "20230101", 3)
    w = make_window()
    with qtbot.waitSignal(w.study_list_scored, timeout=LONG):
        w.start([str(folder)])
    qtbot.waitUntil(lambda: len(w.model.study_info) == 4, timeout=LONG)
    assert w.current_path == current and w.model.priors() == [prior, older]
    qtbot.waitUntil(lambda: inferences() == 4, timeout=LONG)  # each study scored once (audited after)

    panel = w.compare
    assert not panel.isVisible()
    with qtbot.waitSignal(panel.image_loaded, timeout=LONG):
        next(a for a in w.actions() if a.text() == "Compare with &prior").trigger()
    assert panel.isVisible() and w.model.compare_path == prior
    pred = w.model.list_scores[prior]
    assert (
        f"{next(iter(pred.scores.values())):.2f}" in panel.caption.text() and "2022" in panel.caption.text()
    )

    # zoom and pan of either view move both: the same scale and the same top-left corner (pyqtgraph's
    # linked views; the compared view is shorter by its caption); the window follows the main view
    def in_step():
        a, b = w.image_view.view_box.viewRect(), panel.view.view_box.viewRect()
        return (
            abs(a.left() - b.left()) < 0.5
            and abs(a.top() - b.top()) < 0.5
            and abs(w.image_view.zoom_level() / panel.view.zoom_level() - 1) < 0.02
        )

    zoom = w.image_view.zoom_level()
    w.image_view.zoom(2.0)
    assert in_step() and panel.view.zoom_level() > 1.9 * zoom
    panel.view.view_box.translateBy(x=10, y=5)
    assert in_step()
    w.image_view.set_window(1234, 321)
    assert (panel.view.current_window.center, panel.view.current_window.width) == (1234, 321)

    w.model.set_compare(None)
    assert not panel.isVisible()
    assert inferences() == 4  # comparing ran no model
