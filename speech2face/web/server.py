"""Which hosts ``s2f-serve`` answers to.

:func:`allowed_hosts` is what the ``Host`` header may name (the app refuses the rest, see
:mod:`speech2face.web.app`): a page of another site cannot reach the server by pointing its
own name at 127.0.0.1 (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket

from speech2face.web import LOOPBACK_NAMES

__all__ = ["HostPolicy", "allowed_hosts", "split_host"]


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
