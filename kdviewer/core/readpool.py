"""Image reads in a helper process, so that decoding never stalls the caller's other threads.

The DICOM codecs (OpenJPEG through pylibjpeg or Pillow, libjpeg, CharLS) hold Python's global
interpreter lock for the whole decode: about 0.7 s for the built-in 1955×1841 JPEG 2000 example,
during which no other Python thread of the process runs — in the viewer, the GUI thread would
freeze. :func:`read_image_elsewhere` runs :func:`kdviewer.core.imageio.read_image` in one
long-lived helper process (started with "spawn", which is safe beside Qt and PyTorch threads) and
waits for the result with the lock released. Errors come back as the same ``ImageReadError``.
If the helper process cannot be used, the read happens in the calling thread.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from kdviewer.core.image import LoadedImage
from kdviewer.core.imageio import read_image

log = logging.getLogger(__name__)

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _warm_up() -> int:
    """Runs in the helper: the import above is done once, before the first real read."""
    return os.getpid()


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            import multiprocessing

            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            _pool.submit(_warm_up)
        return _pool


def start() -> None:
    """Start the helper process now (it takes a moment to import the readers)."""
    _get_pool()


def helper_pid() -> int:
    """The helper process's id (starting it if needed)."""
    return _get_pool().submit(_warm_up).result()


def read_image_elsewhere(path, **kwargs) -> LoadedImage:
    """:func:`~kdviewer.core.imageio.read_image` in the helper process; same result, same errors."""
    global _pool
    try:
        future = _get_pool().submit(read_image, path, **kwargs)
    except (BrokenProcessPool, RuntimeError) as exc:  # broken or shut down: read here instead
        log.warning("image reader process unavailable (%s); reading in this process", exc)
        with _pool_lock:
            _pool = None
        return read_image(path, **kwargs)
    try:
        return future.result()
    except BrokenProcessPool as exc:  # the helper died (e.g. killed for memory): retry here once
        log.warning("image reader process died (%s); reading %s in this process", exc, path)
        with _pool_lock:
            _pool = None
        return read_image(path, **kwargs)


def shutdown() -> None:
    """Stop the helper process (also done at interpreter exit)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
