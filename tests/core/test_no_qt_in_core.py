"""The core, the CLI and the training package never import Qt (napari's rule), nor does a headless
command run through the ``kdviewer`` entry point: checked in a fresh interpreter."""

import json
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


def test_predict_through_the_entry_point_loads_no_qt(tmp_path):
    """``kdviewer predict`` (the console script's main, which also starts the viewer) scores the
    built-in example and leaves no Qt module loaded; the viewer's command loads it."""
    out = tmp_path / "records.jsonl"
    code = (
        "import sys\n"
        "from kdviewer.__main__ import main\n"
        f"assert main(['predict', '--format', 'jsonl', '-o', {str(out)!r}]) == 0\n"
        "qt = lambda: [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))]\n"
        "assert not qt(), qt()\n"
        "import kdviewer.qt.settings\n"  # what a window needs: the check above would see it
        "assert qt()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["model"] == "student" and record["error"] is None
