"""Fuzz benchmark: thousands of hostile files through the reader, with the time and memory of each.

    .venv/bin/python -m benchmarks.fuzz --cases 3000 --seed 1 [--corpus DIR] [--timeout S] [--in-process]

(run from the repository root: the cases come from ``tests/core/fuzz_cases.py``). Each case is
written to a temporary file and read by :func:`kdviewer.core.readpool.read_image_isolated` (the
helper process with its memory and time limits, as predict and the viewer read), or with
``--in-process`` by :func:`kdviewer.core.imageio.read_image` in this process under an address-space
limit of ``--in-process-limit-gb``. The helper's peak RSS is reset before each case
(``/proc/PID/clear_refs``) and read after it (``VmHWM``).

Prints the outcomes (read, refused by a limit, refused as corrupt, stopped by the time limit,
crashed), the same per class of case, the slowest case, the largest peak RSS, and how many cases
broke the rules: an exception other than ImageReadError, or a file that should be refused but was
read. Exits 1 if any did. Measure the whole run with ``/usr/bin/time -v`` for the peak RSS of
every process involved.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from kdviewer.core import readpool
from kdviewer.core.errors import ImageReadError
from kdviewer.core.imageio import read_image
from tests.core import fuzz_cases

DEFAULT_CORPUS = Path(
    os.environ.get("KDVIEWER_SHARED", Path(__file__).resolve().parent.parent.parent / "shared")
)
DEFAULT_CORPUS = DEFAULT_CORPUS / "data" / "dicom"


def _outcome(cause: str) -> str:
    if "longer than" in cause:
        return "stopped by the time limit"
    if "crashed or ran out of memory" in cause or "image reader failed" in cause:
        return "helper crashed"
    if "not enough memory" in cause:
        return "out of memory (MemoryError)"
    if "too large" in cause or "more than" in cause or "limit" in cause:
        return "refused by a limit"
    return "refused as corrupt"


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))


def _reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as fh:
        fh.write("5")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--corpus", type=Path, default=DEFAULT_CORPUS, help="DICOM files to damage (skipped if absent)"
    )
    parser.add_argument("--corpus-max-mb", type=float, default=10.0, help="largest corpus file used")
    parser.add_argument("--timeout", type=float, default=readpool.READ_TIMEOUT_S)
    parser.add_argument("--in-process", action="store_true", help="read_image here, not in the helper")
    parser.add_argument("--in-process-limit-gb", type=float, default=3.0)
    args = parser.parse_args(argv)

    corpus = fuzz_cases.corpus_files(args.corpus, int(args.corpus_max_mb * 1e6))
    where = "in this process" if args.in_process else f"in the isolated reader (timeout {args.timeout:g} s)"
    print(f"{args.cases} cases, seed {args.seed}, {len(corpus)} corpus files, read {where}")
    if args.in_process:
        limit = int(args.in_process_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    outcomes: collections.Counter = collections.Counter()
    per_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    kind_time: dict[str, float] = collections.defaultdict(float)
    kind_rss: dict[str, int] = collections.defaultdict(int)
    slowest = (0.0, "")
    largest = (0, "")
    broken: list[str] = []
    largest_file = 0
    with tempfile.TemporaryDirectory(prefix="kdviewer-fuzz-") as tmp:
        for case in fuzz_cases.cases(args.cases, args.seed, corpus):
            path = Path(tmp) / f"{case.name}{case.suffix}"
            path.write_bytes(case.data)
            largest_file = max(largest_file, len(case.data))
            pid = os.getpid() if args.in_process else readpool.helper_pid()
            if not args.in_process:
                _reset_peak(pid)
            start = time.perf_counter()
            try:
                if args.in_process:
                    read_image(path, **case.read_kwargs)
                else:
                    readpool.read_image_isolated(path, timeout=args.timeout, **case.read_kwargs)
                how = "read"
                if case.expect_error:
                    broken.append(f"{case.name}: read, but should be refused")
            except ImageReadError as err:
                how = _outcome(err.cause)
            except Exception as exc:  # the rule this benchmark checks: nothing but ImageReadError
                how = "unexpected exception"
                broken.append(f"{case.name}: {type(exc).__name__}: {exc}")
            seconds = time.perf_counter() - start
            rss = 0
            if not args.in_process:
                try:
                    rss = _peak_rss_kb(pid)
                except OSError:  # the helper was killed (time limit or crash)
                    rss = 0
            path.unlink()
            outcomes[how] += 1
            per_kind[case.kind][how] += 1
            kind_time[case.kind] = max(kind_time[case.kind], seconds)
            kind_rss[case.kind] = max(kind_rss[case.kind], rss)
            slowest = max(slowest, (seconds, case.name))
            largest = max(largest, (rss, case.name))

    width = max(len(k) for k in outcomes) + 2
    print("\noutcome".ljust(width + 1), "cases")
    for how, n in outcomes.most_common():
        print(how.ljust(width), n)
    print("\nclass".ljust(17), "cases  read  refused  other  max s  max helper RSS MB")
    for kind in sorted(per_kind):
        c = per_kind[kind]
        refused = sum(n for how, n in c.items() if how.startswith("refused"))
        other = sum(c.values()) - refused - c["read"]
        print(
            f"{kind:<16} {sum(c.values()):5d} {c['read']:5d} {refused:8d} {other:6d} "
            f"{kind_time[kind]:6.2f} {kind_rss[kind] / 1024:10.0f}"
        )
    print(f"\nlargest input file: {largest_file / 1e6:.2f} MB")
    print(f"slowest case: {slowest[0]:.2f} s ({slowest[1]})")
    if not args.in_process:
        print(f"largest helper peak RSS: {largest[0] / 1024:.0f} MB ({largest[1]})")
    print(f"this process's peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"rule breaks: {len(broken)}")
    for line in broken[:20]:
        print("  " + line)
    readpool.shutdown()
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
