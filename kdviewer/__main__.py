"""``python -m kdviewer [PATH...]`` starts the desktop viewer (same dispatch as the ``kdviewer`` command)."""

from __future__ import annotations

import sys

from kdviewer.cli import main as cli_main


def main() -> int:
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
