"""EIP-1559 fees for anchor transactions: from eth_feeHistory, under a cap, bumped to replace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from attestcore.errors import FeeCapError

GWEI = 10**9
MIN_REPLACEMENT_BUMP_PERCENT = 10
"""geth and anvil refuse a replacement that raises either fee by less than 10%."""
BASE_FEE_HEADROOM = 2
"""Max fee = 2 x the next base fee + tip: each full block raises the base fee by at most 12.5%,
so the transaction stays includable through six full blocks in a row (1.125^6 = 2.03)."""


@dataclass(frozen=True)
class Fees:
    max_fee: int
    """maxFeePerGas, wei."""
    priority_fee: int
    """maxPriorityFeePerGas (the tip), wei."""

    def describe(self) -> str:
        return f"max fee {self.max_fee / GWEI:.4g} gwei, tip {self.priority_fee / GWEI:.4g} gwei"


def fees_from_history(
    base_fees: Sequence[int], rewards: Sequence[Sequence[int]], min_tip: int, cap: int
) -> Fees:
    """Fees for the next block from eth_feeHistory.

    `base_fees` holds one entry more than there are blocks: the last is the next block's base
    fee, already fixed by how full the latest block was (EIP-1559). The tip is the median of
    the blocks' median rewards, at least `min_tip`. FeeCapError when even the next base fee is
    above the cap: such a transaction could not be included at all.
    """
    next_base = int(base_fees[-1])
    if next_base > cap:
        raise FeeCapError(
            f"the next block's base fee is {next_base / GWEI:.4g} gwei, above the anchor fee cap"
            f" of {cap / GWEI:.4g} gwei: no anchor is sent until it falls (or raise"
            " ATTESTREAM_ANCHOR_FEE_CAP_GWEI)"
        )
    paid = sorted(int(block[0]) for block in rewards if block)
    tip = max(paid[len(paid) // 2] if paid else 0, min_tip)
    max_fee = min(BASE_FEE_HEADROOM * next_base + tip, cap)
    return Fees(max_fee, min(tip, max_fee))


def bumped(value: int, percent: int) -> int:
    """`value` raised by `percent`, rounded up so the raise is never below it."""
    return value + -(-value * percent // 100)


def bump_fees(old: Fees, suggested: Fees, percent: int, cap: int) -> Fees | None:
    """Fees for a replacement of a transaction sent with `old`: at least `percent` more on
    both fees and at least what the chain asks now, never above `cap`. None when the cap
    leaves no room for the minimum raise that nodes accept."""
    max_fee = min(max(bumped(old.max_fee, percent), suggested.max_fee), cap)
    tip = min(max(bumped(old.priority_fee, percent), suggested.priority_fee), max_fee)
    floor = MIN_REPLACEMENT_BUMP_PERCENT
    if max_fee < bumped(old.max_fee, floor) or tip < bumped(old.priority_fee, floor):
        return None
    return Fees(max_fee, tip)


TX_BASE_GAS = 21_000
CALLDATA_ZERO_GAS, CALLDATA_NONZERO_GAS = 4, 16  # EIP-2028
FLOOR_TOKEN_GAS = 10  # EIP-7623 (Prague): 10 gas per token, a non-zero byte is 4 tokens


def intrinsic_gas(calldata: bytes) -> int:
    """The gas a plain transfer carrying `calldata` uses since Prague: the larger of the
    EIP-2028 calldata cost and the EIP-7623 floor. For the 37-byte anchor calldata the floor
    wins: 22,480 gas, 30 less per zero byte in the root (anvil measures the same)."""
    zeros = calldata.count(0)
    nonzero = len(calldata) - zeros
    standard = TX_BASE_GAS + CALLDATA_ZERO_GAS * zeros + CALLDATA_NONZERO_GAS * nonzero
    floor = TX_BASE_GAS + FLOOR_TOKEN_GAS * (zeros + 4 * nonzero)
    return max(standard, floor)
