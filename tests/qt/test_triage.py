"""The triage bar drives the real study list: order, filters, unread state and positive counts from
the scores already made (the audit log, one line per inference, shows nothing is re-run)."""

from __future__ import annotations

from kdviewer.core.audit import AuditLog
from kdviewer.core.findings import FINDING_KEYS, FINDINGS
from tests.qt.conftest import write_png

LONG = 60000


def visible(w) -> list[str]:
    lw = w.study_list.list
    return [lw.item(r).data(0x0100) for r in range(lw.count()) if not lw.item(r).isHidden()]


def inference_lines() -> int:
    return sum(e["event"] == "inference" for e in AuditLog().entries())


def choose(combo, text: str) -> None:
    index = combo.findText(text)
    assert index >= 0, text
    combo.setCurrentIndex(index)


def test_sort_filter_unread_and_counts_never_rerun_models(make_window, qtbot, tmp_path):
    folder = tmp_path / "worklist"
    folder.mkdir()
    paths = [write_png(folder / f"{name}.png", (48 + 8 * i, 40), i) for i, name in enumerate("dcba")]
    w = make_window()
    with qtbot.waitSignal(w.study_list_scored, timeout=LONG):
        w.start([str(folder)])
    qtbot.waitUntil(lambda: len(w.model.list_scores) == 4, timeout=LONG)
    qtbot.waitUntil(lambda: inference_lines() == 4, timeout=LONG)  # the viewer audits each inference
    scores = w.model.list_scores
    bar = w.study_list.triage
    assert visible(w) == sorted(paths)  # arrival: the folder's sorted order

    choose(bar.sort_combo, "Name")
    assert visible(w) == sorted(paths, key=lambda p: p.rsplit("/", 1)[-1])
    # Highest first; equal scores (the int8 student's outputs are quantised) in arrival order.
    arrival = sorted(paths)
    choose(bar.sort_combo, "Top student score")
    assert visible(w) == sorted(arrival, key=lambda p: -max(scores[p].scores.values()))
    key = FINDING_KEYS[2]
    choose(bar.sort_combo, f"{FINDINGS[2].name} score")
    assert visible(w) == sorted(arrival, key=lambda p: -scores[p].scores[key])

    # next / previous follow the order on screen
    first, second = visible(w)[:2]
    w.study_list.select_path(first)
    with qtbot.waitSignal(w.image_shown, timeout=LONG):
        w.next_action.trigger()
    assert w.current_path == second

    # positives per finding, and the filter
    counts = {k: sum(bool(scores[p].positive[k]) for p in paths) for k in FINDING_KEYS}
    text = bar.counts_label.text()
    for f in FINDINGS:
        assert f"{f.name.split()[-1][:4]} {counts[f.key]}" in text
    target = max(FINDING_KEYS, key=lambda k: counts[k])
    choose(bar.filter_combo, "Positive: " + next(f.name for f in FINDINGS if f.key == target))
    assert set(visible(w)) == {p for p in paths if scores[p].positive[target]}
    choose(bar.filter_combo, "All studies")

    # read state: the studies shown are read (not bold), the others unread (bold)
    shown = {p for p in paths if w.study_list.is_read(p)}
    assert w.current_path in shown and len(shown) < 4
    lw = w.study_list.list
    for r in range(lw.count()):
        item = lw.item(r)
        assert item.font().bold() == (item.data(0x0100) not in shown)
    bar.unread_box.setChecked(True)
    assert set(visible(w)) == (set(paths) - shown) | {w.current_path}
    w.study_list.read_toggled.emit(next(iter(shown - {w.current_path})), False)  # "Mark as unread"
    assert len(visible(w)) == len(set(paths) - shown) + 2
    bar.unread_box.setChecked(False)

    # each study was scored once; sorting, filtering and moving through the list scored nothing
    assert inference_lines() == 4
