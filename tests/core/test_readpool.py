"""Reads in the helper process: same images and errors as in-process, within time and memory limits."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from kdviewer.core import readpool
from kdviewer.core.errors import ImageReadError
from kdviewer.core.imageio import read_image
from kdviewer.core.preprocess import MODEL_READ_MIN_SIDE
from kdviewer.core.resources import example_image


def _png(path):
    from PIL import Image

    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(path)
    return path


def test_reads_happen_in_another_process_and_match():
    assert readpool.helper_pid() != os.getpid()
    for kwargs in ({}, {"reduce_to": MODEL_READ_MIN_SIDE}):
        here = read_image(example_image(), **kwargs)
        there = readpool.read_image_isolated(example_image(), **kwargs)
        np.testing.assert_array_equal(there.pixels, here.pixels)
        assert there.metadata == here.metadata and there.windows == here.windows
        assert there.dataset.Modality == "CR"


def test_errors_come_back_as_image_read_errors(tmp_path):
    bad = tmp_path / "notes.dcm"
    bad.write_text("not a DICOM file\n")
    with pytest.raises(ImageReadError) as info:
        readpool.read_image_isolated(bad)
    assert info.value.path == str(bad)
    with pytest.raises(ImageReadError) as direct:
        read_image(bad)
    assert info.value.cause == direct.value.cause


def test_a_helper_that_ended_between_reads_is_replaced(tmp_path):
    png = _png(tmp_path / "a.png")
    old = readpool.helper_pid()
    os.kill(old, 9)
    time.sleep(0.2)
    assert readpool.read_image_isolated(png).shape == (8, 8)  # not this file's fault: read normally
    assert readpool.helper_pid() not in (old, os.getpid())


def test_a_crash_during_a_call_is_that_calls_error(tmp_path):
    with pytest.raises(ChildProcessError, match="SIGABRT"):
        readpool.run_isolated(os.abort)
    png = _png(tmp_path / "b.png")
    assert readpool.run_isolated(read_image, str(png)).shape == (8, 8)  # a new helper serves the next call


def test_a_read_that_takes_too_long_is_stopped(tmp_path):
    old = readpool.helper_pid()
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="longer than 0.5 s"):
        readpool.run_isolated(time.sleep, 30, timeout=0.5)
    assert time.monotonic() - start < 10
    assert readpool.helper_pid() != old  # killed and replaced


def test_the_helper_has_a_memory_limit():
    with pytest.raises(RuntimeError, match="MemoryError"):
        readpool.run_isolated(np.ones, readpool.HELPER_MEMORY_BYTES + 2**30, dtype=np.uint8)
    assert readpool.run_isolated(np.ones, 4, dtype=np.uint8).tolist() == [1, 1, 1, 1]


def hang(path, **kwargs):
    """Stands in for a decoder that never returns (runs in the helper, found there by name)."""
    time.sleep(30)


def crash(path, **kwargs):
    """Stands in for a decoder that takes its process down."""
    os.abort()


def test_isolated_read_errors_name_the_file(tmp_path, monkeypatch):
    png = _png(tmp_path / "c.png")
    monkeypatch.setattr(readpool, "read_image", hang)
    with pytest.raises(ImageReadError) as info:
        readpool.read_image_isolated(png, timeout=0.5)
    assert info.value.path == str(png) and "longer than 0.5 s" in info.value.cause
    monkeypatch.setattr(readpool, "read_image", crash)  # were it retried here, pytest itself would abort
    with pytest.raises(ImageReadError) as info:
        readpool.read_image_isolated(png)
    assert info.value.path == str(png) and "crashed or ran out of memory" in info.value.cause
