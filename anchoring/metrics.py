"""Prometheus metrics of the anchor service (`attestream_anchor_<name>_<unit>`).

Labels are bounded: a lifecycle state, an error kind, a blocking reason, a ledger chain
number; never a transaction hash or an address.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from anchoring.lifecycle import TxState

# The anchor service's families only: `anchor run` serves this registry, no other process does.
REGISTRY = CollectorRegistry()

TRANSITIONS = Counter(
    "attestream_anchor_transitions_total",
    "Anchor transactions entering each lifecycle state",
    ["state"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "attestream_anchor_errors_total",
    "Anchor rounds that failed, by kind (rpc, insufficient_funds, fee_cap, wrong_chain_id,"
    " missing_key, rejected, store)",
    ["kind"],
    registry=REGISTRY,
)
BLOCKED = Gauge(
    "attestream_anchor_blocked_bool",
    "1 while anchoring waits for an operator or a service, by reason",
    ["reason"],
    registry=REGISTRY,
)
GAS = Counter(
    "attestream_anchor_gas_used_total", "Gas used by mined anchor transactions", registry=REGISTRY
)
SPENT = Counter(
    "attestream_anchor_spent_wei",
    "Wei paid in fees for mined anchor transactions (gasUsed * effectiveGasPrice of each"
    " receipt, reverted ones too): with the balance, the runway",
    registry=REGISTRY,
)
TX_GAS = Histogram(
    "attestream_anchor_tx_gas",
    "Gas used by one mined anchor transaction",
    buckets=(21_000, 22_000, 22_500, 23_000, 25_000, 30_000, 50_000),
    registry=REGISTRY,
)
LATENCY = Histogram(
    "attestream_anchor_latency_seconds",
    "From a checkpoint being stored to the anchor committing to it being final",
    buckets=(2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
LAST_BLOCK = Gauge(
    "attestream_anchor_last_block_number", "Block of the latest final anchor", registry=REGISTRY
)
LAST_FINAL = Gauge(
    "attestream_anchor_last_final_timestamp_seconds",
    "When the latest anchor became final",
    registry=REGISTRY,
)
BALANCE = Gauge(
    "attestream_anchor_balance_wei", "Balance of the anchoring account", registry=REGISTRY
)
BALANCE_ANCHORS = Gauge(
    "attestream_anchor_balance_anchors",
    "How many anchors the balance pays for at the current maximum fee",
    registry=REGISTRY,
)
PENDING = Gauge(
    "attestream_anchor_pending_transactions",
    "Anchor transactions sent and not yet mined",
    registry=REGISTRY,
)
UNANCHORED = Gauge(
    "attestream_anchor_unanchored_checkpoints",
    "Checkpoints beyond the latest final anchor, per ledger chain",
    ["chain"],
    registry=REGISTRY,
)
OLDEST_UNANCHORED = Gauge(
    "attestream_anchor_oldest_unanchored_age_seconds",
    "Age of the oldest logged decision that no final anchor covers yet",
    registry=REGISTRY,
)

BLOCK_REASONS = ("missing_key", "wrong_chain_id", "insufficient_funds", "fee_cap", "rpc")
ERROR_KINDS = (*BLOCK_REASONS, "rejected", "reverted", "store")
"""The documented kinds, exported at 0 from the start: a rate or an alert over them reads a
series before the first failure (kinds outside this list appear when they happen)."""
for _kind in ERROR_KINDS:
    ERRORS.labels(_kind)


def transition(state: TxState) -> None:
    TRANSITIONS.labels(state.value).inc()


def blocked(reason: str | None) -> None:
    """Set the blocking reason (None: anchoring proceeds)."""
    for known in BLOCK_REASONS:
        BLOCKED.labels(known).set(1 if known == reason else 0)
