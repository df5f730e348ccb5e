"""Test-only: put this folder first on PYTHONPATH and set MS_NET_MARKER=<file>, and every Python process started
with that environment refuses outbound network: each attempt (a DNS lookup or a connect to a non-loopback address)
is appended to the marker file with its stack, then fails with OSError. Loopback and unix sockets still work."""

from __future__ import annotations

import os
import socket
import traceback

_MARKER = os.environ.get("MS_NET_MARKER")


def _local(host: object) -> bool:
    """Loopback, wildcard binds and no host at all are not the network."""
    if isinstance(host, bytes):
        host = host.decode()
    return host is None or host in ("", "localhost", "::1", "0.0.0.0", "::") or str(host).startswith("127.")


def _refuse(what: str) -> None:
    with open(str(_MARKER), "a") as f:
        f.write(f"pid {os.getpid()}: {what}\n" + "".join(traceback.format_stack(limit=15)) + "\n")
    raise OSError(f"network blocked by the test: {what}")


if _MARKER:
    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def _check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):  # type: ignore[index]
            _refuse(f"connect {address!r}")

    def connect(self, address):
        _check(self, address)
        return _connect(self, address)

    def connect_ex(self, address):
        _check(self, address)
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _local(host):
            _refuse(f"getaddrinfo {host!r}")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
