"""How long the GUI thread waits when the DICOM node is first used: File > Query PACS… (the
dialog, and the network library it needs) and File > Receive over DICOM (the library, and the
measurement of a store folder of ``--files`` files). Prints, for the action: the time from the
trigger to its return (the GUI thread is blocked that long), the time until the node is ready,
and the longest gap between 5 ms timer ticks meanwhile (the longest the event loop was stalled).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/dicom_node_stall.py pacs
    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/dicom_node_stall.py listen --files 20000

Run each in a fresh interpreter: the first use pays for importing pynetdicom. A benchmark, not a
test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QMainWindow

from kdviewer.qt.dicom_node import install


class _Model:
    def add_studies(self, paths) -> None:
        pass


def _window() -> QMainWindow:
    """The least that :func:`install` needs of a viewer window: a File menu ending in Quit."""
    window = QMainWindow()
    window.model, window.settings = _Model(), None
    window.menuBar().addMenu("&File").addAction(QAction("Quit", window))
    return window


def _fill(root: Path, files: int) -> None:
    for i in range(0, files, 100):
        study = root / f"1.2.{i}"
        study.mkdir(parents=True)
        for j in range(min(100, files - i)):
            (study / f"1.3.{j}.dcm").write_bytes(b"\0" * 512)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("pacs", "listen"))
    parser.add_argument("--files", type=int, default=20000, help="files in the store (listen)")
    args = parser.parse_args()
    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        _fill(store, args.files if args.what == "listen" else 0)
        os.environ.update(KDVIEWER_DICOM_STORE=str(store), KDVIEWER_DICOM_PORT="0")
        window = _window()
        receiver = install(window)
        if args.what == "pacs":
            action = receiver.query_action

            def ready() -> bool:
                return bool(receiver.dialogs) and receiver.dialogs[0].search_button.isEnabled()
        else:
            action = receiver.action

            def ready() -> bool:
                return receiver.running

        ticks = [time.perf_counter()]
        timer = QTimer(interval=5)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start()
        start = time.perf_counter()
        action.trigger()
        returned = time.perf_counter()
        ticks.append(returned)
        while not ready() and time.perf_counter() - start < 60:
            app.processEvents()
            time.sleep(0.001)
        done = time.perf_counter()
        stall = max(b - a for a, b in zip(ticks, ticks[1:], strict=False))
        print(
            f"{args.what}{f' ({args.files} files)' if args.what == 'listen' else ''}: trigger returned after"
            f" {1000 * (returned - start):.0f} ms; ready after {1000 * (done - start):.0f} ms;"
            f" longest event-loop stall {1000 * stall:.0f} ms"
        )
        receiver.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
