"""The node's network interfaces and their addresses (libc getifaddrs through ctypes).

The speaker image has no iproute2, and the interface that carries the node's InternalIP is the one to answer
ARP/NDP and send heartbeats on, so the speaker finds it itself instead of being told.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class _Sockaddr(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_ubyte * 14)]


class _SockaddrIn6(ctypes.Structure):
    _fields_ = [
        ("family", ctypes.c_ushort),
        ("port", ctypes.c_ushort),
        ("flowinfo", ctypes.c_uint32),
        ("addr", ctypes.c_ubyte * 16),
        ("scope_id", ctypes.c_uint32),
    ]


class _Ifaddrs(ctypes.Structure):
    pass


_Ifaddrs._fields_ = [
    ("next", ctypes.POINTER(_Ifaddrs)),
    ("name", ctypes.c_char_p),
    ("flags", ctypes.c_uint),
    ("addr", ctypes.POINTER(_Sockaddr)),
    ("netmask", ctypes.POINTER(_Sockaddr)),
    ("broadaddr", ctypes.POINTER(_Sockaddr)),
    ("data", ctypes.c_void_p),
]

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def interface_addresses() -> dict[str, list[IPAddress]]:
    """Every interface with its IPv4/IPv6 addresses (interfaces without an address map to [])."""
    head = ctypes.POINTER(_Ifaddrs)()
    if _LIBC.getifaddrs(ctypes.byref(head)) != 0:
        raise OSError(ctypes.get_errno(), "getifaddrs failed")
    found: dict[str, list[IPAddress]] = {}
    try:
        entry = head
        while entry:
            item = entry.contents
            name = (item.name or b"").decode()
            addresses = found.setdefault(name, [])
            if item.addr:
                family = item.addr.contents.family
                if family == socket.AF_INET:
                    addresses.append(ipaddress.IPv4Address(bytes(item.addr.contents.data[2:6])))
                elif family == socket.AF_INET6:
                    raw = ctypes.cast(item.addr, ctypes.POINTER(_SockaddrIn6)).contents
                    addresses.append(ipaddress.IPv6Address(bytes(raw.addr)))
            entry = item.next
    finally:
        _LIBC.freeifaddrs(head)
    return found


def interface_with(address: str) -> str | None:
    """The interface that holds ``address`` (the node's InternalIP), or None."""
    wanted = ipaddress.ip_address(address)
    for name, addresses in interface_addresses().items():
        if wanted in addresses:
            return name
    return None
