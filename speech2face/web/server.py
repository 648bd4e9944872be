"""How ``s2f-serve`` runs uvicorn: its limits on connections and slow clients, the hosts
it answers to, and the open-file limit it needs.

- **Connections**: uvicorn's ``limit_concurrency`` (:attr:`Limits.max_connections`): past
  it a request is answered 503 at once. A connection that has not sent a whole request head
  (the request line and headers) :attr:`Limits.head_timeout` seconds after it opened, or
  after its previous answer, is closed: idle and slow connections do not pile up. An idle
  keep-alive connection is closed after :attr:`Limits.keep_alive` seconds (uvicorn's).
- **Open files**: :func:`raise_open_file_limit` lifts the soft limit on open files to the
  hard one at start, so the connections allowed fit in it; the connection limit is lowered
  when they would not.
- **Hosts**: :func:`allowed_hosts` is what the ``Host`` header may name (the app refuses
  the rest, see :mod:`speech2face.web.app`): a page of another site cannot reach the
  server by pointing its own name at 127.0.0.1 (DNS rebinding).

The limits on uploads themselves (how many are received at once, how long one may take)
are the app's, in the same :class:`~speech2face.web.Limits`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from dataclasses import replace
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from speech2face.web import LOOPBACK_NAMES, Limits

__all__ = ["HostPolicy", "allowed_hosts", "raise_open_file_limit", "uvicorn_config"]

log = logging.getLogger("speech2face.web")

FILES_PER_CONNECTION = 2  # its socket, and the temporary file of an upload
FILES_RESERVED = 256  # the model, Python's modules, the gallery's files, logs
OUT_OF_FILES_EVERY_S = 10.0  # "out of open files" is said at most this often


class HostPolicy:
    """The names a request's ``Host`` may give: ``names`` (lower case, IPv6 without
    brackets), and with ``any_ip`` any IP address written out (a server listening on every
    address); an address is no name another site can point at the server."""

    def __init__(self, names: set[str], any_ip: bool = False) -> None:
        self.names = {_normal(name) for name in names}
        self.any_ip = any_ip

    def allows(self, host: str) -> bool:
        host = _normal(host)
        if host in self.names:
            return True
        if not self.any_ip:
            return False
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True

    def __repr__(self) -> str:
        return f"HostPolicy({sorted(self.names)}, any_ip={self.any_ip})"


def allowed_hosts(bind_host: str, extra: list[str] | tuple[str, ...] = ()) -> HostPolicy:
    """The hosts a server listening on ``bind_host`` answers to: this machine's loopback
    names (``127.0.0.1``, ``localhost``, ``::1``), ``bind_host`` itself, the names in
    ``extra`` (``--allow-host``); listening on every address (``0.0.0.0``, ``::``) adds
    this machine's host names and any IP address."""
    names = set(LOOPBACK_NAMES) | set(extra)
    wildcard = bind_host in ("0.0.0.0", "::", "")
    if wildcard:
        names |= {socket.gethostname(), socket.getfqdn()}
    else:
        names.add(bind_host)
    return HostPolicy(names, any_ip=wildcard)


def split_host(header: str) -> tuple[str, str]:
    """``(host, port)`` of a ``Host`` header value (``port`` ``""`` when absent); an IPv6
    address loses its brackets."""
    header = header.strip()
    if header.startswith("["):
        host, _, rest = header[1:].partition("]")
        return host, rest.removeprefix(":")
    host, colon, port = header.rpartition(":")
    if not colon or ":" in host:
        return header, ""
    return host, port


def _normal(host: str) -> str:
    return host.strip().lower().removesuffix(".").removeprefix("[").removesuffix("]")


def raise_open_file_limit(wanted: int | None = None) -> int | None:
    """Lift the soft limit on open files to the hard limit (``wanted`` at most, when
    given); returns the soft limit now, ``None`` where there is no such limit (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 16
    if wanted is not None:
        target = min(target, wanted)
    if soft == resource.RLIM_INFINITY or (soft >= target):
        return None if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # macOS caps it below an unlimited hard limit
        return soft
    return target


def fitting(limits: Limits, open_files: int | None) -> Limits:
    """``limits`` with no more connections than ``open_files`` can hold."""
    if open_files is None:
        return limits
    room = max((open_files - FILES_RESERVED) // FILES_PER_CONNECTION, 8)
    if room >= limits.max_connections:
        return limits
    log.warning(
        "only %d open files allowed (ulimit -n): at most %d connections at once",
        open_files,
        room,
    )
    return replace(limits, max_connections=room)


def uvicorn_config(app: Any, limits: Limits, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration serving ``app`` within ``limits`` (``options``: more of
    :class:`uvicorn.Config`'s, e.g. ``log_level``)."""

    class Protocol(_HeadTimeout):
        head_timeout = limits.head_timeout

    return uvicorn.Config(
        app,
        http=Protocol,
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=limits.keep_alive,
        server_header=False,
        **options,
    )


class _HeadTimeout(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection that has not sent a whole request
    head ``head_timeout`` seconds after it began waiting for one (on connecting, after each
    answer). Data arriving does not restart the clock: a client sending its headers a byte
    at a time is closed as well."""

    head_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _watch_head(self) -> None:
        if self.transport.is_closing() or not self._waiting_for_head():
            self._stop_head_timer()
        elif self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._waiting_for_head() and not self.transport.is_closing():
            self.transport.close()


class OutOfFiles:
    """An event loop exception handler saying "out of open files" in one line, at most
    once every :data:`OUT_OF_FILES_EVERY_S` seconds, instead of a traceback per refused
    connection; anything else goes to the loop's default handler."""

    def __init__(self) -> None:
        self._said = float("-inf")

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError) and error.errno in (23, 24):  # ENFILE, EMFILE
            now = time.monotonic()
            if now - self._said >= OUT_OF_FILES_EVERY_S:
                self._said = now
                log.warning(
                    "out of open files (ulimit -n): new connections wait until others close"
                )
            return
        loop.default_exception_handler(context)
