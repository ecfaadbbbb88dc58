"""The wheel carries the resources and runs `kdviewer predict` on the built-in example.

Builds the wheel, installs it without dependencies into a fresh virtual environment that borrows
the test environment's third-party packages (but not its editable kdviewer), and runs it from a
folder outside the checkout so nothing can be found through the source tree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
    )
    (whl,) = out.glob("kdviewer-*.whl")
    return whl


def test_wheel_contains_resources_and_training(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "kdviewer/cli.py" in names
    assert "training/cli.py" in names
    shipped = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "resources").rglob("*") if p.is_file())
    assert "resources/models/student.json" in shipped  # the loop below checks the models, not nothing
    for rel in shipped:
        assert f"kdviewer/_resources/{rel.removeprefix('resources/')}" in names


@pytest.mark.slow
def test_installed_wheel_predicts_on_example(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Borrow torch & co. from the test environment: a plain path line, so its .pth files
    # (among them the editable install of this checkout) are not processed.
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KDVIEWER_CACHE": str(tmp_path / "cache")}
    where = subprocess.run(
        [
            str(py),
            "-c",
            "import kdviewer, kdviewer.core.resources as r;"
            " print(kdviewer.__file__); print(r.resources_dir())",
        ],
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert where[0].startswith(site), where
    assert where[1].startswith(site) and where[1].endswith("_resources"), where
    run = subprocess.run(
        [str(venv / "bin" / "kdviewer"), "predict", "--format", "json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    (record,) = json.loads(run.stdout)
    assert record["file"].endswith("RG1_J2KR.dcm")
    assert set(record["findings"]) == {
        "atelectasis",
        "cardiomegaly",
        "consolidation",
        "edema",
        "pleural_effusion",
    }


def test_plain_install_needs_no_pytorch_and_the_extras_bring_it():
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(requirements):
        return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}

    heavy = {"torch", "torchvision", "grad-cam", "onnx", "onnxscript", "matplotlib", "opencv-python"}
    assert not names(project["dependencies"]) & heavy
    assert {"onnxruntime", "safetensors", "pyside6-essentials"} <= names(project["dependencies"])
    extras = project["optional-dependencies"]
    assert {"torch", "torchvision", "grad-cam"} <= names(extras["explain"])
    assert {"torch", "torchvision", "onnx"} <= names(extras["train"])
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "-e '.[test,train,explain]'" in makefile  # make run / make test keep everything
