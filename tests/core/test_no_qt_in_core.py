"""The core, the CLI and the training package never import Qt (napari's rule): checked in a
fresh interpreter."""

import subprocess
import sys


def test_core_cli_and_training_import_without_qt():
    code = (
        "import sys, importlib, pkgutil\n"
        "import kdviewer.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'kdviewer.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "import kdviewer.cli\n"
        "import training\n"
        "for m in pkgutil.walk_packages(training.__path__, 'training.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'PyQt'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
