"""Which local user a loopback client runs as, so that a server without a token trusts
only its own user's processes (and root's), never every account on the node.

Linux lists every TCP socket with its owner's uid in /proc/net/tcp and /proc/net/tcp6; the
client's end of a loopback connection is the line whose local address is the request's
client address and whose remote address is the server's. Elsewhere the owner is unknown
and the server treats the caller as a stranger.
"""

from __future__ import annotations

import ipaddress
import sys

_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def _address(field: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """``0100007F:1F90`` -> (127.0.0.1, 8080): the kernel prints each 32-bit word of the
    address in host byte order."""
    raw, port = field.split(":")
    data = bytes.fromhex(raw)
    if sys.byteorder == "little":
        data = b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))
    address = ipaddress.ip_address(data)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped, int(port, 16)
    return address, int(port, 16)


def _same(a: tuple[str, int], b: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]) -> bool:
    try:
        address = ipaddress.ip_address(a[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return (address, a[1]) == b


def peer_uid(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The uid owning the client end of the TCP connection ``client`` -> ``server``, or
    None when it cannot be found."""
    for table in _TABLES:
        try:
            with open(table, encoding="ascii") as fh:
                lines = fh.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 8:
                continue
            try:
                local, remote = _address(fields[1]), _address(fields[2])
            except ValueError:
                continue
            if _same(client, local) and _same(server, remote):
                return int(fields[7])
    return None
