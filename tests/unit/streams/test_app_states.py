"""The stream's entity states: JSON in a table of bytes, read back whoever wrote them."""

from __future__ import annotations

import json

import pytest

from streams.app import JSONStates


def test_states_round_trip_as_json_bytes() -> None:
    table: dict[str, bytes] = {}
    states = JSONStates(table)
    state = {"v": 2, "days": [[20170, 3, 251.91]], "last_ts": 1.5, "devices": ["d1"], "x": None}
    states["C1"] = state
    assert json.loads(table["C1"]) == state  # plain JSON on the changelog
    assert states["C1"] == state
    assert states.get("C2") is None
    assert list(states) == ["C1"] and len(states) == 1
    del states["C1"]
    with pytest.raises(KeyError):
        states["C1"]


def test_states_written_by_faust_json_codec_read_back() -> None:
    """A changelog written before (faust's json codec: the standard library's encoder)."""
    state = {"v": 2, "recent": [[1.0, 2.5]], "mccs": {"5411": 3}}
    states = JSONStates({"C1": json.dumps(state).encode()})
    assert states["C1"] == state
