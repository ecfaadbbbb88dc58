"""Image reads in a helper process with memory and time limits: a runaway decoder cannot take the caller down.

Two reasons to decode elsewhere. The DICOM codecs (OpenJPEG, libjpeg, CharLS, the RLE decoder)
hold Python's global interpreter lock for the whole decode (about 0.7 s for the built-in 1955×1841
JPEG 2000 example), which in a thread would freeze the viewer's window. And they are native code
fed hostile input: :func:`~kdviewer.core.imageio.read_image` checks every size it can before
decoding, but a codec can still loop, crash or allocate without end.

:func:`read_image_isolated` runs ``read_image`` in one long-lived helper process (started with
"spawn", safe beside Qt and PyTorch threads) whose address space is limited to
:data:`HELPER_MEMORY_BYTES` beyond what it uses after start-up (``RLIMIT_AS``), and waits at most
``timeout`` seconds. The result is the same ``LoadedImage``, or ``ImageReadError`` naming the file:

* the file's own error, as ``read_image`` raises it;
* "decoding took longer than N s" — the helper is killed and a new one serves the next read;
* "the decoder crashed or ran out of memory (...)" — the helper died on this file; a new one
  serves the next read.

A file is never decoded in the calling process: after the helper died on it, that is the file's
error. One read runs at a time; concurrent callers queue on a lock.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from PIL import Image

from kdviewer.core.errors import ImageReadError
from kdviewer.core.image import LoadedImage
from kdviewer.core.imageio import MAX_PIXELS, captured_warnings, read_image

log = logging.getLogger(__name__)

#: Longest a read may take before the helper is killed, in seconds. On the 2-core development
#: machine the largest images accepted (8192 x 8192, 16-bit grey or 8-bit RGB, uncompressed) came
#: back in 3.8 and 5.0 s, the corpus's chest X-rays in under 2 s, every fuzz case in under 3.4 s.
READ_TIMEOUT_S = 8.0

#: Address space the helper may grow by beyond its size after start-up, in bytes. Reading the
#: largest images accepted peaked at 822 MB (8192² 16-bit grey) and 950 MB (8192² RGB) resident.
HELPER_MEMORY_BYTES = 1536 * 1024 * 1024

#: How long a new helper may take to start (import numpy, pydicom, Pillow, the codecs).
_START_TIMEOUT_S = 60.0

_lock = threading.Lock()
_helper: _Helper | None = None


class _HelperDied(Exception):
    def __init__(self, how: str):
        super().__init__(how)
        self.how = how


class _HelperTimedOut(Exception):
    pass


def _limit_memory(budget: int) -> None:
    """In the helper: cap the address space at its current size plus ``budget``."""
    with open("/proc/self/status") as fh:
        size_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:"))
    limit = size_kb * 1024 + budget
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _serve(conn: Connection, memory_budget: int | None) -> None:
    """The helper's loop: receive (function, args, kwargs), send back a tagged reply."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the caller's to handle
    # Pillow's own bomb guard in line with ours (it warns above the limit and refuses at twice
    # it); read_image checks the header against its limits before Pillow decodes anyway
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    if memory_budget is not None:
        try:
            _limit_memory(memory_budget)
        except (OSError, ValueError, StopIteration) as exc:  # no /proc (not Linux): unlimited
            log.warning("image reader process runs without a memory limit: %s", exc)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        func, args, kwargs = request
        try:
            reply: tuple = ("ok", func(*args, **kwargs))
        except ImageReadError as exc:
            reply = ("image-error", exc.path, exc.cause)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                raise
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except Exception as exc:  # e.g. a result that does not pickle
            conn.send(("error", f"the result could not be returned ({type(exc).__name__}: {exc})"))


