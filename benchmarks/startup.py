"""Viewer start-up: time to window, to image and to the student's first scores, in fresh processes.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/startup.py [--runs 3] [PATH]

Each run is a new Python process (so Qt, PyTorch and the models are imported and loaded as in a
real start) that calls :func:`kdviewer.qt.offscreen.measure_startup` on the built-in example (or PATH),
with the teacher off. The first run may also pay for the one-time ONNX export of the models; the
cache is the user's (``KDVIEWER_CACHE`` or ``~/.cache/kdviewer``). Prints each run and the medians.

Without options the viewer starts from the bundled model cards (``resources/models``). ``--with-card``
writes a seeded untrained student card into a temporary folder used as ``KDVIEWER_MODELS`` and warms
the ONNX cache once (for builds without bundled cards); either way the student runs from its card
and cached export, without importing PyTorch.
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

CHILD = (
    "import json, sys\n"
    "from kdviewer.qt.offscreen import measure_startup\n"
    "print(json.dumps(measure_startup(sys.argv[1] or None)))\n"
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path", nargs="?", default="", help="image to open (default: the built-in example)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--with-card", action="store_true", help="start the student from a model card")
    a = p.parse_args(argv)
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    with tempfile.TemporaryDirectory(prefix="kdviewer-cards-") as cards:
        if a.with_card:
            write_untrained_card(cards, "student")
            env["KDVIEWER_MODELS"] = cards
            warm = "from kdviewer.core.engine import load_engine; load_engine('student')"
            subprocess.run([sys.executable, "-c", warm], env=env, check=True, capture_output=True)
        return _runs(a, env)


def _runs(a, env) -> int:
    runs = []
    for i in range(a.runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, a.path], env=env, check=True, capture_output=True, text=True
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(f"run {i + 1}: " + ", ".join(f"{k} {v:.0f}" for k, v in runs[-1].items()))
    keys = [k for k in runs[0] if all(k in r for r in runs)]
    print("median: " + ", ".join(f"{k} {statistics.median(r[k] for r in runs):.0f}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
