"""The composition root: the one place where settings meet concrete adapters."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from web3 import Web3

from anchoring.fees import GWEI
from anchoring.rpc import connect
from anchoring.runner import Pacing
from anchoring.service import AnchorPolicy, AnchorService, load_account
from anchoring.store import AnchoredStore
from attestcore.errors import ConfigError
from attestream.anchor_claims import AnchorClaims, ClaimStore
from attestream.settings import Settings
from ledger.keys import (
    NoteSigner,
    NoteVerifier,
    generate_signer,
    load_signer,
    parse_verifier_key,
    save_signer,
)
from ledger.signer_state import SignerStateFile
from ledger.trust import SigningGuard

CREATE_KEY_HINT = "create one with `attestream ledger keys --create`"


def open_store(settings: Settings, create: bool = False) -> AnchoredStore:
    """The ledger store: the ledger's tables and its anchors. Readers (verify, prove,
    explain, status) only read: they work with a ClickHouse user that may only SELECT. With
    `create` (the writers and `ledger migrate`) the schema is created and migrated first."""
    store = AnchoredStore(settings.require_clickhouse())
    if create:
        try:
            migrate_store(store)
        except BaseException:
            store.close()
            raise
    return store


def migrate_store(store: AnchoredStore) -> None:
    """Create the database and every owner's tables if missing (ledger/schema.py,
    anchoring/schema.py, the event archive and entity index) and add
    columns newer versions need (an anchors table from before the anchor lifecycle).
    Idempotent."""
    store.migrate_schema()


def ledger_signer(settings: Settings) -> NoteSigner:
    """The checkpoint signing key, from ATTESTREAM_LEDGER_KEY or the key file. Never created
    here: a key appears only through `create_ledger_key`, an explicit operator step."""
    if settings.ledger_key is not None:
        signer = load_signer(settings.ledger_key.get_secret_value().strip())
    else:
        path = settings.ledger_key_path
        if not path.exists():
            raise ConfigError(
                f"no ledger signing key: {path} does not exist and ATTESTREAM_LEDGER_KEY is"
                f" unset; {CREATE_KEY_HINT} (or point ATTESTREAM_LEDGER_KEY_FILE at the key)"
            )
        signer = load_signer(path)
    if signer.name != settings.log_origin:
        raise ConfigError(
            f"the ledger key is named {signer.name!r} but the log origin is"
            f" {settings.log_origin!r}: checkpoints must be signed under the origin's name"
        )
    return signer


def create_ledger_key(settings: Settings) -> NoteSigner:
    """Create the checkpoint signing key in the key file (mode 0600), named after the log
    origin; ConfigError if the file exists (a key is never overwritten) or the key comes from
    ATTESTREAM_LEDGER_KEY."""
    if settings.ledger_key is not None:
        raise ConfigError("ATTESTREAM_LEDGER_KEY is set: the key comes from there, no file made")
    signer = generate_signer(settings.log_origin)
    save_signer(signer, settings.ledger_key_path)
    return signer


def ensure_local_ledger_key(settings: Settings) -> Path | None:
    """For the local dev stack (`stack up`, `demo`): create the signing key file if there is
    no key at all, and return its path; None when a key exists. Callers say so out loud."""
    if settings.ledger_key is not None or settings.ledger_key_path.exists():
        return None
    try:
        create_ledger_key(settings)
    except ConfigError:
        if not settings.ledger_key_path.exists():  # losing a creation race is fine
            raise
        return None
    return settings.ledger_key_path


def trusted_verifiers(settings: Settings) -> list[NoteVerifier]:
    """Keys whose checkpoint signatures verification accepts.

    Explicit keys (ATTESTREAM_TRUSTED_KEYS, one verifier key per line or comma) come first;
    the local signing key's own verifier is trusted when its file exists, so a dev stack
    verifies out of the box. Several keys may be trusted at once to rotate the signer.
    """
    verifiers = [parse_verifier_key(text) for text in settings.trusted_key_strings()]
    if settings.ledger_key is not None or settings.ledger_key_path.exists():
        verifiers.append(ledger_signer(settings).verifier())
    if not verifiers:
        raise ConfigError(
            "no trusted checkpoint key: set ATTESTREAM_TRUSTED_KEYS to the log's verifier key"
            " (printed by `attestream ledger keys`)"
        )
    return verifiers


def anchor_account(settings: Settings) -> str:
    """The anchor account's address from the verifier's own settings (never the store):
    ATTESTREAM_ANCHOR_ADDRESS, else the address of the configured anchor key."""
    if settings.anchor_address is not None:
        address = settings.anchor_address.strip()
        if not Web3.is_address(address):
            raise ConfigError(f"ATTESTREAM_ANCHOR_ADDRESS is not an address: {address!r}")
        return str(Web3.to_checksum_address(address))
    if settings.anchor_key is None and settings.anchor_key_file is None:
        raise ConfigError(
            "no anchor account to check the chain's anchors against: set"
            " ATTESTREAM_ANCHOR_ADDRESS (or ATTESTREAM_ANCHOR_KEY[_FILE]), or verify --offline"
        )
    return str(load_account(settings.anchor_private_key()).address)


def signing_guard(
    settings: Settings,
    signer: NoteSigner,
    store: ClaimStore,
    anchors: bool = True,
    anchors_unavailable: Callable[[str], None] = lambda cause: None,
) -> SigningGuard:
    """What the sequencer checks before it signs (`ledger.trust`): its own key, its signer
    state file and, with `anchors` when an RPC and the anchor account are configured, the
    newest anchor of that account on the EVM chain."""
    outside = None
    if (
        anchors
        and settings.rpc_url is not None
        and (
            settings.anchor_address is not None
            or settings.anchor_key is not None
            or settings.anchor_key_file is not None
        )
    ):
        rpc_url, chain_id = settings.require_rpc()
        outside = AnchorClaims(
            store,
            lambda: connect(rpc_url, chain_id),
            anchor_account(settings),
            signer.verifier(),
            settings.log_origin,
        )
    return SigningGuard(
        signer.verifier(),
        SignerStateFile(settings.ledger_state_path),
        settings.require_kafka(),
        outside,
        anchors_unavailable,
    )


def policy_from_settings(settings: Settings, chain_id: int) -> AnchorPolicy:
    return AnchorPolicy(
        confirmations=settings.confirmations(chain_id),
        reorg_watch_blocks=settings.anchor_reorg_watch_blocks,
        fee_cap_wei=int(settings.anchor_fee_cap_gwei * GWEI),
        min_tip_wei=int(settings.anchor_min_priority_fee_gwei * GWEI),
        replace_after_s=settings.anchor_replace_after_s,
        bump_percent=settings.anchor_fee_bump_percent,
        min_balance_anchors=settings.anchor_min_balance_anchors,
    )


def pacing_from_settings(settings: Settings, interval_s: float | None = None) -> Pacing:
    return Pacing(
        interval_s or settings.anchor_interval_s,
        settings.anchor_poll_s,
        settings.anchor_retry_initial_s,
        settings.anchor_retry_max_s,
    )


def open_service(
    settings: Settings, store: AnchoredStore, clock: Callable[[], float] = time.time
) -> AnchorService:
    """The service for the configured network: key loaded (AnchorKeyError), endpoint on the
    right chain (WrongChainError) and reachable (ServiceUnavailableError)."""
    rpc_url, chain_id = settings.require_rpc()
    key = settings.anchor_private_key()
    chain = connect(rpc_url, chain_id)
    service = AnchorService(store, chain, key, policy_from_settings(settings, chain_id), clock)
    logging.getLogger("attestream.anchor").info(
        "anchoring from %s on chain id %d via %s (%d confirmation(s))",
        service.sender,
        chain_id,
        chain.endpoint,
        service.policy.confirmations,
    )
    return service
