"""Scoring on arrival: each new instance is decoded in the isolated reader, scored with the
engine, and its results written beside it (``<SOP>.json``, the record ``kdviewer predict`` makes;
``<SOP>.sr.dcm``; ``<SOP>.sc.dcm`` when asked) and optionally sent to a PACS.

Work runs in one background thread fed by a queue, so an association is never held up by a
model; the queue holds paths only.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kdviewer.core import audit
from kdviewer.core.readpool import read_image_isolated
from kdviewer.core.records import error_record, prediction_record
from kdviewer.net import DEFAULT_AE_TITLE, results
from kdviewer.net.association import Caller, Peer
from kdviewer.net.scu import send
from kdviewer.net.store import ReceiveStore, short_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arrival:
    """What scoring one instance produced: the record (an error record on failure) and the files."""

    path: Path
    record: dict
    files: tuple[Path, ...]


class ArrivalScorer:
    """Scores every path given to :meth:`submit` in a background thread.

    ``send_to``: a :class:`Peer` that gets the SR (and SC) by C-STORE. ``on_done`` is called from
    the worker thread with each :class:`Arrival` (the viewer listens here).
    """

    def __init__(
        self,
        store: ReceiveStore,
        engine,
        *,
        secondary_capture: bool = False,
        send_to: Peer | None = None,
        calling_ae: str = DEFAULT_AE_TITLE,
        on_done: Callable[[Arrival], None] | None = None,
    ):
        self.store, self.engine = store, engine
        self.secondary_capture, self.send_to, self.calling_ae = secondary_capture, send_to, calling_ae
        self.on_done = on_done
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="kdviewer-arrivals", daemon=True)
        self._thread.start()

    def submit(self, path: Path) -> None:
        self._queue.put(path)

    def stop(self, timeout: float | None = None) -> None:
        """Finish what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            try:
                arrival = self.process(path)
            except Exception as exc:  # noqa: BLE001 - the worker outlives any one instance
                # The type only: messages of DICOM libraries can quote the data set's values.
                log.error("results for instance %s failed (%s)", short_id(path.stem), type(exc).__name__)
                log.debug("results for instance %s failed", short_id(path.stem), exc_info=True)
                continue
            if self.on_done is not None:
                self.on_done(arrival)

    def process(self, path: Path) -> Arrival:
        """Score one stored instance and write (and send) its results."""
        try:
            image = read_image_isolated(path, reduce_to=self.engine.card.input.read_min_side)
            if results.is_our_result(image.dataset):
                # A PACS that routes every new instance here would otherwise have each result's
                # secondary capture scored, and its results sent, and theirs, without end.
                raise ValueError("a kdviewer result (secondary capture), not scored again")
            pred = self.engine.predict(image, heatmaps=self.secondary_capture)
            audit.record_inference(
                pred, engine=self.engine, image=image, path=path, source="listen"
            )  # never raises
            record = prediction_record(path, pred)
        except Exception as exc:  # noqa: BLE001 - decoding or scoring failed: an error record
            reason = getattr(exc, "cause", None) or f"{type(exc).__name__}: {exc}"
            record = error_record(path, self.engine.name, reason)
            log.warning("instance %s could not be scored: %s", short_id(path.stem), reason)
            self._write(path, ".json", (json.dumps(record, allow_nan=False) + "\n").encode())
            return Arrival(path, record, ())
        files = [self._write(path, ".json", (json.dumps(record, allow_nan=False) + "\n").encode())]
        outgoing = [results.structured_report(image.dataset, pred, model_version=self.engine.card.version)]
        if self.secondary_capture:
            outgoing.append(results.secondary_capture(image.dataset, image, pred))
        for ds, suffix in zip(outgoing, (".sr.dcm", ".sc.dcm"), strict=False):
            files.append(self._write(path, suffix, results.encode(ds)))
        log.info("scored instance %s", short_id(path.stem))
        if self.send_to is not None:
            try:
                statuses = send(self.send_to, outgoing, Caller(self.calling_ae))
                log.info(
                    "sent %d result(s) for instance %s to %s: statuses %s",
                    len(outgoing),
                    short_id(path.stem),
                    self.send_to.ae_title,
                    ", ".join(f"0x{s:04X}" for s in statuses),
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:  # ValueError: no context for a class
                log.error(
                    "could not send results for instance %s to %s: %s",
                    short_id(path.stem),
                    self.send_to.ae_title,
                    exc,
                )
        return Arrival(path, record, tuple(f for f in files if f is not None))

    def _write(self, path: Path, suffix: str, data: bytes) -> Path | None:
        try:
            return self.store.write_beside(path, suffix, data)
        except Exception as exc:  # noqa: BLE001 - StoreFullError or OSError: logged, others go on
            log.error("could not write the %s result for instance %s: %s", suffix, short_id(path.stem), exc)
            return None
