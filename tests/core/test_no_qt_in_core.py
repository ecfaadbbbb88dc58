"""The core and the CLI never import Qt (napari's rule): checked in a fresh interpreter."""

import subprocess
import sys


def test_core_and_cli_import_without_qt():
    code = (
        "import sys, importlib, pkgutil\n"
        "import kdviewer.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'kdviewer.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "import kdviewer.cli\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'PyQt'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
