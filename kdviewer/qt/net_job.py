"""One piece of the DICOM node's work on its own thread (a PACS query or retrieval, loading the
network library, starting the listener), so that the GUI thread never waits for the network or
the disk."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QThread, Signal

from kdviewer.net.association import Cancel, Cancelled

log = logging.getLogger(__name__)


class NetJob(QThread):
    """Runs ``work(cancel, progress)`` once; reports ``succeeded`` (its result), ``failed`` (a
    line for the user) or ``cancelled``. :meth:`cancel` may be called from the GUI thread."""

    progress = Signal(int, int)  # done, total
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, name: str, work: Callable, parent=None):
        super().__init__(parent)
        self.setObjectName(name)
        self._work = work
        self._cancel = Cancel()

    def cancel(self) -> None:
        self._cancel.cancel()

    def run(self) -> None:
        try:
            result = self._work(self._cancel, self.progress.emit)
        except Cancelled:
            self.cancelled.emit()
        except (ConnectionError, RuntimeError, ValueError) as exc:  # kdviewer.net's own messages
            log.warning("%s failed: %s", self.objectName(), exc)
            self.failed.emit(str(exc))
        except OSError as exc:
            log.warning("%s failed: %s", self.objectName(), exc.strerror or type(exc).__name__)
            self.failed.emit(f"{exc.strerror or exc}")
        except Exception as exc:  # noqa: BLE001 - the dialog outlives a library's surprise
            # The type only in the log: a DICOM library's message can quote the data set's values.
            log.error("%s failed (%s)", self.objectName(), type(exc).__name__)
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.succeeded.emit(result)


class NetJobs:
    """The jobs an owner started and that have not ended: each is kept until its thread ends, then
    deleted; :meth:`shutdown` cancels them all and waits."""

    def __init__(self):
        self._jobs: list[NetJob] = []

    def start(self, job: NetJob) -> None:
        job.finished.connect(lambda: self._on_finished(job))
        self._jobs.append(job)
        job.start()

    def _on_finished(self, job: NetJob) -> None:
        job.wait()
        if job in self._jobs:
            self._jobs.remove(job)
        job.deleteLater()

    def threads(self) -> list[QThread]:
        return list(self._jobs)

    def shutdown(self) -> None:
        for job in self._jobs:
            job.cancel()
            job.wait()


def load_network():
    """Import the network half of :mod:`kdviewer.net` and keep patient data out of its libraries'
    logs; returns :mod:`kdviewer.net.scu`. Call it on a :class:`NetJob`: pynetdicom takes about
    1 s to import, and a second thread importing it meanwhile would wait for it."""
    # Lazy: kept off the GUI thread, which waited 0.8-0.9 s for it (benchmarks/dicom_node_stall.py).
    from kdviewer.net import listener, scu

    listener.quiet_libraries()
    return scu
