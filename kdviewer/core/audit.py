"""The audit trail: one hash-chained JSON line per inference and per export, in a local log.

Each line records the time, a salted hash of what was scored (HMAC-SHA256, keyed with a random
per-installation salt kept beside the log with mode 0600, of the SOP Instance UID, or else of the
file's bytes, or else of the decoded pixels: never an identifier or a file name), the model, its
weights' SHA-256, the runtime and precision, the scores, thresholds and positive flags, the cost,
and for exports what was written (its kind, the number of studies, the output's SHA-256).

Every line carries ``seq`` (0, 1, 2, …) and ``prev``, the SHA-256 of the previous line's bytes
(:data:`GENESIS` for the first), so editing, deleting, inserting or reordering lines breaks the
chain; ``head.json`` holds the last line's number and hash, so cutting lines off the end shows
too. The current file is ``audit.jsonl``; past ``max_bytes`` it is renamed ``audit-000001.jsonl``
(then 2, 3, …) and the new file's first line chains to the last line of the renamed one.
Appends take an exclusive ``flock`` on ``audit.lock``, so two processes never interleave.

The chain shows accidental and casual changes; someone who can write the folder can also
recompute every hash, so it is not proof against a determined insider.

An audit write never costs a prediction: :func:`record_inference` and :func:`record_export`
log a failure and return False.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import hmac
import json
import logging
import math
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs

from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.hashing import sha256_file

log = logging.getLogger(__name__)

AUDIT_ENV = "KDVIEWER_AUDIT_DIR"
GENESIS = "0" * 64
CURRENT = "audit.jsonl"
HEAD = "head.json"
SALT = "salt"
LOCK = "audit.lock"
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024  # our lines are ~1 KiB; a longer one is damage, not read whole
_TAIL_BYTES = 2 * MAX_LINE_BYTES
_CHUNK = 1024 * 1024

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def audit_dir() -> Path:
    """Where the log lives: ``$KDVIEWER_AUDIT_DIR``, else the user's data folder + ``audit``
    (``$XDG_DATA_HOME/kdviewer/audit`` on Linux, ``~/Library/Application Support/kdviewer/audit``
    on macOS, ``%LOCALAPPDATA%\\kdviewer\\audit`` on Windows)."""
    env = os.environ.get(AUDIT_ENV)
    if env:
        return Path(env)
    return platformdirs.user_data_path("kdviewer", appauthor=False) / "audit"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode(entry: Mapping[str, Any]) -> bytes:
    """One line, canonical: sorted keys, no spaces, strict ASCII JSON, newline-terminated."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


def _rotated_number(name: str) -> int | None:
    if name.startswith("audit-") and name.endswith(".jsonl"):
        digits = name[len("audit-") : -len(".jsonl")]
        if digits.isdigit():
            return int(digits)
    return None


@dataclass(frozen=True)
class VerifyResult:
    """What :meth:`AuditLog.verify` found: ``ok``, the lines and files checked, and where the
    first problem is (``file`` and 1-based ``line`` within it, or None) and what it is."""

    ok: bool
    lines: int
    files: int
    problem: str | None = None
    file: str | None = None
    line: int | None = None

    def message(self) -> str:
        if self.ok:
            return f"audit log intact: {self.lines} line(s) in {self.files} file(s)"
        where = (
            f"{self.file} line {self.line}: "
            if self.file and self.line
            else (f"{self.file}: " if self.file else "")
        )
        return f"audit log BROKEN at {where}{self.problem}"


