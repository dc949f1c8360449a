"""The anchor service: every interval, one EVM transaction over all chains' latest checkpoints.

Anchoring never blocks the ledger: it only reads checkpoints the sequencer already made
durable, runs in its own process, and a slow or unreachable chain only delays anchors. Each
round advances every open transaction through the lifecycle (anchoring/lifecycle.py), whose
state lives in ClickHouse, so a restarted service resumes its pending transactions (same
nonce, same attempt) instead of sending new ones.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from anchoring import metrics
from anchoring.calldata import anchor_root, encode_calldata
from anchoring.fees import GWEI, Fees, bump_fees, fees_from_history
from anchoring.lifecycle import Attempt, TxState, check_transition, group_attempts
from anchoring.onchain import same_block_hash
from anchoring.rpc import BlockRef, ChainClient, Receipt, RejectedTransaction, hex0x
from anchoring.store import AnchorLedger, AnchorRecords
from attestcore.errors import ConfigError, FeeCapError, InsufficientFundsError
from attestcore.records import StoredAnchor, StoredCheckpoint

log = logging.getLogger("attestream.anchor")
S = TxState
WEI_PER_ETH = 10**18


@dataclass(frozen=True)
class AnchorPolicy:
    """The lifecycle's knobs (attestream/settings.py explains each default)."""

    confirmations: int = 1
    reorg_watch_blocks: int = 64
    fee_cap_wei: int = 200 * GWEI
    min_tip_wei: int = GWEI // 100
    replace_after_s: float = 180.0
    bump_percent: int = 20
    min_balance_anchors: int = 20


def load_account(private_key: str) -> LocalAccount:
    try:
        return Account.from_key(private_key)  # type: ignore[no-any-return]
    except (ValueError, TypeError, AttributeError):
        # The message must not echo the key, nor chain the exception that may hold it.
        raise ConfigError("the anchor signing key is not a valid secp256k1 key") from None


