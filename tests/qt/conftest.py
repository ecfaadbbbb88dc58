"""Qt test fixtures: offscreen, temporary settings, shared engines, no blocking dialogs or threads left."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

# Engines are built once (on the worker thread of the first test that needs them) and then
# handed to later windows: only one window runs at a time, so one thread uses an engine at once.
_ENGINES: dict[str, object] = {}
_ENGINE_LOCK = threading.Lock()


def shared_engine_loader(name: str):
    def load():
        with _ENGINE_LOCK:
            if name not in _ENGINES:
                from kdviewer.core.engine import load_engine

                _ENGINES[name] = load_engine(name)
            return _ENGINES[name]

    return load


@pytest.fixture
def settings(tmp_path):
    """Settings in a temporary INI file (never the user's), teacher off unless a test turns it on."""
    from kdviewer.qt.settings import ViewerSettings, make_qsettings

    s = ViewerSettings(make_qsettings(tmp_path / "kdviewer-test.ini"))
    s.teacher_enabled = False
    s.scope_gate = False  # the tests' synthetic pictures are out of scope; test_scope_banner.py turns it on
    return s


@pytest.fixture(autouse=True)
def recorded_warnings(monkeypatch):
    """QMessageBox.warning records its text instead of opening a blocking dialog."""
    from PySide6.QtWidgets import QMessageBox

    calls: list[tuple[str, str]] = []

    def record(parent, title, text, *args, **kwargs):
        calls.append((title, text))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "warning", record)
    return calls


@pytest.fixture
def make_window(qtbot, settings):
    """Factory for ViewerWindows using the shared engines; asserts every thread stopped on close."""
    from kdviewer.qt.main_window import ViewerWindow

    windows = []

    def make(loaders=None, **kwargs):
        engine_loaders = {role: shared_engine_loader(role) for role in ("student", "teacher")}
        engine_loaders.update(loaders or {})
        w = ViewerWindow(kwargs.pop("settings", settings), engine_loaders=engine_loaders, **kwargs)
        qtbot.addWidget(w)
        w.resize(1200, 800)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()
        leftover = [t.objectName() for t in w.worker_threads() if t.isRunning()]
        assert not leftover, f"threads still running after close: {leftover}"


def write_png(path, shape=(40, 32), seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, size=shape, dtype=np.uint8)).save(path)
    return str(path)


def write_truncated_png(path):
    """Sniffs as PNG (so a folder scan lists it) but cannot be decoded."""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return str(path)
