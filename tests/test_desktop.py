"""``kdviewer --install-desktop`` / ``--uninstall-desktop`` with a temporary XDG_DATA_HOME."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys

import pytest

from kdviewer import desktop
from kdviewer.cli import main


@pytest.fixture()
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "share"


def _entry(path):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_install_writes_entry_and_icon_and_uninstall_removes_them(data_home, capsys):
    assert main(["--install-desktop"]) == 0
    entry_path = data_home / "applications" / "kdviewer.desktop"
    icon = data_home / "icons" / "hicolor" / "scalable" / "apps" / "kdviewer.svg"
    assert f"installed {entry_path}" in capsys.readouterr().out
    entry = _entry(entry_path)
    assert entry["Type"] == "Application" and entry["Icon"] == "kdviewer"
    assert entry["MimeType"].split(";")[:3] == ["application/dicom", "image/png", "image/jpeg"]
    command = shlex.split(entry["Exec"])
    assert command[-1] == "%F" and command[:-1] == desktop.launch_command()
    assert command[0].startswith("/")  # a file manager's PATH may not hold this environment
    assert icon.read_bytes().startswith(b"<svg")
    assert main(["--install-desktop"]) == 0  # again: replaced, not duplicated
    assert sorted(p.name for p in entry_path.parent.iterdir() if not p.name.endswith(".cache")) == [
        "kdviewer.desktop"
    ]

    assert main(["--uninstall-desktop"]) == 0
    assert not entry_path.exists() and not icon.exists()
    assert main(["--uninstall-desktop"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_uninstall_leaves_an_entry_kdviewer_did_not_write(data_home):
    entry_path = data_home / "applications" / "kdviewer.desktop"
    entry_path.parent.mkdir(parents=True)
    entry_path.write_text("[Desktop Entry]\nType=Application\nName=mine\nExec=mine %F\n")
    assert main(["--uninstall-desktop"]) == 0
    assert entry_path.read_text().endswith("Exec=mine %F\n")


def test_relative_xdg_data_home_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", "relative/share")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert desktop.desktop_file() == tmp_path / ".local" / "share" / "applications" / "kdviewer.desktop"


@pytest.mark.parametrize(
    "arg, written",
    [
        ("/opt/kdviewer/kdviewer", "/opt/kdviewer/kdviewer"),
        ("/home/a b/kdviewer", '"/home/a b/kdviewer"'),
        ('/x/"q"$`', '"/x/\\\\"q\\\\"\\\\$\\\\`"'),
        ("/x/back\\slash", '"/x/back\\\\\\\\slash"'),
        ("/x/100%", "/x/100%%"),
    ],
)
def test_exec_arguments_are_quoted_as_the_specification_asks(arg, written):
    assert desktop._exec_arg(arg) == written


def test_launch_command_is_the_bundle_when_frozen(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert desktop.launch_command() == [str(desktop.Path(sys.executable).absolute())]


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_entry_passes_desktop_file_validate(data_home):
    assert main(["--install-desktop"]) == 0
    run = subprocess.run(
        ["desktop-file-validate", str(desktop.desktop_file())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0 and run.stdout == "", run.stdout + run.stderr