class AnchorService:
    def __init__(
        self,
        store: AnchorLedger,
        chain: ChainClient,
        private_key: str,
        policy: AnchorPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.chain = chain
        self.policy = policy or AnchorPolicy()
        self.clock = clock
        self.records = AnchorRecords(store, chain.chain_id)
        self.records.migrate()
        self._account = load_account(private_key)
        self.sender: str = self._account.address
        self._last_ns = 0
        self._last_head: BlockRef | None = None

    # --- one round -------------------------------------------------------------------------
    def step(self, send: bool = True) -> StoredAnchor | None:
        """One round, in order:

        1. the endpoint serves the configured chain (checked again after every outage);
        2. the head block is read, and the block at the height of the previous round's head:
           if it still has that hash, no recorded block up to there has changed;
        3. every open attempt advances: receipt, confirmations, reorg, replacement;
        4. if `send`, no attempt still waits to be included, and some chain has a checkpoint
           no anchor claims, one transaction anchors the latest checkpoint of every chain.

        Returns the transaction sent in step 4, if any.
        """
        self.chain.check_chain()  # 1
        head = self.chain.head()  # 2
        unchanged_to = self._unchanged_height()
        watch_from = head.number - self.policy.reorg_watch_blocks
        waiting = False
        for attempt in group_attempts(self.records.open_transactions(watch_from)):  # 3
            waiting = self._advance(attempt, head.number, unchanged_to) or waiting
        # Remembered from the start of the round: a reorg during the round changes the block
        # at this height, so the next round checks every anchor again.
        self._last_head = head
        if not send or waiting:
            return None
        return self._send_new()  # 4

    def _unchanged_height(self) -> int:
        """Up to which height the recorded blocks are known still canonical (-1: none).
        A block hash commits to all its ancestors, so one lookup vouches for every anchor
        recorded at or below the previous head: a round costs a few calls however many
        final anchors are still watched for reorgs."""
        last = self._last_head
        if last is None or self.chain.block_hash(last.number) != last.hash:
            return -1
        return last.number

    def _advance(self, attempt: Attempt, head: int, unchanged_to: int) -> bool:
        """Advance one attempt; True while it still waits to be included in a block."""
        included = attempt.included
        if included is not None:
            self._follow_included(included, head, unchanged_to)
            return False
        return self._follow_waiting(attempt, head)

    def _follow_included(self, tx: StoredAnchor, head: int, unchanged_to: int) -> None:
        if tx.block_number <= unchanged_to:
            if tx.state == S.MINED:
                self._finalize_if_confirmed(tx, head)
            return
        receipt = self.chain.receipt(tx.tx_hash)
        if receipt is None or not same_block_hash(tx.block_hash, receipt.block_hash):
            self._reorged(tx, receipt, head)
        elif tx.state == S.MINED:
            self._finalize_if_confirmed(tx, head)

    def _finalize_if_confirmed(self, tx: StoredAnchor, head: int) -> None:
        confirmations = head - tx.block_number + 1
        if confirmations < self.policy.confirmations:
            return
        final = self._record(tx, S.FINAL, detail=f"{confirmations} confirmation(s)")
        metrics.LAST_BLOCK.set(final.block_number)
        metrics.LAST_FINAL.set(final.event_ns / 1e9)
        for chain, size in final.checkpoints:
            created = self.records.checkpoint_created_at(chain, size)
            if created is not None:
                age = final.event_ns / 1e9 - created.replace(tzinfo=UTC).timestamp()
                metrics.LATENCY.observe(max(age, 0.0))

    def _reorged(self, tx: StoredAnchor, receipt: Receipt | None, head: int) -> None:
        """The recorded block is no longer canonical. The transaction may be in another
        block, back in the pool, or gone; gone leaves its checkpoints to the next anchor."""
        was = f"block {tx.block_number} ({tx.block_hash})"
        now = f"now in block {receipt.block_number}" if receipt else "gone from the chain"
        reorged = self._record(tx, S.REORGED, detail=f"was in {was}, {now}")
        log.warning("anchor %s was reorged out of %s: %s", tx.tx_hash, was, now)
        if receipt is not None:
            mined = self._record(reorged, S.MINED, **_block_fields(receipt))
            self._finalize_if_confirmed(mined, head)
        elif self.chain.known(tx.tx_hash):
            self._record(
                reorged,
                S.PENDING,
                block_number=0,
                block_hash="",
                status="",
                gas_used=0,
                detail="back in the node's pool after a reorg",
            )
        else:
            log.warning("its checkpoints will be anchored again by the next transaction")

    def _follow_waiting(self, attempt: Attempt, head: int) -> bool:
        # The nonce is read before the receipts: if it is used, the transaction that used it
        # was mined before, so if it is ours its receipt is found below.
        used = self.chain.nonce(self.sender, "latest")
        for tx in attempt.waiting:
            receipt = self.chain.receipt(tx.tx_hash)
            if receipt is not None:
                self._included(tx, receipt, attempt, head)
                return False
        if used > attempt.nonce:
            detail = f"nonce {attempt.nonce} was used by another transaction"
            for tx in attempt.waiting:
                self._record(tx, S.DROPPED, detail=detail)
            return False
        self._replace_if_stuck(attempt.newest)
        return True

    def _included(self, tx: StoredAnchor, receipt: Receipt, attempt: Attempt, head: int) -> None:
        state = S.MINED if receipt.status == 1 else S.REVERTED
        row = self._record(tx, state, **_block_fields(receipt))
        metrics.GAS.inc(receipt.gas_used)
        metrics.SPENT.inc(receipt.fee_wei)
        metrics.TX_GAS.observe(receipt.gas_used)
        for other in attempt.waiting:
            if other.tx_hash != tx.tx_hash:
                self._record(other, S.DROPPED, detail=f"{tx.tx_hash} of the same anchor was mined")
        if state == S.MINED:
            self._finalize_if_confirmed(row, head)
        else:
            metrics.ERRORS.labels("reverted").inc()
            log.error(
                "anchor %s reverted in block %d; the checkpoints will be anchored again",
                tx.tx_hash,
                receipt.block_number,
            )

    # --- sending -----------------------------------------------------------------------------
    def _replace_if_stuck(self, tx: StoredAnchor) -> None:
        known = self.chain.known(tx.tx_hash)
        age = self.clock() - tx.event_ns / 1e9
        if known and age < self.policy.replace_after_s:
            return
        reason = f"not mined after {age:.0f} s" if known else "gone from the node's pool"
        try:
            suggested = self._suggest_fees()
        except FeeCapError:
            suggested = Fees(0, 0)  # the bump alone decides; the cap still applies
        fees = bump_fees(
            Fees(tx.max_fee, tx.priority_fee),
            suggested,
            self.policy.bump_percent,
            self.policy.fee_cap_wei,
        )
        if fees is None:
            if not known:
                self._rebroadcast(tx)
            raise FeeCapError(
                f"anchor {tx.tx_hash} is {reason}, but a replacement would exceed the fee cap of"
                f" {self.policy.fee_cap_wei / GWEI:.4g} gwei (it was sent with"
                f" {Fees(tx.max_fee, tx.priority_fee).describe()}); it stays pending. Raise"
                " ATTESTREAM_ANCHOR_FEE_CAP_GWEI to get it mined sooner."
            )
        gas = self._estimate_gas(tx.root)
        self._require_balance(gas, fees)
        new = self._sign_and_send(
            tx.attempt,
            tx.nonce,
            tx.root,
            tx.checkpoints,
            fees,
            gas,
            f"replaces {tx.tx_hash}: {reason}",
        )
        if new is not None:
            self._record(tx, S.REPLACED, detail=f"({reason}) by {new.tx_hash}, {fees.describe()}")

    def _rebroadcast(self, tx: StoredAnchor) -> None:
        """Put a transaction the node lost back in its pool, when it cannot be replaced."""
        try:
            self.chain.send_raw(tx.raw_tx, self.sender)
        except RejectedTransaction as exc:
            log.warning("the node refused anchor %s again: %s", tx.tx_hash, exc)

    def _send_new(self) -> StoredAnchor | None:
        latest = self.latest_checkpoints()
        claimed = self.records.claimed_sizes()
        if not latest or all(cp.size <= claimed.get(cp.chain, -1) for cp in latest):
            return None  # nothing new since the last anchor: this interval sends nothing
        root = anchor_root([cp.note for cp in latest])
        fees = self._suggest_fees()
        gas = self._estimate_gas(root)
        self._require_balance(gas, fees)
        nonce = self.chain.nonce(self.sender, "pending")
        checkpoints = tuple((cp.chain, cp.size) for cp in latest)
        sent = self._sign_and_send(
            uuid.uuid4().hex,
            nonce,
            root,
            checkpoints,
            fees,
            gas,
            f"anchors {len(checkpoints)} checkpoint(s)",
        )
        if sent is not None:
            log.info(
                "anchoring %s in %s (nonce %d, %s)",
                checkpoints,
                sent.tx_hash,
                nonce,
                fees.describe(),
            )
        return sent

    def _sign_and_send(
        self,
        attempt: str,
        nonce: int,
        root: bytes,
        checkpoints: tuple[tuple[int, int], ...],
        fees: Fees,
        gas: int,
        detail: str,
    ) -> StoredAnchor | None:
        """Sign, record (write-ahead: before it can be mined), broadcast. None if refused."""
        tx: dict[str, Any] = {
            "chainId": self.chain.chain_id,
            "to": self.sender,
            "value": 0,  # a 0-wei self-transfer
            "data": encode_calldata(root),
            "nonce": nonce,
            "type": 2,
            "gas": gas,
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.priority_fee,
        }
        signed = self._account.sign_transaction(tx)
        tx_hash = hex0x(bytes(signed.hash))
        history = self.records.history(tx_hash)
        check_transition(TxState(history[-1].state) if history else None, S.PENDING)
        row = StoredAnchor(
            anchored_at=_seconds(self._now_ns()),
            root=root,
            network_chain_id=self.chain.chain_id,
            tx_hash=tx_hash,
            block_number=0,
            block_hash="",
            sender=self.sender,
            status="",
            gas_used=0,
            checkpoints=checkpoints,
            state=S.PENDING.value,
            event_ns=self._last_ns,
            attempt=attempt,
            nonce=nonce,
            max_fee=fees.max_fee,
            priority_fee=fees.priority_fee,
            raw_tx=bytes(signed.raw_transaction),
            detail=detail,
        )
        self.records.append(row)
        metrics.transition(S.PENDING)
        try:
            self.chain.send_raw(row.raw_tx, self.sender)
        except (RejectedTransaction, InsufficientFundsError) as exc:
            self._record(row, S.DROPPED, detail=f"refused by the node: {exc}")
            if isinstance(exc, InsufficientFundsError):
                raise
            metrics.ERRORS.labels("rejected").inc()
            log.error("the node refused anchor %s: %s", tx_hash, exc)
            return None
        return row

    def _suggest_fees(self) -> Fees:
        base_fees, rewards = self.chain.fee_history()
        return fees_from_history(
            base_fees, rewards, self.policy.min_tip_wei, self.policy.fee_cap_wei
        )

    def _estimate_gas(self, root: bytes) -> int:
        return self.chain.estimate_gas(
            {"from": self.sender, "to": self.sender, "value": 0, "data": encode_calldata(root)}
        )

    def _require_balance(self, gas: int, fees: Fees) -> None:
        """InsufficientFundsError unless the balance pays for the configured number of
        anchors at this maximum fee: the operator hears of it before the account runs dry."""
        balance = self.chain.balance(self.sender)
        per_anchor = gas * fees.max_fee
        metrics.BALANCE.set(balance)
        metrics.BALANCE_ANCHORS.set(balance // per_anchor if per_anchor else 0)
        need = per_anchor * self.policy.min_balance_anchors
        if balance < need:
            raise InsufficientFundsError(
                f"the anchoring account {self.sender} holds {balance / WEI_PER_ETH:.6f} ETH,"
                f" less than the {need / WEI_PER_ETH:.6f} ETH that"
                f" {self.policy.min_balance_anchors} anchors of {gas} gas may cost at"
                f" {fees.describe()}. Fund it (docs/operations.md); decisions are still logged"
                " and will be anchored once it is funded."
            )

    # --- helpers ---------------------------------------------------------------------------
    def latest_checkpoints(self) -> list[StoredCheckpoint]:
        found = (self.store.latest_checkpoint(chain) for chain in self.store.chains())
        return [cp for cp in found if cp is not None]

    def _now_ns(self) -> int:
        # Strictly increasing, so a transaction's rows are ordered even within one clock tick.
        self._last_ns = max(int(self.clock() * 1e9), self._last_ns + 1)
        return self._last_ns

    def _record(self, tx: StoredAnchor, state: TxState, **changes: object) -> StoredAnchor:
        check_transition(TxState(tx.state), state)
        changes.setdefault("detail", "")
        event_ns = self._now_ns()
        stamped = {"state": state.value, "event_ns": event_ns, "anchored_at": _seconds(event_ns)}
        row = dataclasses.replace(tx, **stamped, **changes)  # type: ignore[arg-type]
        self.records.append(row)
        metrics.transition(state)
        log.info("anchor %s: %s -> %s %s", tx.tx_hash, tx.state, state.value, row.detail)
        return row


def _block_fields(receipt: Receipt) -> dict[str, object]:
    return {
        "block_number": receipt.block_number,
        "block_hash": receipt.block_hash,
        "status": "success" if receipt.status == 1 else "reverted",
        "gas_used": receipt.gas_used,
        "detail": f"in block {receipt.block_number}, {receipt.gas_used} gas",
    }


def _seconds(event_ns: int) -> datetime:
    return datetime.fromtimestamp(event_ns // 10**9, UTC).replace(tzinfo=None)
