"""Viewer start-up from the moment the process starts: a first (cold) start with an empty home
folder and caches, then warm starts, for any installed environment.

    QT_QPA_PLATFORM=offscreen python3 benchmarks/cold_start.py --python /tmp/light/bin/python [--runs 4]

Each run is a new process of ``--python`` (so an installed light environment, a bundle-like
install, or the development one) that imports the viewer and calls
:func:`kdviewer.qt.offscreen.measure_startup` on the built-in example, teacher off. Times count from just
before the process is created, so Python's own start and every import are included (what a user
waits for). All runs share one fresh ``HOME`` (no ``KDVIEWER_*`` or ``XDG_*`` variables): the
first finds every cache empty, the later ones find what the first left. The operating system's
file cache cannot be emptied without privileges, so "cold" here means a first start after the
install, not after a reboot. Prints each run, the medians of the warm runs and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = (
    "import json, time\n"
    "t = time.time()\n"
    "from kdviewer.qt.offscreen import measure_startup\n"
    "t_call = time.time()\n"
    "r = measure_startup()\n"
    "print(json.dumps({'t0': t, 't_call': t_call, **r}))\n"
)
KEYS = ("time_to_window_ms", "time_to_image_ms", "time_to_first_scores_ms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", default=sys.executable, help="the environment's Python (default: this one)")
    p.add_argument("--runs", type=int, default=4, help="the cold run and the warm ones (default 4)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kdviewer-home-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KDVIEWER_", "XDG_"))}
        env.update(HOME=home, QT_QPA_PLATFORM=env.get("QT_QPA_PLATFORM", "offscreen"))
        rows = []
        for i in range(a.runs):
            load = os.getloadavg()[0]
            spawn = time.time()
            out = subprocess.run(
                [a.python, "-c", CHILD],
                env=env,
                cwd=home,
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            offset = (r["t_call"] - spawn) * 1e3
            row = {
                "python_start_ms": (r["t0"] - spawn) * 1e3,
                "imports_ms": (r["t_call"] - r["t0"]) * 1e3,
                **{k: r[k] + offset for k in KEYS if k in r},
                "load_1min": load,
            }
            rows.append(row)
            label = "cold" if i == 0 else "warm"
            print(
                f"run {i + 1} ({label}): "
                + ", ".join(f"{k} {v:.0f}" if k != "load_1min" else f"load {v:.2f}" for k, v in row.items())
            )
        if len(rows) > 1:
            warm = rows[1:]
            print(
                "warm median: "
                + ", ".join(
                    f"{k} {statistics.median(r[k] for r in warm):.0f}"
                    for k in (*KEYS, "load_1min")
                    if all(k in r for r in warm)
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
