"""Peers for the DICOM node's tests: a real Orthanc on free loopback ports with a temporary
configuration, ``kdviewer listen`` as a subprocess, and DCMTK's command-line tools.

Nothing here uses a system service or leaves the loopback interface. Tests skip, saying why,
only where Orthanc or DCMTK is not installed (``.ci/run`` installs both).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

LISTENER_AE = "KDVIEWER"
ORTHANC_AE = "ORTHANC"
MOVE_AE = "KDMOVE"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:g} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Orthanc:
    """A running Orthanc: its REST API on ``http_port`` and DICOM on ``dicom_port``."""

    http_port: int
    dicom_port: int
    listener_port: int  # the port Orthanc knows the kdviewer listener (modality "kdviewer") at
    move_port: int  # where Orthanc sends C-MOVEs to AE KDMOVE (modality "kdmove")

    def rest(self, method: str, path: str, body: bytes | dict | str | None = None):
        data = (
            json.dumps(body).encode()
            if isinstance(body, (dict, list))
            else (body.encode() if isinstance(body, str) else body)
        )
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
        if resp.headers.get_content_type() == "application/json":
            return json.loads(raw)
        return raw

    def upload(self, path: Path) -> dict:
        return self.rest("POST", "/instances", path.read_bytes())

    def clear(self) -> None:
        for pid in self.rest("GET", "/patients"):
            self.rest("DELETE", f"/patients/{pid}")


def _require(*commands: str) -> None:
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: apt-get install orthanc dcmtk)")


@pytest.fixture(scope="session")
def dcmtk() -> None:
    _require("storescu", "findscu")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Orthanc:
    """Orthanc with a throw-away configuration; modality ``kdviewer`` (AE KDVIEWER) is the
    listener the tests start on ``listener_port``, and also the AE the node queries with."""
    _require("Orthanc")
    root = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port, listener_port, move_port = free_port(), free_port(), free_port(), free_port()
    config = {
        "Name": "kdviewer-test",
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AE,
        "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
        "Plugins": [],
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowEcho": True,
        "DicomCheckModalityHost": False,
        "DicomModalities": {
            "kdviewer": [LISTENER_AE, "127.0.0.1", listener_port],
            "kdmove": [MOVE_AE, "127.0.0.1", move_port],
        },
        "StableAge": 1,
        "OverwriteInstances": True,
        "StorageCompression": False,
    }
    cfg = root / "orthanc.json"
    cfg.write_text(json.dumps(config))
    log = open(root / "orthanc.log", "wb")  # noqa: SIM115 - Orthanc writes to it until it stops
    proc = subprocess.Popen(["Orthanc", str(cfg)], stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        wait_for_port(http_port, proc, 60, "Orthanc")
        wait_for_port(dicom_port, proc, 30, "Orthanc")
        yield Orthanc(http_port, dicom_port, listener_port, move_port)
    finally:
        stop(proc)
        log.close()


@dataclass
class Listening:
    """A ``kdviewer listen`` subprocess."""

    proc: subprocess.Popen
    port: int
    store: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_listener(store: Path, port: int, *extra: str, timeout: float = 90) -> Listening:
    """``kdviewer listen`` on ``port``, waited for until it accepts connections."""
    log_path = store.parent / f"listen-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "kdviewer.cli",
        "listen",
        "--port",
        str(port),
        "--ae-title",
        LISTENER_AE,
        "--store",
        str(store),
        *extra,
    ]
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed once it has it
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    try:
        wait_for_port(port, proc, timeout, "kdviewer listen")
    except RuntimeError as exc:
        stop(proc)
        raise RuntimeError(f"{exc}\n{log_path.read_text(errors='replace')}") from None
    return Listening(proc, port, store, log_path)


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
