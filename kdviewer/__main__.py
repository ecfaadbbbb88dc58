"""``python -m kdviewer [PATH...]`` starts the desktop viewer."""

from __future__ import annotations

import sys


def main() -> int:
    from kdviewer.qt.app import run_viewer

    return run_viewer(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
