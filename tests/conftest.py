"""Shared fixtures: the read-only ../shared data folder and small synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The DICOM node's peers (a real Orthanc, DCMTK) for tests/net and tests/qt: one Orthanc a session.
from tests.net.peers import dcmtk, orthanc  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KDVIEWER_SHARED", REPO.parent / "shared"))


def pytest_configure(config):
    # Before any test builds a QApplication, and only for a run that does not choose a platform.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session", autouse=True)
def _private_onnx_cache(tmp_path_factory):
    """ONNX exports made by the tests go to a temporary folder, never the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KDVIEWER_CACHE", str(tmp_path_factory.mktemp("kdviewer-cache")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _session_audit_log(tmp_path_factory):
    """Inferences made outside a test (a worker thread finishing late) never reach the user's log."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KDVIEWER_AUDIT_DIR", str(tmp_path_factory.mktemp("kdviewer-audit-session")))
        yield


@pytest.fixture(autouse=True)
def _private_audit_log(_session_audit_log, tmp_path_factory, monkeypatch):
    """Every test's inferences are audited into its own folder, never the user's audit log."""
    monkeypatch.setenv("KDVIEWER_AUDIT_DIR", str(tmp_path_factory.mktemp("kdviewer-audit")))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it are skipped (not passed) where it is absent."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"shared data not found at {data}")
    return data


@pytest.fixture(scope="session")
def dicom_dir(shared_data: Path) -> Path:
    return shared_data / "dicom"


@pytest.fixture(scope="session")
def nih_dir(shared_data: Path) -> Path:
    return shared_data / "nih"
