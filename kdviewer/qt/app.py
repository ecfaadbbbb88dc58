"""The desktop viewer's entry: the application, the window, the event loop.

Qt is imported inside the functions: :func:`run_viewer` checks the system's Qt libraries first,
whose absence Qt itself reports naming the wrong library, and the ``kdviewer`` command imports
this module for every command (:mod:`kdviewer.__main__`), headless ones included. Torch and the
models load later, on worker threads. Screenshots and start-up timing are in
:mod:`kdviewer.qt.offscreen`.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Sequence

from kdviewer import __version__
from kdviewer.qt.syslibs import check_qt_libraries

log = logging.getLogger(__name__)


def make_application(argv: Sequence[str] | None = None):
    """The QApplication (created once, dark theme applied)."""
    from PySide6.QtWidgets import QApplication  # Qt: see the module docstring

    from kdviewer.qt.settings import APPLICATION, ORGANIZATION
    from kdviewer.qt.theme import apply_dark_theme

    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else [sys.argv[0]])
        app.setOrganizationName(ORGANIZATION)
        app.setApplicationName(APPLICATION)
        app.setApplicationVersion(__version__)
        apply_dark_theme(app)
    return app


def create_window(settings=None, *, t_start: float | None = None, **kwargs):
    """A ViewerWindow (not yet shown or started); the image reader process starts alongside."""
    from kdviewer.core import readpool  # with numpy and the readers: 0.12 s the headless commands skip
    from kdviewer.qt.main_window import ViewerWindow  # Qt: see the module docstring

    readpool.start()  # warm by the time the first file is read

    return ViewerWindow(settings, t_start=t_start, **kwargs)


def run_viewer(paths: list[str]) -> int:
    """Start the viewer on ``paths`` (files or folders; none: the built-in example). Returns the exit code."""
    t_start = time.perf_counter()
    if not check_qt_libraries():  # before Qt, whose own message names the wrong library
        return 1
    from PySide6.QtCore import QTimer

    app = make_application()
    window = create_window(t_start=t_start)
    signal_timer = quit_on_signals(app)
    window.show()
    QTimer.singleShot(0, lambda: window.start(list(paths)))
    rc = app.exec()
    signal_timer.stop()
    t_quit = time.perf_counter()
    window.shutdown()
    from kdviewer.core import readpool  # imported already, by create_window

    readpool.shutdown()
    log.debug(
        "viewer timings: %s; shut down in %.0f ms", window.timings_ms, 1000 * (time.perf_counter() - t_quit)
    )
    window.deleteLater()  # the widgets go now, not in the interpreter's slower final clean-up
    app.processEvents()
    return int(rc)


def quit_on_signals(app):
    """SIGTERM and SIGINT (Ctrl+C) end the event loop as File > Quit does, so settings are saved and
    threads stopped. Returns a timer to keep (and stop at the end): Python runs signal handlers only
    when the event loop hands control back to it, which the timer makes happen five times a second."""
    from PySide6.QtCore import QTimer

    def request_quit(signum, _frame):
        log.info("%s received: quitting", signal.Signals(signum).name)
        app.quit()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_quit)
    timer = QTimer()
    timer.timeout.connect(lambda: None)
    timer.start(200)
    return timer
