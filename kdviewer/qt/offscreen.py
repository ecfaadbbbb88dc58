"""The viewer run without a person at it: a screenshot once scoring is done (``kdviewer
screenshot``), and its start-up timed (benchmarks/startup.py, benchmarks/cold_start.py).

Qt is imported inside the functions: :func:`measure_startup`'s clock starts at its call and must
include Qt's import, as a real start does.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kdviewer.qt.app import create_window, make_application

log = logging.getLogger(__name__)

SCREENSHOT_SIZE = (1680, 1020)


def temporary_settings(folder: str, teacher: bool = True):
    """Fresh default settings in an INI file inside ``folder`` (never the user's), teacher as asked."""
    from kdviewer.qt.settings import ViewerSettings, make_qsettings

    settings = ViewerSettings(make_qsettings(Path(folder) / "kdviewer.ini"))
    settings.teacher_enabled = teacher
    return settings


def wait_for(predicate: Callable[[], bool], signals: Sequence, timeout_s: float) -> bool:
    """Run the event loop until ``predicate()`` holds, re-checking whenever one of ``signals`` fires.

    Returns False when ``timeout_s`` passes first. A slow timer re-checks too, in case the
    condition changed through something that emits none of the signals.
    """
    from PySide6.QtCore import QEventLoop, QTimer

    if predicate():
        return True
    loop = QEventLoop()

    def check(*_):
        if predicate():
            loop.quit()

    for sig in signals:
        sig.connect(check)
    poll = QTimer()
    poll.timeout.connect(check)
    poll.start(250)
    timeout = QTimer()
    timeout.setSingleShot(True)
    timeout.timeout.connect(loop.quit)
    timeout.start(int(timeout_s * 1000))
    loop.exec()
    poll.stop()
    timeout.stop()
    for sig in signals:
        try:
            sig.disconnect(check)
        except (RuntimeError, TypeError):
            pass
    return predicate()


def _scoring_done(window) -> bool:
    model = window.model
    unreadable = sum(1 for p in model.studies if p in model.failures)
    return (
        window.is_view_complete()
        and model.list_complete()
        and window.study_list.thumbnail_count + unreadable >= len(model.studies)
    )


def screenshot(out: str, path: str | None, *, timeout_s: float = 300.0, scale: float = 1.0) -> int:
    """Render the main window offscreen once scoring is done and save it; returns 0 on success.

    The format follows ``out``'s extension (PNG, or JPEG for .jpg/.jpeg at quality 85); ``scale``
    resizes the picture (smooth). Uses fresh default settings (teacher on) in a temporary
    folder, so the picture does not depend on, or change, the user's settings.
    """
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = make_application()
    with tempfile.TemporaryDirectory(prefix="kdviewer-shot-") as tmp:
        window = create_window(temporary_settings(tmp))
        window.resize(*SCREENSHOT_SIZE)
        window.show()
        failures: list[str] = []
        window.image_load_failed.connect(lambda _p, message: failures.append(message))
        window.start([path] if path else [])
        signals = [
            window.view_ready,
            window.study_list_scored,
            window.engine_unavailable,
            window.prediction_shown,
            window.image_load_failed,
        ]
        # an unreadable file ends the wait at once: nothing will be shown
        done = wait_for(
            lambda: _scoring_done(window) or (failures and window.current_image is None), signals, timeout_s
        )
        if window.current_image is None:
            reason = failures[-1] if failures else "nothing was shown"
            log.error("screenshot: cannot open %s: %s", path or "the built-in example", reason)
            window.close()
            return 1
        if not done:
            log.error("screenshot: scoring did not finish within %.0f s", timeout_s)
            window.close()
            return 1
        window.telemetry_panel.poll()
        app.processEvents()
        pixmap = window.grab()
        if scale != 1.0:
            from PySide6.QtCore import Qt

            pixmap = pixmap.scaledToWidth(
                max(1, round(pixmap.width() * scale)), Qt.TransformationMode.SmoothTransformation
            )
        jpeg = str(out).lower().endswith((".jpg", ".jpeg"))
        ok = pixmap.save(str(out), "JPG" if jpeg else "PNG", 85 if jpeg else -1)
        window.close()
        app.processEvents()
    if not ok:
        log.error("screenshot: could not write %s", out)
        return 1
    log.info("screenshot written to %s", out)
    return 0


def measure_startup(path: str | None = None, *, timeout_s: float = 300.0) -> dict[str, float]:
    """Start the viewer offscreen-capable and time it; returns milliseconds since this call.

    Keys: ``time_to_window_ms`` (window shown and painted once), ``time_to_image_ms`` (image on
    screen), ``time_to_first_scores_ms`` (the student's scores shown). Call it in a fresh process:
    imports already done by the caller (Qt, torch) would make the numbers look better than a real
    start.
    """
    t_start = time.perf_counter()
    app = make_application()
    with tempfile.TemporaryDirectory(prefix="kdviewer-start-") as tmp:
        window = create_window(temporary_settings(tmp, teacher=False), t_start=t_start)
        window.show()
        window.start([path] if path else [])
        wait_for(lambda: "time_to_window" in window.timings_ms, [], timeout_s)
        wait_for(
            lambda: "time_to_first_scores" in window.timings_ms,
            [window.prediction_shown, window.engine_unavailable],
            timeout_s,
        )
        timings = {f"{k}_ms": round(v, 1) for k, v in window.timings_ms.items()}
        window.close()
        app.processEvents()
    log.debug("start-up timings: %s", timings)
    return timings
