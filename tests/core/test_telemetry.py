"""Telemetry buffer: bounded, ordered, thread-safe, exportable."""

import csv
import threading

import pytest

from kdviewer.core.telemetry import InferenceSample, Telemetry


def _sample(t, name="student", **kw):
    timings = {"preprocess": 1.0, "forward": 2.0, "heatmap": 0.5, "total": 3.5}
    return InferenceSample(t=t, model_name=name, timings_ms=timings, **kw)


def test_bounded_and_ordered():
    tel = Telemetry(maxlen=3)
    for i in range(5):
        tel.append(_sample(float(i)))
    assert [s.t for s in tel.snapshot()] == [2.0, 3.0, 4.0]
    assert len(tel) == 3 and tel.maxlen == 3


def test_since_is_strictly_after():
    tel = Telemetry()
    for i in range(4):
        tel.append(_sample(float(i)))
    assert [s.t for s in tel.since(1.0)] == [2.0, 3.0]
    assert tel.since(10.0) == []


def test_snapshot_is_a_copy_and_clear_empties():
    tel = Telemetry()
    tel.append(_sample(1.0))
    snap = tel.snapshot()
    tel.clear()
    assert len(snap) == 1 and len(tel) == 0


def test_sample_timings_are_read_only():
    s = _sample(1.0)
    with pytest.raises(TypeError):
        s.timings_ms["total"] = 0.0  # type: ignore[index]


def test_concurrent_appends_lose_nothing():
    tel = Telemetry(maxlen=10_000)

    def work(k):
        for i in range(500):
            tel.append(_sample(k * 1000 + i, name=f"m{k}"))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tel) == 2000


def test_to_csv(tmp_path):
    tel = Telemetry()
    tel.append(_sample(1.0, energy_mj=12.5, power_w=3.0, energy_method="RAPL package", is_estimate=False))
    tel.append(_sample(2.0, name="teacher"))
    rows = list(csv.DictReader(tel.to_csv(tmp_path / "t.csv").read_text(encoding="utf-8").splitlines()))
    assert [r["model_name"] for r in rows] == ["student", "teacher"]
    assert float(rows[0]["total_ms"]) == 3.5
    assert float(rows[0]["energy_mj"]) == 12.5 and rows[0]["energy_method"] == "RAPL package"
    assert rows[1]["energy_mj"] == "" and rows[1]["is_estimate"] == "0"
