"""The start-up check that names the system libraries Qt lacks (issue #11, part 9)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from kdviewer.qt.syslibs import (
    QT_GUI_LIBRARIES,
    QT_XCB_LIBRARIES,
    can_load,
    check_qt_libraries,
    missing_qt_libraries,
    uses_xcb,
)


class FakeLoader:
    """Loads everything except ``absent``; records what it was asked for."""

    def __init__(self, *absent: str):
        self.absent = set(absent)
        self.asked: list[str] = []

    def __call__(self, soname: str) -> bool:
        self.asked.append(soname)
        return soname not in self.absent


def test_names_the_missing_xcb_libraries_and_their_packages():
    load = FakeLoader("libxcb-icccm.so.4", "libxcb-keysyms.so.1")
    missing = missing_qt_libraries(load=load, platform="linux", env={"QT_QPA_PLATFORM": "xcb"})
    assert missing == {"libxcb-icccm.so.4": "libxcb-icccm4", "libxcb-keysyms.so.1": "libxcb-keysyms1"}
    assert set(load.asked) == set(QT_GUI_LIBRARIES) | set(QT_XCB_LIBRARIES)


def test_one_log_line_with_the_apt_get_command(caplog):
    load = FakeLoader("libxcb-cursor.so.0", "libglib-2.0.so.0", "libgthread-2.0.so.0")
    with caplog.at_level(logging.ERROR, logger="kdviewer.qt.syslibs"):
        ok = check_qt_libraries(load=load, platform="linux", env={})
    assert not ok
    [record] = caplog.records
    text = record.getMessage()
    assert "\n" not in text
    assert "libxcb-cursor.so.0" in text and "libglib-2.0.so.0" in text
    # each package once, even when two of its libraries are missing
    assert text.endswith("sudo apt-get install libglib2.0-0 libxcb-cursor0")


def test_nothing_missing_logs_nothing(caplog):
    with caplog.at_level(logging.ERROR):
        assert check_qt_libraries(load=FakeLoader(), platform="linux", env={"QT_QPA_PLATFORM": "xcb"})
    assert not caplog.records


@pytest.mark.parametrize(
    "env",
    [{"QT_QPA_PLATFORM": "offscreen"}, {"QT_QPA_PLATFORM": "wayland;xcb"}, {"XDG_SESSION_TYPE": "wayland"}],
)
def test_other_platforms_need_only_the_gui_libraries(env):
    load = FakeLoader("libxcb-icccm.so.4")
    assert missing_qt_libraries(load=load, platform="linux", env=env) == {}
    assert set(load.asked) == set(QT_GUI_LIBRARIES)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, True),
        ({"XDG_SESSION_TYPE": "x11"}, True),
        ({"QT_QPA_PLATFORM": "xcb:nograb"}, True),
        ({"QT_QPA_PLATFORM": " xcb ;wayland"}, True),
        ({"QT_QPA_PLATFORM": "offscreen", "XDG_SESSION_TYPE": "x11"}, False),
    ],
)
def test_which_platform_qt_tries_first(env, expected):
    assert uses_xcb(env) is expected


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_not_checked_off_linux(platform):
    load = FakeLoader("libxcb-icccm.so.4")
    assert missing_qt_libraries(load=load, platform=platform, env={}) == {}
    assert load.asked == []


def test_real_loader():
    assert can_load("libc.so.6")
    assert not can_load("libkdviewer-no-such-library.so.7")


def test_agrees_with_ldd_on_the_installed_xcb_plugin():
    """Whatever the dynamic linker cannot find for Qt's xcb plugin here, the check names too."""
    import PySide6

    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file() or shutil.which("ldd") is None:
        pytest.skip("needs Linux, ldd and PySide6's xcb plugin")
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True).stdout
    not_found = {line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line}
    missing = missing_qt_libraries(platform="linux", env={"QT_QPA_PLATFORM": "xcb"})
    assert not_found <= set(missing)
