"""`kdviewer screenshot`: renders the window once scoring is done, in the format the name asks for."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from kdviewer.__main__ import main


def test_screenshot_command_writes_a_scaled_jpeg(tmp_path, qapp):
    src = tmp_path / "chest.png"
    yy, xx = np.mgrid[0:96, 0:80]
    Image.fromarray((128 + 100 * np.sin(xx / 9.0) * np.cos(yy / 7.0)).astype(np.uint8)).save(src)
    full, half = tmp_path / "full.png", tmp_path / "half.jpg"
    assert main(["screenshot", str(full), str(src)]) == 0
    assert main(["screenshot", str(half), str(src), "--scale", "0.5"]) == 0
    with Image.open(full) as a, Image.open(half) as b:
        assert a.format == "PNG" and b.format == "JPEG"
        assert abs(b.width - a.width / 2) <= 1
        # not a blank picture: the window's widgets and the image are drawn
        assert np.asarray(a.convert("L")).std() > 10


@pytest.mark.timeout(180)
def test_screenshot_of_an_unreadable_file_fails_with_the_reason(tmp_path, qapp, caplog):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    out = tmp_path / "shot.png"
    with caplog.at_level(logging.ERROR):
        assert main(["screenshot", str(out), str(bad)]) == 1
    assert not out.exists()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("broken.png" in e and "cannot open" in e for e in errors), errors
