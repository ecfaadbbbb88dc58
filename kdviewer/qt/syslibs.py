"""The system libraries Qt needs on Linux, checked before Qt loads, named by their Debian package.

PySide6's wheels bundle Qt but not the X11/xcb, OpenGL and font libraries it links against. When
one is missing, Qt only says that it "could not load the Qt platform plugin "xcb"" and suggests
reinstalling the application, which does not help. This module tries to load each library by
its soname (what the dynamic linker would do for Qt) and names the missing ones with the
``apt-get`` line that installs them. It imports no Qt, so it can run before Qt fails.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

# soname -> Debian/Ubuntu package, from `objdump -p` of PySide6 6.11's libQt6Core/Gui/Widgets/DBus
# (any platform, offscreen included) ...
QT_GUI_LIBRARIES: dict[str, str] = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11.so.6": "libx11-6",
    "libdbus-1.so.3": "libdbus-1-3",
}
# ... and of plugins/platforms/libqxcb.so with libQt6XcbQpa (the X11 window system plugin).
QT_XCB_LIBRARIES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}


def can_load(soname: str) -> bool:
    """True when the dynamic linker finds and loads ``soname`` (as it would for Qt)."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def uses_xcb(env: Mapping[str, str]) -> bool:
    """Whether Qt will try the X11 (xcb) platform plugin first, as Qt 6 picks it on Linux.

    ``QT_QPA_PLATFORM`` is a ``;``-separated list tried in order (each with optional
    ``:options``); unset, Qt takes xcb, or Wayland first in a Wayland session.
    """
    requested = env.get("QT_QPA_PLATFORM", "").strip()
    if requested:
        return requested.split(";")[0].split(":")[0].strip() == "xcb"
    return env.get("XDG_SESSION_TYPE", "").lower() != "wayland"


def missing_qt_libraries(
    *,
    load: Callable[[str], bool] = can_load,
    platform: str = sys.platform,
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The libraries Qt will need here and cannot load: {soname: Debian package}.

    Empty off Linux (the wheels bring what they need there) and when nothing is missing.
    """
    if not platform.startswith("linux"):
        return {}
    env = os.environ if env is None else env
    wanted = dict(QT_GUI_LIBRARIES)
    if uses_xcb(env):
        wanted.update(QT_XCB_LIBRARIES)
    return {soname: package for soname, package in wanted.items() if not load(soname)}


def missing_libraries_message(missing: Mapping[str, str]) -> str:
    """One line naming the missing libraries and the command that installs them."""
    packages = " ".join(dict.fromkeys(missing.values()))  # once each, in order
    return (
        f"Qt cannot start: missing system libraries {', '.join(missing)}; "
        f"on Debian/Ubuntu install them with: sudo apt-get install {packages}"
    )


def check_qt_libraries(**kwargs) -> bool:
    """Log one clear error and return False when Qt would fail for want of a system library."""
    missing = missing_qt_libraries(**kwargs)
    if missing:
        log.error(missing_libraries_message(missing))
        return False
    return True
