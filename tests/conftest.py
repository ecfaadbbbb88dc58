"""Shared fixtures: the read-only ../shared data folder and small synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KDVIEWER_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session", autouse=True)
def _private_onnx_cache(tmp_path_factory):
    """ONNX exports made by the tests go to a temporary folder, never the user's cache."""
    old = os.environ.get("KDVIEWER_CACHE")
    os.environ["KDVIEWER_CACHE"] = str(tmp_path_factory.mktemp("kdviewer-cache"))
    yield
    if old is None:
        os.environ.pop("KDVIEWER_CACHE", None)
    else:
        os.environ["KDVIEWER_CACHE"] = old


@pytest.fixture(scope="session", autouse=True)
def _session_audit_log(tmp_path_factory):
    """Inferences made outside a test (a worker thread finishing late) never reach the user's log."""
    os.environ["KDVIEWER_AUDIT_DIR"] = str(tmp_path_factory.mktemp("kdviewer-audit-session"))


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
