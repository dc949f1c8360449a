"""The composition root: the one place where settings meet concrete adapters."""

from __future__ import annotations

from anchoring.store import AnchorRecords
from attestream.errors import ConfigError
from attestream.settings import SEPOLIA_CHAIN_ID, Settings
from ledger.keys import (
    NoteSigner,
    NoteVerifier,
    load_or_create_signer,
    load_signer,
    parse_verifier_key,
)
from ledger.store import ClickHouseStore


def open_store(settings: Settings, create: bool = False) -> ClickHouseStore:
    """The ledger store; an anchors table from before the anchor lifecycle is migrated on open,
    so every command (not only `anchor run`) reads it."""
    store = ClickHouseStore(settings.require_clickhouse())
    if create:
        store.create_schema()
    AnchorRecords(store, settings.chain_id or SEPOLIA_CHAIN_ID).migrate()
    return store


def ledger_signer(settings: Settings) -> NoteSigner:
    """The checkpoint signing key, from ATTESTREAM_LEDGER_KEY or a key file; without either,
    created on first use under <home>/keys (mode 0600)."""
    if settings.ledger_key is not None:
        signer = load_signer(settings.ledger_key.get_secret_value().strip())
    else:
        signer = load_or_create_signer(settings.ledger_key_path, settings.log_origin)
    if signer.name != settings.log_origin:
        raise ConfigError(
            f"the ledger key is named {signer.name!r} but the log origin is"
            f" {settings.log_origin!r}: checkpoints must be signed under the origin's name"
        )
    return signer


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
