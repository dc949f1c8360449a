"""The simulated supply-chain worlds by name: `a` (written with the features) and `b` (apart).

A light module on purpose: the CLI imports it to simulate without loading the training stack.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from attestcore.errors import UsageError
from detectors.labelled import DEFAULT_START
from detectors.simulate_supply import LabelledScan, simulate_supply
from detectors.simulate_supply_b import simulate_supply_b

Simulator = Callable[[int, int, str | None, datetime], list[LabelledScan]]
WORLDS: dict[str, Simulator] = {"a": simulate_supply, "b": simulate_supply_b}


def simulate_world(
    world: str, count: int, seed: int, run_id: str | None = None
) -> list[LabelledScan]:
    """Labelled scans of world `a` or `b`."""
    if world not in WORLDS:
        raise UsageError(f"unknown world {world!r}: choose one of {', '.join(WORLDS)}")
    return WORLDS[world](count, seed, run_id, DEFAULT_START)
