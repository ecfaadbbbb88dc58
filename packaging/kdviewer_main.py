"""The bundle's entry point: ``kdviewer`` as the installed command runs it.

``freeze_support`` first: the isolated image reader is a ``spawn`` child process, which a frozen
executable starts by running itself again with multiprocessing's arguments.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from kdviewer.__main__ import main

    sys.exit(main())
