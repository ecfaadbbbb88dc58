"""The viewer's student result never waits for a teacher inference (issue #14): with the teacher
stuck in an inference of the previous image, the student scores the next image and it is shown."""

from __future__ import annotations

import threading

from tests.qt.conftest import shared_engine_loader, write_png

LONG = 120_000  # ms; generous for 2 shared cores, never reached when things work


class _StuckForward:
    """A forward runtime that blocks inside the pass (where the engine holds its locks and its
    energy window is open) until the test releases it."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.started = threading.Event()
        self.release = threading.Event()

    def run(self, x):
        self.started.set()
        self.release.wait(LONG / 1000)
        return self.inner.run(x)


def test_student_scores_the_next_image_while_the_teacher_is_stuck(
    make_window, settings, tmp_path, qtbot, request, monkeypatch
):
    settings.teacher_enabled = True
    engine = shared_engine_loader("teacher")()
    teacher = _StuckForward(engine._runtime)
    monkeypatch.setattr(engine, "_runtime", teacher)
    w = make_window()
    request.addfinalizer(teacher.release.set)  # before the window closes
    first, second = write_png(tmp_path / "a.png", seed=1), write_png(tmp_path / "b.png", seed=2)
    w.start([first])
    qtbot.waitUntil(teacher.started.is_set, timeout=LONG)  # the teacher is inside its inference of a.png
    w.open_paths([second])
    qtbot.waitUntil(lambda: w.current_path == second and w.prediction("student") is not None, timeout=LONG)
    assert not teacher.release.is_set() and w.prediction("teacher") is None
    assert all(v is not None for v in w.scores_panel.displayed_scores("student").values())
    teacher.release.set()
