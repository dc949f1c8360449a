"""EIP-1559 fees from eth_feeHistory, the cap, and replacement bumps."""

from __future__ import annotations

import pytest

from anchoring.calldata import encode_calldata
from anchoring.fees import GWEI, Fees, bump_fees, bumped, fees_from_history, intrinsic_gas
from attestcore.errors import FeeCapError

CAP = 100 * GWEI


def test_fees_are_twice_the_next_base_fee_plus_the_median_tip() -> None:
    # Three blocks: base fees 10, 11, 12 gwei, the next block's 13; median rewards 1, 3, 2 gwei.
    base_fees = [10 * GWEI, 11 * GWEI, 12 * GWEI, 13 * GWEI]
    fees = fees_from_history(base_fees, [[GWEI], [3 * GWEI], [2 * GWEI]], 0, CAP)
    assert fees == Fees(max_fee=2 * 13 * GWEI + 2 * GWEI, priority_fee=2 * GWEI)


def test_a_quiet_chain_still_pays_the_minimum_tip() -> None:
    fees = fees_from_history([7, 7], [[0]], min_tip=10**7, cap=CAP)
    assert fees == Fees(2 * 7 + 10**7, 10**7)
    assert fees_from_history([7, 7], [], min_tip=5, cap=CAP).priority_fee == 5


def test_fees_are_capped_and_a_base_fee_above_the_cap_refuses_to_send() -> None:
    assert fees_from_history([60 * GWEI], [], GWEI, CAP) == Fees(CAP, GWEI)
    with pytest.raises(FeeCapError, match="base fee is 101 gwei, above the anchor fee cap"):
        fees_from_history([101 * GWEI], [], GWEI, CAP)


def test_bumped_rounds_up() -> None:
    assert bumped(100, 10) == 110
    assert bumped(101, 10) == 112  # 10.1 rounds up: a node checks >= 10%
    assert bumped(0, 20) == 0


def test_replacement_raises_both_fees_at_least_by_the_bump() -> None:
    old = Fees(10 * GWEI, GWEI)
    assert bump_fees(old, Fees(0, 0), 20, CAP) == Fees(12 * GWEI, 12 * GWEI // 10)


def test_replacement_follows_the_chain_when_it_asks_more() -> None:
    old = Fees(10 * GWEI, GWEI)
    assert bump_fees(old, Fees(40 * GWEI, 2 * GWEI), 20, CAP) == Fees(40 * GWEI, 2 * GWEI)


def test_replacement_stops_at_the_cap() -> None:
    old = Fees(90 * GWEI, GWEI)
    assert bump_fees(old, Fees(0, 0), 20, CAP) == Fees(CAP, 12 * GWEI // 10)  # +11%: enough
    assert bump_fees(Fees(95 * GWEI, GWEI), Fees(0, 0), 20, CAP) is None  # +5%: refused


def test_anchor_gas_is_the_eip_7623_floor() -> None:
    # 37 bytes, all non-zero: 21000 + 10 * 4 * 37 = 22480 (EIP-2028 would charge 21592).
    assert intrinsic_gas(encode_calldata(b"\x11" * 32)) == 22_480
    assert intrinsic_gas(encode_calldata(b"\x00" + b"\x11" * 31)) == 22_450
    assert intrinsic_gas(b"") == 21_000
