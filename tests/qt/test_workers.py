"""Worker threads: a newer request replaces a pending one, failures are reported, stop() joins."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from kdviewer.qt.workers import EngineWorker, LoaderWorker, PredictRequest


class GatedEngine:
    """Fake engine whose first predict blocks until released, recording what it was asked."""

    status = SimpleNamespace(usable=True, state="ok", message="")

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()
        self.seen: list[int] = []

    def predict(self, image, *, heatmaps, cam_method, request_id=None, measure_energy=True):
        self.seen.append(request_id)
        self.started.set()
        self.release.wait(10)
        return SimpleNamespace(request_id=request_id, heatmaps={}, cam_method=cam_method)


def test_newer_request_replaces_pending_one(qtbot):
    engine = GatedEngine()
    worker = EngineWorker("student", loader=lambda: engine)
    got = []
    worker.prediction_ready.connect(lambda role, pred: got.append(pred.request_id))
    with qtbot.waitSignal(worker.engine_loaded, timeout=5000):
        worker.start()
    try:
        worker.request(PredictRequest(1, None, (), "gradcam"))
        assert engine.started.wait(5)
        worker.request(PredictRequest(2, None, (), "gradcam"))  # pending, then replaced
        worker.request(PredictRequest(3, None, (), "gradcam"))
        last = lambda role, pred: pred.request_id == 3  # noqa: E731
        with qtbot.waitSignal(worker.prediction_ready, timeout=5000, check_params_cb=last):
            engine.release.set()
        assert engine.seen == [1, 3]
        assert got == [1, 3]
    finally:
        engine.release.set()
        assert worker.stop()
    assert not worker.isRunning()


def test_engine_load_failure_is_reported(qtbot):
    def fail():
        raise RuntimeError("weights file is missing")

    worker = EngineWorker("teacher", loader=fail)
    with qtbot.waitSignal(worker.engine_failed, timeout=5000) as blocker:
        worker.start()
    assert blocker.args == ["teacher", "weights file is missing"]
    worker.stop()
    assert not worker.isRunning()


def test_loader_reports_unreadable_file_by_name(qtbot, tmp_path):
    from tests.qt.conftest import write_truncated_png

    bad = write_truncated_png(tmp_path / "broken.png")
    loader = LoaderWorker()
    loader.start()
    try:
        with qtbot.waitSignal(loader.load_failed, timeout=10000) as blocker:
            loader.load(bad, 7)
        rid, path, message = blocker.args
        assert rid == 7 and path == bad and "broken.png" in message
    finally:
        loader.stop()
    assert not loader.isRunning()


@pytest.mark.parametrize("busy", [False, True])
def test_stop_joins_idle_or_busy_thread(qtbot, busy):
    engine = GatedEngine()
    worker = EngineWorker("student", loader=lambda: engine)
    with qtbot.waitSignal(worker.engine_loaded, timeout=5000):
        worker.start()
    if busy:
        worker.request(PredictRequest(1, None, (), "gradcam"))
        assert engine.started.wait(5)
        threading.Timer(0.2, engine.release.set).start()  # the job in hand finishes, then the thread ends
    assert worker.stop(timeout_ms=10000)
    assert not worker.isRunning()
