"""The ``kdviewer`` command and ``python -m kdviewer``: the viewer, and every headless command.

:mod:`kdviewer.cli` parses the command line and runs the headless commands without Qt; the viewer
(``kdviewer [PATH...]``) and ``kdviewer screenshot`` run here, through :class:`QtViewer`. Importing
:mod:`kdviewer.qt.app` and :mod:`kdviewer.qt.offscreen` loads no Qt (they import PySide6 when a
window is made), so ``kdviewer predict`` never does: tests/core/test_no_qt_in_core.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from kdviewer import cli
from kdviewer.qt.app import run_viewer
from kdviewer.qt.offscreen import screenshot


class QtViewer:
    """The commands that need Qt (:class:`kdviewer.cli.Viewer`)."""

    def view(self, paths: list[str]) -> int:
        return run_viewer(paths)

    def screenshot(self, out: str, path: str | None, scale: float) -> int:
        return screenshot(out, path, scale=scale)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kdviewer`` with ``argv`` (default: ``sys.argv[1:]``); the exit status."""
    return cli.main(argv, viewer=QtViewer())


if __name__ == "__main__":
    raise SystemExit(main())