class AuditLog:
    """The hash-chained log in ``folder`` (default :func:`audit_dir`); see the module docstring."""

    def __init__(self, folder: str | os.PathLike | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES):
        self.folder = Path(folder) if folder is not None else audit_dir()
        self.max_bytes = int(max_bytes)
        self._thread_lock = threading.Lock()
        self._salt: bytes | None = None
        self._file_digests: OrderedDict[tuple, str] = OrderedDict()  # stat key -> digest

    # -- files --------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """The log's files, oldest first: the rotated ones by number, then ``audit.jsonl``."""
        if not self.folder.is_dir():
            return []
        rotated = sorted((n, p) for p in self.folder.iterdir() if (n := _rotated_number(p.name)) is not None)
        out = [p for _, p in rotated]
        current = self.folder / CURRENT
        if current.exists():
            out.append(current)
        return out

    def _ensure_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def salt(self) -> bytes:
        """The installation's random 32-byte key, created on first use (mode 0600)."""
        if self._salt is None:
            self._ensure_folder()
            path = self.folder / SALT
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                salt = bytes.fromhex(path.read_text(encoding="ascii").strip())
                if len(salt) < 16:
                    raise ValueError(f"{path}: the audit salt is too short ({len(salt)} bytes)") from None
            else:
                salt = os.urandom(32)
                with os.fdopen(fd, "w", encoding="ascii") as f:
                    f.write(salt.hex() + "\n")
            if os.name == "posix" and path.stat().st_mode & 0o077:
                log.warning("audit salt %s was readable by others; made it private (0600)", path)
                os.chmod(path, 0o600)
            self._salt = salt
        return self._salt

    # -- subjects -----------------------------------------------------------------------------

    def subject(self, image: Any = None, path: str | os.PathLike | None = None) -> tuple[str, str]:
        """``(digest, kind)`` naming what was scored without identifying it: HMAC-SHA256 under the
        salt of the image's SOP Instance UID (kind ``sop_instance_uid``), else of the file's bytes
        (``file_content``; the same study gets the same digest in the viewer and in predict), else
        of the decoded pixels (``pixels``)."""
        uid = getattr(getattr(image, "metadata", None), "sop_instance_uid", None)
        if uid:
            return hmac.new(
                self.salt(), b"sop_instance_uid:" + str(uid).encode(), "sha256"
            ).hexdigest(), "sop_instance_uid"
        source = path if path is not None else getattr(image, "path", None)
        if source is not None:
            digest = self._file_digest(source)
            if digest is not None:
                return digest, "file_content"
        pixels = getattr(image, "pixels", None)
        if pixels is None:
            return GENESIS, "unknown"
        import numpy as np  # lazy: every kdviewer command imports this module; numpy adds ~0.25 s

        arr = np.ascontiguousarray(pixels)
        mac = hmac.new(self.salt(), b"pixels:" + repr((arr.dtype.str, arr.shape)).encode(), "sha256")
        mac.update(memoryview(arr).cast("B"))
        return mac.hexdigest(), "pixels"

    def _file_digest(self, path: str | os.PathLike) -> str | None:
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        key = (os.fspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key in self._file_digests:
            self._file_digests.move_to_end(key)
            return self._file_digests[key]
        mac = hmac.new(self.salt(), b"file_content:", "sha256")
        try:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    mac.update(chunk)
        except OSError:
            return None
        digest = mac.hexdigest()
        self._file_digests[key] = digest
        while len(self._file_digests) > 512:
            self._file_digests.popitem(last=False)
        return digest

    # -- appending ----------------------------------------------------------------------------

    def append(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """Add ``time``, ``seq`` and ``prev`` to ``entry`` and append it as one line (flushed to
        disk) under the exclusive lock; returns the line as written. Raises OSError/ValueError."""
        if {"seq", "prev"} & set(entry):
            raise ValueError("seq and prev are set by the log")
        self._ensure_folder()
        with self._thread_lock:
            lock_fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                _lock(lock_fd)
                try:
                    return self._append_locked(entry)
                finally:
                    _unlock(lock_fd)
            finally:
                os.close(lock_fd)

    def _read_head(self) -> dict[str, Any] | None:
        try:
            head = json.loads((self.folder / HEAD).read_text(encoding="ascii"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.folder / HEAD}: unreadable ({exc})") from exc
        if (
            not isinstance(head, dict)
            or not isinstance(head.get("seq"), int)
            or not isinstance(head.get("sha256"), str)
        ):
            raise ValueError(f"{self.folder / HEAD}: not a head record")  # noqa: TRY004 - damage, not a bug
        return head

    def _tail(self) -> bytes | None:
        """The last complete line of the newest non-empty file, or None when there is none (or it
        is damaged: no end of line, or longer than any audit line)."""
        for path in reversed(self.files()):
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                if size == 0:
                    continue
                window = 64 * 1024  # a line is ~1 KiB: one small read, not the whole file
                while True:
                    start = max(0, size - window)
                    f.seek(start)
                    data = f.read()
                    cut = data.rfind(b"\n", 0, len(data) - 1)
                    if cut >= 0 or start == 0:
                        break
                    if window >= _TAIL_BYTES:
                        return None
                    window *= 2
            if not data.endswith(b"\n"):
                return None
            return data[cut + 1 :]
        return None

    def _chain_point(self) -> tuple[int, str]:
        """The next line's ``seq`` and ``prev``: from the head record, which a truncated or edited
        tail does not move (so the break stays visible), except after a crash between writing a
        line and updating the head, when the tail is exactly the next line."""
        head = self._read_head()
        tail = self._tail()
        if head is None:
            if tail is None:
                return 0, GENESIS
            log.warning("audit log %s has no head record; chaining to its last line", self.folder)
            seq = json.loads(tail).get("seq")
            return (seq + 1 if isinstance(seq, int) else 0), _sha256(tail)
        if tail is not None and _sha256(tail) != head["sha256"]:
            try:
                last = json.loads(tail)
            except ValueError:
                last = {}
            if last.get("prev") == head["sha256"] and last.get("seq") == head["seq"] + 1:
                return head["seq"] + 2, _sha256(tail)
            log.warning(
                "audit log %s: the last line does not match the head record; "
                "'kdviewer audit verify' will report where",
                self.folder,
            )
        return head["seq"] + 1, head["sha256"]

    def _append_locked(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        seq, prev = self._chain_point()
        line = {"time": _now(), **entry, "seq": seq, "prev": prev}
        data = _encode(line)
        current = self.folder / CURRENT
        try:
            size = current.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > self.max_bytes:
            numbers = [_rotated_number(p.name) for p in self.files()[:-1]]
            target = self.folder / f"audit-{max(numbers, default=0) + 1:06d}.jsonl"
            os.replace(current, target)
            log.info("audit log rotated to %s", target)
        fd = os.open(current, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            if end:
                os.lseek(fd, end - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":
                    os.write(fd, b"\n")  # a write was cut short: this line starts on its own
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp = self.folder / (HEAD + ".tmp")
        tmp.write_text(json.dumps({"seq": seq, "sha256": _sha256(data)}) + "\n", encoding="ascii")
        os.replace(tmp, self.folder / HEAD)
        return line

    # -- reading ------------------------------------------------------------------------------

    def _lines(self) -> Iterator[tuple[Path, int, bytes]]:
        for path in self.files():
            with open(path, "rb") as f:
                number = 0
                while raw := f.readline(MAX_LINE_BYTES + 1):
                    number += 1
                    yield path, number, raw

    def verify(self) -> VerifyResult:
        """Check the whole chain: every line complete strict JSON, numbered one after the other
        from 0, each ``prev`` the hash of the line before, and the last line the one the head
        record names. Stops at the first problem."""
        files = self.files()
        count = 0
        prev_hash, prev_where, expect = GENESIS, None, 0

        def bad(path: Path | None, number: int | None, problem: str) -> VerifyResult:
            return VerifyResult(False, count, len(files), problem, path.name if path else None, number)

        for path, number, raw in self._lines():
            if not raw.endswith(b"\n"):
                what = (
                    "longer than any audit line"
                    if len(raw) > MAX_LINE_BYTES
                    else "incomplete (no end of line)"
                )
                return bad(path, number, f"the line is {what}")
            try:
                line = json.loads(raw, parse_constant=_reject_constant)
            except ValueError as exc:
                return bad(path, number, f"not valid JSON ({exc})")
            if not isinstance(line, dict) or not isinstance(line.get("seq"), int):
                return bad(path, number, "not an audit record (no sequence number)")
            if line.get("prev") != prev_hash:
                if prev_where is None:
                    return bad(
                        path,
                        number,
                        "the first line does not start the chain (earlier lines or files were removed)",
                    )
                if line["seq"] == expect:
                    return bad(
                        prev_where[0],
                        prev_where[1],
                        "changed: its hash no longer matches the 'prev' of the line after it",
                    )
                return bad(
                    path,
                    number,
                    f"sequence number {line['seq']} where {expect} was expected "
                    "(lines or files were removed, added or reordered)",
                )
            if line["seq"] != expect:
                return bad(path, number, f"sequence number {line['seq']} where {expect} was expected")
            prev_hash, prev_where, expect = _sha256(raw), (path, number), expect + 1
            count += 1
        try:
            head = self._read_head()
        except ValueError as exc:
            return bad(None, None, str(exc))
        if head is None:
            if count:
                return bad(None, None, f"{HEAD} is missing, so removal of the last lines cannot be ruled out")
            return VerifyResult(True, 0, len(files))
        if head["seq"] != expect - 1 or head["sha256"] != prev_hash:
            where = prev_where or (None, None)
            if head["seq"] > expect - 1:
                return bad(
                    where[0],
                    where[1],
                    f"the log ends at line number {expect - 1} but {HEAD} records "
                    f"{head['seq']}: the last lines were removed",
                )
            return bad(where[0], where[1], f"the last line does not match {HEAD} (changed or added after it)")
        return VerifyResult(True, count, len(files))

    def entries(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """The records in order (lines that do not parse are skipped; :meth:`verify` names them),
        from ``since`` (aware datetime) on."""
        for _path, _number, raw in self._lines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(line, dict):
                continue
            if since is not None:
                try:
                    when = _parse_time(str(line.get("time")))
                except ValueError:
                    continue
                if when < since:
                    continue
            yield line


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def _parse_time(text: str) -> datetime:
    """An ISO 8601 date or date-time; without a zone it is UTC."""
    when = datetime.fromisoformat(text.strip())
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


# -- building records --------------------------------------------------------------------------


def _finite_or_none(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def inference_record(
    pred: Any,
    *,
    subject: str,
    subject_kind: str,
    runtime: str | None = None,
    precision: str | None = None,
    source: str = "",
) -> dict[str, Any]:
    """The audit record of one :class:`~kdviewer.core.engine.Prediction` (no time, seq, prev)."""
    energy = getattr(pred, "energy", None)
    energy_j = (
        _finite_or_none(getattr(energy, "marginal_energy_j", None))
        if getattr(energy, "complete", True)
        else None
    )
    findings = {}
    for k in getattr(pred, "findings", ()):
        findings[k] = {
            "score": _finite_or_none(pred.scores[k]),
            "threshold": _finite_or_none(pred.thresholds[k]),
            "positive": bool(pred.positive[k]),
        }
    timings = getattr(pred, "timings_ms", {}) or {}
    return {
        "event": "inference",
        "source": source,
        "subject": subject,
        "subject_kind": subject_kind,
        "model": getattr(pred, "model_name", None),
        "architecture": getattr(pred, "architecture", None),
        "weights_sha256": getattr(pred, "weights_sha256", None),
        "trained": bool(getattr(pred, "trained", False)),
        "runtime": runtime,
        "precision": precision,
        "cam_method": getattr(pred, "cam_method", None),
        "latency_ms": _finite_or_none(timings.get("total")),
        "energy_mj": None if energy_j is None else energy_j * 1e3,
        "energy_method": getattr(energy, "method", None),
        "findings": findings,
    }


_LOGS: dict[Path, AuditLog] = {}
_LOGS_LOCK = threading.Lock()


def default_log() -> AuditLog:
    """The process's log for the current :func:`audit_dir` (one object per folder, so the
    file-digest cache and the thread lock are shared by every caller)."""
    folder = audit_dir()
    with _LOGS_LOCK:
        if folder not in _LOGS:
            _LOGS[folder] = AuditLog(folder)
        return _LOGS[folder]


def _failed(what: str, exc: BaseException) -> bool:
    # The message is the error's kind and cause only: an image's path could name a patient.
    reason = getattr(exc, "strerror", None) or (str(exc) if isinstance(exc, ValueError) else "")
    log.warning(
        "audit log: could not record %s (%s%s); the result itself is kept",
        what,
        type(exc).__name__,
        f": {reason}" if reason else "",
    )
    return False


def engine_precision(engine: Any) -> str | None:
    """The arithmetic an engine runs in: its ``precision`` if it declares one, else float32, which
    both runtimes use for the shipped graphs and weights (None without a runtime)."""
    declared = getattr(engine, "precision", None)
    if declared:
        return str(declared)
    return "float32" if getattr(engine, "runtime_name", None) else None


def record_inference(
    pred: Any,
    *,
    engine: Any = None,
    image: Any = None,
    path: str | os.PathLike | None = None,
    source: str = "",
    log_: AuditLog | None = None,
) -> bool:
    """Append the record of ``pred`` (made by ``engine`` from ``image``, read from ``path``).
    Never raises: a failure is logged and False returned, and the prediction stands."""
    try:
        audit = log_ or default_log()
        subject, kind = audit.subject(image, path)
        audit.append(
            inference_record(
                pred,
                subject=subject,
                subject_kind=kind,
                runtime=getattr(engine, "runtime_name", None),
                precision=engine_precision(engine),
                source=source,
            )
        )
        return True
    except Exception as exc:  # noqa: BLE001 - the audit must never cost the prediction
        return _failed("an inference", exc)


def record_export(
    kind: str,
    *,
    subjects: Sequence[str] = (),
    output: str | os.PathLike | None = None,
    with_identifiers: bool = False,
    source: str = "",
    log_: AuditLog | None = None,
) -> bool:
    """Append what the user exported: ``kind`` (e.g. "report-pdf"), the salted subject digests it
    covers, whether identifiers were included, and the SHA-256 of the written ``output`` (its
    name is not recorded). Never raises."""
    try:
        audit = log_ or default_log()
        digest = None
        if output is not None:
            digest = sha256_file(output)
        audit.append(
            {
                "event": "export",
                "source": source,
                "export_kind": kind,
                "subjects": list(subjects),
                "with_identifiers": bool(with_identifiers),
                "output_sha256": digest,
            }
        )
        return True
    except Exception as exc:  # noqa: BLE001 - an audit failure never undoes the export
        return _failed("an export", exc)


def record_scope_override(
    reason: str | None,
    *,
    ood_score: float | None = None,
    image: Any = None,
    path: str | os.PathLike | None = None,
    source: str = "viewer",
    log_: AuditLog | None = None,
) -> bool:
    """Append that the user chose to see the scores of an image the scope check refused ("show
    anyway", :mod:`kdviewer.core.scope`): the salted subject digest, the refusal's reason and
    score. Never raises."""
    try:
        audit = log_ or default_log()
        subject, kind = audit.subject(image, path)
        audit.append(
            {
                "event": "scope_override",
                "source": source,
                "subject": subject,
                "subject_kind": kind,
                "scope_reason": reason,
                "ood_score": _finite_or_none(ood_score),
            }
        )
        return True
    except Exception as exc:  # noqa: BLE001 - an audit failure never blocks the user's choice
        return _failed("a scope override", exc)


# -- CSV export and the command -----------------------------------------------------------------

_CSV_HEAD = (
    "seq",
    "time",
    "event",
    "source",
    "subject",
    "subject_kind",
    "model",
    "architecture",
    "weights_sha256",
    "trained",
    "runtime",
    "precision",
    "cam_method",
    "latency_ms",
    "energy_mj",
    "energy_method",
)
_CSV_TAIL = ("export_kind", "subjects", "with_identifiers", "output_sha256", "prev")


def write_csv(entries: Iterator[Mapping[str, Any]], stream) -> int:
    """Write records as RFC 4180 CSV (a header, a row per record, a score/threshold/positive
    column triple per finding); returns the number of rows."""
    per_finding = [f"{k}_{x}" for k in FINDING_KEYS for x in ("score", "threshold", "positive")]
    writer = csv.DictWriter(
        stream,
        fieldnames=[*_CSV_HEAD, *per_finding, *_CSV_TAIL],
        lineterminator="\r\n",
        extrasaction="ignore",
    )
    writer.writeheader()
    rows = 0
    for e in entries:
        row = {c: e.get(c) for c in (*_CSV_HEAD, *_CSV_TAIL)}
        if isinstance(row["subjects"], list):
            row["subjects"] = " ".join(map(str, row["subjects"]))
        for k, v in (e.get("findings") or {}).items():
            if isinstance(v, dict):
                for x in ("score", "threshold", "positive"):
                    row[f"{k}_{x}"] = v.get(x)
        writer.writerow(row)
        rows += 1
    return rows


def add_audit_parser(sub) -> None:
    """``kdviewer audit verify`` and ``kdviewer audit export --since DATE [-o FILE]``."""
    p = sub.add_parser("audit", help="check or export the audit log of inferences and exports")
    actions = p.add_subparsers(dest="audit_action", metavar="ACTION", required=True)
    actions.add_parser("verify", help="check the hash chain; exit 1 naming the first bad line")
    ex = actions.add_parser("export", help="write the records as CSV")
    ex.add_argument(
        "--since",
        type=_since_arg,
        metavar="DATE",
        help="ISO date or date-time (UTC unless a zone is given), e.g. 2026-01-31",
    )
    ex.add_argument("-o", "--output", type=Path, help="CSV file (default: standard output)")


def _since_arg(text: str) -> datetime:
    try:
        return _parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {text!r}") from None


def audit_command(args: argparse.Namespace) -> int:
    """Run ``kdviewer audit ACTION``: 0 when the chain is intact, 1 when it is broken (export
    still writes what it can read and says so), 2 when the output cannot be written."""
    audit = AuditLog()
    try:
        result = audit.verify()
    except OSError as exc:
        print(
            f"kdviewer: error: cannot read the audit log in {audit.folder}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    if args.audit_action == "verify":
        print(result.message() + f" ({audit.folder})", file=sys.stdout if result.ok else sys.stderr)
        return 0 if result.ok else 1
    try:
        with (
            open(args.output, "w", encoding="utf-8", newline="")
            if args.output
            else contextlib.nullcontext(sys.stdout)
        ) as stream:
            rows = write_csv(audit.entries(args.since), stream)
    except OSError as exc:  # the CSV cannot be written, or the log became unreadable meanwhile
        print(f"kdviewer: error: {exc.filename or args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.output:
        print(f"{rows} record(s) written to {args.output}", file=sys.stderr)
    if not result.ok:
        print(f"kdviewer: warning: {result.message()}", file=sys.stderr)
        return 1
    return 0
