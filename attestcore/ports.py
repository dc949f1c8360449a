"""Choosing a local TCP port for a server that binds it a moment later.

Binding to port 0 hands out a port from the kernel's ephemeral range
(`/proc/sys/net/ipv4/ip_local_port_range`, 32768-60999 by default): the range every outgoing
connection also takes its local port from. Between choosing such a port and a child process
binding it (seconds: an interpreter starting), any client on the machine (a Kafka or
ClickHouse connection) may take it as its own end, and the server fails with "Address already
in use". So ports are drawn at random from below that range, where the kernel never assigns
one by itself, and kept only if they can be bound now.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_LOW = 32768
LOWEST_PORT = 10_000
"""Above the ports system services and common development servers listen on."""
ATTEMPTS = 200


def ephemeral_low(path: Path = EPHEMERAL_RANGE_FILE) -> int:
    """The first port of the kernel's ephemeral range (Linux; the default elsewhere)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_LOW


def unused_ports(
    count: int,
    host: str = "127.0.0.1",
    exclude: Iterable[int] = (),
    rng: random.Random | None = None,
) -> list[int]:
    """`count` distinct ports that `host` can bind now, none in the ephemeral range (or in
    `exclude`); where that range starts too low to leave room, ports from the kernel."""
    draw = rng or random.SystemRandom()
    low = ephemeral_low()
    taken = set(exclude)
    ports: list[int] = []
    for _ in range(ATTEMPTS if low > LOWEST_PORT + ATTEMPTS else 0):
        if len(ports) == count:
            break
        port = draw.randrange(LOWEST_PORT, low)
        if port not in taken and _bindable(host, port):
            ports.append(port)
            taken.add(port)
    while len(ports) < count:
        port = _kernel_port(host)
        if port not in taken:
            ports.append(port)
            taken.add(port)
    return ports


def unused_port(host: str = "127.0.0.1") -> int:
    return unused_ports(1, host)[0]


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _kernel_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
