"""The scope banner in the real window: an out-of-scope image is shown with its scores and heat map
hidden behind a banner, "Show anyway" brings them back and is recorded in the audit log; an
in-scope chest film shows no banner."""

from __future__ import annotations

from PySide6.QtCore import Qt

from kdviewer.core.audit import AuditLog

LONG = 60000


def test_out_of_scope_image_hides_scores_until_show_anyway(make_window, qtbot, settings, dicom_dir, nih_dir):
    hip = str(dicom_dir / "other_cr" / "wg04_RG2_UNC.dcm")
    settings.scope_gate = True  # the default (tests/qt/conftest.py turns it off for synthetic pictures)
    w = make_window()
    with qtbot.waitSignal(w.view_ready, timeout=LONG):
        w.start([hip])
    qtbot.waitUntil(lambda: w.prediction("student") is not None, timeout=LONG)
    banner = w.scope_banner
    assert banner.isVisible() and banner.button.isVisible()
    assert "header says body part HIP" in banner.label.text()
    assert w.model.scores_hidden and not w.scores_panel.isVisible()
    assert not w.image_view.overlay_item.isVisible()
    assert not any(e["event"] == "scope_override" for e in AuditLog().entries())

    with qtbot.waitSignal(w.heatmap_shown, timeout=LONG):
        qtbot.mouseClick(banner.button, Qt.MouseButton.LeftButton)
    assert not w.model.scores_hidden and w.scores_panel.isVisible()
    assert banner.isVisible() and not banner.button.isVisible()  # the reminder stays
    assert w.image_view.overlay_item.isVisible()
    (override,) = [e for e in AuditLog().entries() if e["event"] == "scope_override"]
    assert override["scope_reason"].startswith("not a chest radiograph") and "HIP" not in override["subject"]

    chest = str(sorted((nih_dir / "images").glob("*.png"))[0])
    with qtbot.waitSignal(w.view_ready, timeout=LONG):
        w.open_paths([chest])
    qtbot.waitUntil(lambda: w.model.scope.get(chest) is not None, timeout=LONG)
    assert w.model.scope[chest].in_scope
    assert not banner.isVisible() and w.scores_panel.isVisible()
