"""How long the viewer's GUI thread goes without running, while it opens the built-in example.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_stall.py [--runs 3] [--with-card]

A 10 ms QTimer on the GUI thread records when it actually fires, from the start of the window
until the student's scores and heat map are shown; the longest gap between two ticks is the
longest the window could not repaint or react. Each run is a fresh process, teacher off.
The student starts from the bundled model card and its cached ONNX export; ``--with-card`` uses a
seeded untrained card in a temporary ``KDVIEWER_MODELS`` folder instead (see benchmarks/startup.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from kdviewer.core.untrained import write_untrained_card

CHILD = r"""
import json, sys, tempfile, time
from kdviewer.qt.app import create_window, make_application
from kdviewer.qt.offscreen import temporary_settings, wait_for
from PySide6.QtCore import QTimer
app = make_application()
ticks = []
timer = QTimer()
timer.setInterval(10)
timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
with tempfile.TemporaryDirectory() as tmp:
    w = create_window(temporary_settings(tmp, teacher=False))
    w.show()
    timer.start()
    t0 = time.perf_counter()
    w.start([])
    wait_for(w.is_view_complete, [w.view_ready, w.prediction_shown, w.image_refined], 300)
    t1 = time.perf_counter()
    timer.stop()
    w.close()
gaps = [b - a for a, b in zip(ticks, ticks[1:])]
print(json.dumps({"max_gap_ms": 1000 * max(gaps), "ticks": len(ticks), "until_ready_ms": 1000 * (t1 - t0)}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--with-card", action="store_true")
    a = p.parse_args(argv)
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    with tempfile.TemporaryDirectory(prefix="kdviewer-cards-") as cards:
        return _runs(a, env, cards)


def _runs(a, env, cards) -> int:
    if a.with_card:
        write_untrained_card(cards, "student")
        env["KDVIEWER_MODELS"] = cards
        subprocess.run(
            [sys.executable, "-c", "from kdviewer.core.engine import load_engine; load_engine('student')"],
            env=env,
            check=True,
            capture_output=True,
        )
    runs = []
    for i in range(a.runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD], env=env, check=True, capture_output=True, text=True
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(
            f"run {i + 1}: longest GUI stall {runs[-1]['max_gap_ms']:.0f} ms "
            f"(until scores shown {runs[-1]['until_ready_ms']:.0f} ms)"
        )
    print(f"median longest stall: {statistics.median(r['max_gap_ms'] for r in runs):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
