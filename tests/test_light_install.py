"""The light install (``pip install kdviewer``, no extras): predict, info and the viewer run with
PyTorch, torchvision, grad-cam, onnx and the train extra unimportable, from the shipped ONNX graphs, exporting
nothing into the cache.

Each test runs a fresh Python in which those packages read as not installed (``None`` in
``sys.modules``: an import anywhere, even inside a function, raises ModuleNotFoundError, and
``importlib.util.find_spec`` answers None, as for a package that is absent), with an empty
temporary home folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCKED = ("torch", "torchvision", "pytorch_grad_cam", "onnx", "onnxscript", "cv2", "matplotlib", "tqdm")
RUN = f"""
import sys

for name in {BLOCKED!r}:
    sys.modules[name] = None  # as if not installed
from kdviewer.__main__ import main
code = main(sys.argv[1:])
loaded = [m for m in sys.modules if m.split(".")[0] in {BLOCKED!r} and sys.modules[m] is not None]
assert not loaded, f"imported despite the block: {{loaded}}"
sys.exit(code)
"""


def _run(home: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KDVIEWER_", "XDG_"))}
    env.update(HOME=str(home), QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-c", RUN, *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _exported(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.suffix == ".onnx"]


def test_the_blocker_blocks(tmp_path):
    code = RUN.replace("from kdviewer.__main__ import main", "import torch")
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode != 0 and "ModuleNotFoundError: import of torch halted" in run.stderr


def test_every_command_imports_without_pytorch(tmp_path):
    """The modules behind every command (bench, report, the DICOM node, the entry point) import in
    the light install: PyTorch is imported only where a command uses it."""
    code = RUN.replace(
        "from kdviewer.__main__ import main\ncode = main(sys.argv[1:])",
        "import kdviewer.__main__, kdviewer.bench, kdviewer.report, kdviewer.net.commands\ncode = 0",
    )
    assert code != RUN
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr


def test_predict_with_both_models_without_pytorch(tmp_path):
    run = _run(tmp_path, "predict", "--teacher", "--format", "jsonl")
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["model"] for r in records] == ["student", "teacher"]
    assert all(r["error"] is None and r["trained"] for r in records)
    assert _exported(tmp_path) == []  # the shipped graphs ran, no first-run export


def test_info_without_pytorch_lists_verified_models(tmp_path):
    run = _run(tmp_path, "info", "--json")
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    assert info["extras"] == {"pytorch": False, "library_heatmaps": False}
    assert {m["name"] for m in info["models"]} == {"student", "student_plain", "teacher"}
    assert all(m["verified"] and m["onnx_sha256"] for m in info["models"])
    assert info["architectures"]["mobilenet_v2"]["parameters"] == 2_230_277
    assert info["architectures"]["densenet121"]["parameters"] == 6_958_981


def test_library_heat_maps_say_they_need_the_explain_extra(tmp_path):
    code = RUN.replace(
        "from kdviewer.__main__ import main\ncode = main(sys.argv[1:])",
        (
            "from kdviewer.core.engine import load_engine, reference_image\n"
            "eng = load_engine('student')\n"
            "try:\n"
            "    eng.predict(reference_image(), cam_method='gradcam++', measure_energy=False)\n"
            "except ImportError as exc:\n"
            "    print(exc)\n"
            "code = 0\n"
        ),
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "gradcam++ heat map needs PyTorch" in run.stdout and "kdviewer[explain]" in run.stdout


@pytest.mark.slow
def test_viewer_screenshot_without_pytorch(tmp_path):
    out = tmp_path / "shot.png"
    run = _run(tmp_path, "screenshot", str(out), "--scale", "0.3", timeout=300)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _exported(tmp_path) == []


def test_viewer_greys_out_the_library_heat_map_methods(tmp_path):
    code = RUN.replace(
        "from kdviewer.__main__ import main\ncode = main(sys.argv[1:])",
        (
            "from PySide6.QtWidgets import QApplication\n"
            "from PySide6.QtCore import Qt\n"
            "app = QApplication([])\n"
            "from kdviewer.qt.overlay_controls import OverlayControls\n"
            "combo = OverlayControls().method_combo\n"
            "for i in range(combo.count()):\n"
            "    tip = combo.itemData(i, Qt.ItemDataRole.ToolTipRole) or ''\n"
            "    print(combo.itemText(i), combo.model().item(i).isEnabled(), tip)\n"
            "code = 0\n"
        ),
    )
    env = {**os.environ, "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    rows = [line.split(" ", 2) for line in run.stdout.splitlines()]
    assert rows[0][:2] == ["gradcam", "True"]
    assert [r[0] for r in rows[1:]] == ["gradcam++", "xgradcam", "eigencam", "layercam"]
    assert all(r[1] == "False" and "needs the explain extra" in r[2] for r in rows[1:])
