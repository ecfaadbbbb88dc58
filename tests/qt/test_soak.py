"""Two minutes of the soak benchmark: the real window, a mixed folder, a reader's actions (issue #11, part 2).

``benchmarks/soak.py`` runs the window in a child process and judges it from outside; here it must
finish without a crash, without Python errors in the GUI and with resident memory growing at most
10 % after warm-up, having shown the folder's images and run both models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.timeout(900)
def test_two_minute_soak(shared_data, tmp_path):
    out = tmp_path / "soak.json"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "KDVIEWER_SHARED": str(shared_data.parent)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--minutes", "2", "--json", str(out)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=840,
    )
    report = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    s = json.loads(out.read_text())
    assert s["child_returncode"] == 0
    assert s["files"] >= 30 and s["visited"] >= 30, report
    assert s["warmup_complete"], report
    assert s["inferences"]["student"] > 0 and s["inferences"]["teacher"] > 0, report
    assert all(n > 0 for n in s["actions"].values()), report
    assert s["error_count"] == 0, report
    assert max(s["growth_after_warmup"]) <= 0.10, report