class _Helper:
    """One helper process and the pipe to it."""

    def __init__(self, memory_budget: int | None):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve, args=(child, memory_budget), daemon=True, name="kdviewer-reader"
        )
        self.process.start()
        child.close()
        if not self.conn.poll(_START_TIMEOUT_S):
            self.stop()
            raise _HelperDied(f"it did not start within {_START_TIMEOUT_S:g} s")
        try:
            _, self.pid = self.conn.recv()
        except (EOFError, OSError):
            raise _HelperDied(self._death()) from None

    def call(self, func, args, kwargs, timeout: float):
        self.conn.send((func, args, kwargs))
        if not self.conn.poll(timeout):
            raise _HelperTimedOut
        try:
            # unpickling a dataset re-validates its values, and pydicom would print invalid UIDs
            # here; the helper has already reported them without their values
            with captured_warnings([]):
                return self.conn.recv()
        except (EOFError, OSError):
            raise _HelperDied(self._death()) from None

    def _death(self) -> str:
        self.process.join(5)
        code = self.process.exitcode
        if code is None:
            return "it stopped answering"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, graceful: bool = False) -> None:
        if graceful and self.process.is_alive():
            try:
                self.conn.send(None)
                self.process.join(2)
            except OSError:
                pass
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


def _current() -> _Helper:
    """The running helper, started (or restarted) if needed. Call with ``_lock`` held."""
    global _helper
    if _helper is not None and not _helper.alive():
        log.info("image reader process had ended; starting a new one")
        _helper.stop()
        _helper = None
    if _helper is None:
        _helper = _Helper(HELPER_MEMORY_BYTES)
    return _helper


def _discard() -> None:
    global _helper
    if _helper is not None:
        _helper.stop()
        _helper = None


def run_isolated(func, *args, timeout: float = READ_TIMEOUT_S, **kwargs) -> Any:
    """Run ``func(*args, **kwargs)`` in the helper process and return its result.

    ``func`` must be importable by name (it is pickled by reference). Raises
    :class:`TimeoutError` after ``timeout`` seconds (the helper is killed), :class:`ChildProcessError`
    when the helper dies during the call, ``ImageReadError`` as raised by ``func``, and
    :class:`RuntimeError` when the helper cannot start, or with the text of any other exception.
    """
    with _lock:
        try:
            helper = _current()
        except (_HelperDied, OSError) as exc:
            raise RuntimeError(f"the image reader process could not be started ({exc})") from None
        try:
            reply = helper.call(func, args, kwargs, timeout)
        except _HelperTimedOut:
            _discard()
            raise TimeoutError(f"took longer than {timeout:g} s") from None
        except (_HelperDied, OSError) as exc:
            _discard()
            raise ChildProcessError(str(getattr(exc, "how", exc))) from None
    tag, *rest = reply
    if tag == "ok":
        return rest[0]
    if tag == "image-error":
        raise ImageReadError(*rest)
    raise RuntimeError(rest[0])


def read_image_isolated(path, *, timeout: float = READ_TIMEOUT_S, **kwargs) -> LoadedImage:
    """:func:`~kdviewer.core.imageio.read_image` in the helper process, within its limits.

    Same arguments (``max_pixels``, ``max_bytes``, ``reduce_to``) and the same result. Every
    failure is an ``ImageReadError`` naming ``path``: the file's own, "decoding took longer than
    ``timeout`` s", or "the decoder crashed or ran out of memory". Never decodes in the calling
    process.
    """
    try:
        return run_isolated(read_image, os.fspath(path), timeout=timeout, **kwargs)
    except TimeoutError:
        raise ImageReadError(path, f"decoding took longer than {timeout:g} s and was stopped") from None
    except ChildProcessError as exc:
        raise ImageReadError(path, f"the decoder crashed or ran out of memory ({exc})") from None
    except RuntimeError as exc:
        raise ImageReadError(path, f"the image reader failed ({exc})") from None


#: The name the viewer's workers use.
read_image_elsewhere = read_image_isolated


def start() -> None:
    """Start the helper process in the background now (it takes a moment to import the readers)."""

    def run() -> None:
        with _lock:
            try:
                _current()
            except (_HelperDied, OSError) as exc:  # the first read reports it
                log.warning("image reader process did not start: %s", exc)

    threading.Thread(target=run, name="kdviewer-reader-start", daemon=True).start()


def helper_pid() -> int:
    """The helper process's id (starting it if needed)."""
    with _lock:
        return _current().pid


def shutdown() -> None:
    """Stop the helper process (also done at interpreter exit: it is a daemon process)."""
    global _helper
    with _lock:
        if _helper is not None:
            _helper.stop(graceful=True)
            _helper = None
