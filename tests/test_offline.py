"""Offline means zero sockets: `kdviewer predict --teacher` run for more than 20 s (ONNX Runtime's
telemetry used to look up its collector about 10 s after the first session) opens no network
socket, in Python or in native code, and leaves no telemetry files in the home folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import offline_audit

TESTS = str(Path(__file__).resolve().parent)
MIN_SECONDS = 22.0

needs_strace = pytest.mark.skipif(
    shutil.which("strace") is None,
    reason="strace is not installed (apt-get install strace): the Python audit hook alone cannot see "
    "sockets opened by native code such as ONNX Runtime's telemetry",
)


def _python_with_audit(log: Path, body: str) -> list[str]:
    code = (
        f"import sys; sys.path.insert(0, {TESTS!r}); import offline_audit; "
        f"offline_audit.install({str(log)!r})\n"
    )
    return [sys.executable, "-c", code + body]


def _offline_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    env.pop("ORT_DISABLE_TELEMETRY", None)  # kdviewer must turn the telemetry off by itself
    return env


def test_audit_hook_catches_and_blocks_a_deliberate_lookup(tmp_path):
    log = tmp_path / "audit.log"
    body = (
        "import socket\n"
        "a, b = socket.socketpair()  # local plumbing: allowed\n"
        "for call in (lambda: socket.getaddrinfo('kdviewer.invalid', 443),\n"
        "             lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)):\n"
        "    try:\n"
        "        call()\n"
        "    except PermissionError:\n"
        "        print('blocked')\n"
    )
    proc = subprocess.run(_python_with_audit(log, body), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["blocked", "blocked"]
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events == ["socket.getaddrinfo", "socket.__new__"]


@needs_strace
def test_strace_audit_catches_a_deliberate_socket(tmp_path):
    log = tmp_path / "strace.log"
    code = "import socket; a, b = socket.socketpair(); s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
    subprocess.run(
        [*offline_audit.strace_prefix(str(log)), sys.executable, "-c", code], check=True, timeout=60
    )
    found = offline_audit.network_calls(log.read_text())
    assert len(found) == 1 and "socket(AF_INET, SOCK_DGRAM" in found[0]  # the socketpair is not network


@needs_strace
def test_predict_with_teacher_for_20_seconds_opens_no_socket(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (512, 512), dtype=np.uint8)).save(folder / f"{i}.png")
    home = tmp_path / "home"
    home.mkdir()
    audit_log, strace_log, out = tmp_path / "audit.log", tmp_path / "strace.log", tmp_path / "out.json"
    body = (
        f"sys.exit(offline_audit.run_predict_for({MIN_SECONDS}, "
        f"['predict', '--teacher', '-o', {str(out)!r}, {str(folder)!r}]))"
    )
    cmd = [*offline_audit.strace_prefix(str(strace_log)), *_python_with_audit(audit_log, body)]
    proc = subprocess.run(cmd, env=_offline_env(home), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seconds = float(re.search(r"offline-audit: \d+ runs in ([\d.]+) s", proc.stderr).group(1))
    assert seconds >= MIN_SECONDS
    records = json.loads(out.read_text())
    assert sorted({r["model"] for r in records}) == ["student", "teacher"] and len(records) == 16

    assert offline_audit.network_calls(strace_log.read_text()) == []
    assert audit_log.read_text() == ""
    assert not (home / ".cache" / "Microsoft").exists()
    telemetry = [p for p in home.rglob("*") if any(w in p.name.lower() for w in ("onnxruntime", "microsoft"))]
    assert telemetry == []
