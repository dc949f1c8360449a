"""attestcore.ports: ports for servers started a moment later, away from the range the kernel
hands to outgoing connections."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from attestcore import ports


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low = ports.ephemeral_low()
    chosen = ports.unused_ports(20, rng=random.Random(7))
    assert len(set(chosen)) == 20
    if low > ports.LOWEST_PORT + ports.ATTEMPTS:
        assert all(ports.LOWEST_PORT <= p < low for p in chosen)
    for port in chosen:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def first_draw(seed: int) -> int:
    return random.Random(seed).randrange(ports.LOWEST_PORT, ports.ephemeral_low())


def test_a_listening_port_or_an_excluded_one_is_never_chosen() -> None:
    if ports.ephemeral_low() <= ports.LOWEST_PORT + ports.ATTEMPTS:
        pytest.skip("no room below this machine's ephemeral range")
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", first_draw(1)))  # the port a Random(1) offers first
        listening.listen()
        assert first_draw(1) not in ports.unused_ports(3, rng=random.Random(1))
    excluded = first_draw(2)
    assert excluded not in ports.unused_ports(3, exclude=[excluded], rng=random.Random(2))


def test_the_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    (tmp_path / "range").write_text("40000\t60999\n")
    assert ports.ephemeral_low(tmp_path / "range") == 40000
    (tmp_path / "broken").write_text("")
    assert ports.ephemeral_low(tmp_path / "broken") == ports.DEFAULT_EPHEMERAL_LOW
    assert ports.ephemeral_low(tmp_path / "missing") == ports.DEFAULT_EPHEMERAL_LOW


def test_a_range_that_leaves_no_room_falls_back_to_the_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ports, "ephemeral_low", lambda: 1024)
    chosen = ports.unused_ports(3)
    assert len(set(chosen)) == 3 and all(p > 0 for p in chosen)
