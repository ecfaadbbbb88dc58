"""Network audit for the offline tests: what the Python interpreter and native code try to reach.

Two layers, because neither sees everything:

- :func:`install` adds a Python audit hook (``sys.addaudithook``) that records and blocks every
  socket the interpreter would open for the network (``socket.__new__`` of a non-Unix family,
  ``connect``/``bind``/``sendto`` to a network address, and name lookups).
- :func:`strace_prefix` and :func:`network_calls` run the process under ``strace -f`` and list
  the network system calls made by any thread or child, which covers native code such as ONNX
  Runtime's C++ telemetry that never passes through Python's ``socket`` module.

Local inter-process plumbing (``socketpair``, Unix-domain sockets) is not network traffic and is
allowed; that includes glibc's query of the name-service cache daemon (nscd), which is also how
user names are looked up (PyTorch does, for its temporary folder). Where no nscd runs (as on the
CI machine) a DNS lookup opens an Internet socket of its own and is caught; where one runs, the
daemon would make the lookup, out of sight of this process.
"""

from __future__ import annotations

import re
import socket
import sys
import time

_LOOKUPS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"}
_ADDRESSED = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"}


def _is_network(event: str, args: tuple) -> bool:
    if event in _LOOKUPS:
        return True
    if event == "socket.__new__":  # args: (sock, family, type, proto)
        return args[1] != socket.AF_UNIX
    if event in _ADDRESSED:  # args: (sock, address, ...); a Unix socket's address is a path
        address = args[1] if len(args) > 1 else None
        return not isinstance(address, (str, bytes))
    return False


def install(log_path: str) -> None:
    """Record every network attempt of this interpreter in ``log_path`` (one line each) and make
    it fail with PermissionError, so that nothing leaves even when a caller swallows the error."""
    log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - open for the interpreter's life

    def hook(event: str, args: tuple) -> None:
        if event.startswith("socket.") and _is_network(event, args):
            log.write(f"{event} {args[1:]!r}\n")
            raise PermissionError(f"offline audit: {event} blocked")

    sys.addaudithook(hook)


def run_predict_for(seconds: float, argv: list[str]) -> int:
    """Run ``kdviewer <argv>`` in this process again and again until ``seconds`` have passed;
    return the worst exit status. Prints the number of runs and the time to stderr."""
    from kdviewer.cli import main

    t0 = time.monotonic()
    runs = worst = 0
    while True:
        worst = max(worst, main(list(argv)))
        runs += 1
        elapsed = time.monotonic() - t0
        if elapsed >= seconds:
            break
    print(f"offline-audit: {runs} runs in {elapsed:.1f} s", file=sys.stderr)
    return worst


def strace_prefix(log_path: str) -> list[str]:
    """The command prefix that records every network system call of a process tree."""
    return [
        "strace",
        "-f",
        "-qq",
        "--seccomp-bpf",
        "-e",
        "trace=%network",
        "-e",
        "signal=none",
        "-o",
        log_path,
    ]


_SOCKET = re.compile(r"\bsocket\((AF_\w+|\d+)")
_ADDRESSED_CALL = re.compile(r"\b(connect|bind|sendto|sendmsg)\(.*?sa_family=(AF_\w+)")


def network_calls(strace_log: str) -> list[str]:
    """The lines of an strace log (from :func:`strace_prefix`) that reach for the network: a
    socket of a non-Unix family, or a connect/bind/send to a non-Unix address."""
    found = []
    for line in strace_log.splitlines():
        m = _SOCKET.search(line)
        if m and m.group(1) != "AF_UNIX":
            found.append(line)
            continue
        m = _ADDRESSED_CALL.search(line)
        if m and m.group(2) != "AF_UNIX":
            found.append(line)
    return found
