"""Reads in the helper process give the same images and the same errors as reads in-process."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kdviewer.core import readpool
from kdviewer.core.errors import ImageReadError
from kdviewer.core.imageio import read_image
from kdviewer.core.preprocess import MODEL_READ_MIN_SIDE
from kdviewer.core.resources import example_image


def test_reads_happen_in_another_process_and_match():
    assert readpool.helper_pid() != os.getpid()
    for kwargs in ({}, {"reduce_to": MODEL_READ_MIN_SIDE}):
        here = read_image(example_image(), **kwargs)
        there = readpool.read_image_elsewhere(example_image(), **kwargs)
        np.testing.assert_array_equal(there.pixels, here.pixels)
        assert there.metadata == here.metadata and there.windows == here.windows
        assert there.dataset.Modality == "CR"


def test_errors_come_back_as_image_read_errors(tmp_path):
    bad = tmp_path / "notes.dcm"
    bad.write_text("not a DICOM file\n")
    with pytest.raises(ImageReadError) as info:
        readpool.read_image_elsewhere(bad)
    assert info.value.path == str(bad)
    with pytest.raises(ImageReadError) as direct:
        read_image(bad)
    assert info.value.cause == direct.value.cause


def test_a_dead_helper_falls_back_to_reading_here(tmp_path):
    from PIL import Image

    png = tmp_path / "a.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(png)
    os.kill(readpool.helper_pid(), 9)
    img = readpool.read_image_elsewhere(png)  # the broken pool is noticed and replaced
    assert img.shape == (8, 8)
    assert readpool.helper_pid() != os.getpid()  # a new helper serves later reads
