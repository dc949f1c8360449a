"""The one error hierarchy of attestream.

Every error the product raises on purpose derives from `AttestreamError`, whose
`diagnostics()` gives an operator the text to act on. The CLI maps the families to the exit
codes of `ExitCode` (README, "Exit codes"): verification failures exit 1, configuration and
usage errors exit 2, unreachable services exit 3; anything else is a bug and exits 4.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """What every `attestream` command exits with; scripts may rely on these."""

    OK = 0
    VERIFICATION_FAILED = 1
    USAGE = 2
    """A usage or configuration error: nothing was checked, the operator has to act."""
    SERVICE_UNAVAILABLE = 3
    INTERNAL = 4
    """A bug: an exception attestream did not expect (the traceback goes to a crash log)."""


class AttestreamError(Exception):
    """Root of every error attestream raises on purpose."""

    exit_code: int = ExitCode.USAGE
    kind = "error"
    """A stable machine-readable name of the kind of error (the JSON error object's "kind")."""

    def diagnostics(self) -> str:
        """A message for the operator: what went wrong and, where known, what to do."""
        return str(self)

    def to_json(self) -> dict[str, Any]:
        """The JSON error object that commands print on stdout under --json."""
        return error_json(self.kind, self.diagnostics(), self.exit_code)


def error_json(kind: str, message: str, exit_code: int) -> dict[str, Any]:
    """`{"ok": false, "error": {"kind", "message", "exit_code"}}`: the one JSON error shape."""
    return {"ok": False, "error": {"kind": kind, "message": message, "exit_code": exit_code}}


class ConfigError(AttestreamError):
    """Settings are missing or contradictory (a missing key, an unknown chain id...)."""

    exit_code = ExitCode.USAGE
    kind = "config"


class NoLedgerError(ConfigError):
    """The configured ClickHouse database holds no ledger (or one older than this version's
    schema): nothing to verify there until `attestream ledger migrate` or a writer made it."""

    kind = "no_ledger"


class LedgerAbsentError(NoLedgerError):
    """No ledger tables (or no database) at all yet: a writer's first `ledger run` creates
    them, so a long-running reader may wait for it; a one-shot command exits 2."""


class UsageError(AttestreamError):
    """A command was called with arguments that cannot work."""

    exit_code = ExitCode.USAGE
    kind = "usage"


class ServiceUnavailableError(AttestreamError):
    """A service (broker, ClickHouse, JSON-RPC) could not be reached, so nothing was checked."""

    exit_code = ExitCode.SERVICE_UNAVAILABLE
    kind = "service_unavailable"

    def __init__(self, service: str, endpoint: str, cause: str) -> None:
        super().__init__(f"{service} at {endpoint} could not be reached: {cause}")
        self.service = service
        self.endpoint = endpoint

    def diagnostics(self) -> str:
        return (
            f"{self}\nIs the service running? For the local stack run `attestream stack status`"
            " (or `attestream stack up`)."
        )


class SourceResetError(AttestreamError):
    """The broker lost data the ledger already logged (the local broker is memory-only)."""

    exit_code = ExitCode.USAGE
    kind = "source_reset"


class MissingTopicError(ConfigError):
    """A producer was asked to write to a topic the broker does not have. Producers never
    create topics (a reset broker would get them back with the wrong partition count)."""

    def __init__(self, topic: str, bootstrap: str) -> None:
        super().__init__(f"topic {topic!r} does not exist on the broker at {bootstrap}")
        self.topic = topic

    def diagnostics(self) -> str:
        return (
            f"{self}\nTopics are created by `attestream detect` and `attestream ledger run`"
            " (with the configured partition count); after a broker reset start them first."
        )


class MalformedError(AttestreamError):
    """Input bytes that cannot be parsed into the structure they claim to be (a proof that
    does not parse proves nothing, so it fails verification)."""

    exit_code = ExitCode.VERIFICATION_FAILED
    kind = "malformed"


class VerificationError(AttestreamError):
    """Something that should verify does not. Subclasses name the kind of fault."""

    exit_code = ExitCode.VERIFICATION_FAILED
    kind = "verification_failed"


class RootMismatchError(VerificationError):
    """A recomputed Merkle root differs from the expected one."""

    kind = "root_mismatch"

    def __init__(self, expected: bytes, calculated: bytes, context: str = "") -> None:
        where = f"{context}: " if context else ""
        super().__init__(
            f"{where}root mismatch: expected {expected.hex()}, calculated {calculated.hex()}"
        )
        self.expected = expected
        self.calculated = calculated


class EntryMismatchError(VerificationError):
    """A stored entry's bytes do not hash to its stored leaf hash, or log another decision."""

    kind = "bad_leaf"


class ReplayMismatchError(VerificationError):
    """A decision replayed with its pinned model from its logged features does not give the
    logged score or outcome (or the features are not the model's)."""

    kind = "replay_mismatch"


class ProofError(VerificationError):
    """A proof is malformed for the sizes and indices it claims (wrong length, bad index)."""

    kind = "bad_proof"


class SignatureError(VerificationError):
    """A signed note has no valid signature from a trusted key."""

    kind = "bad_signature"


class AnchorMismatchError(VerificationError):
    """An anchor transaction or proof does not carry what it should (calldata, sender, root)."""

    kind = "anchor_mismatch"


class AnchorNotFoundError(VerificationError):
    """The anchor transaction is not on the chain (never sent there, or a reorg removed it)."""

    kind = "unanchored"


class AnchorReorgedError(VerificationError):
    """The anchor transaction is no longer in the block that was recorded for it."""

    kind = "anchor_reorged"


class AnchorUnconfirmedError(VerificationError):
    """The anchor transaction has fewer confirmations than required."""

    kind = "anchor_unconfirmed"


class AnchorKeyError(ConfigError):
    """The anchor signing key is missing, unreadable or not a key."""

    reason = "missing_key"


class WrongChainError(ConfigError):
    """The JSON-RPC endpoint serves another chain than the configured chain id."""

    reason = "wrong_chain_id"


class AnchorBlockedError(AttestreamError):
    """Anchoring cannot proceed until an operator acts (fund the account, raise the fee cap).
    The ledger is not affected: decisions keep being logged and are anchored afterwards."""

    exit_code = ExitCode.USAGE
    kind = "anchor_blocked"
    reason = "blocked"


class InsufficientFundsError(AnchorBlockedError):
    reason = "insufficient_funds"


class FeeCapError(AnchorBlockedError):
    reason = "fee_cap"


class HistoryConflictError(VerificationError):
    """A verified checkpoint does not extend the one a verifier remembered from an earlier
    run: `kind` is `tree_shrunk`, `fork` or `inconsistent` (docs/ledger-format.md,
    "Verification")."""

    kind = "history_conflict"

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class SigningRefusedError(VerificationError):
    """The ledger sequencer will not sign a chain it cannot re-derive: the stored chain
    contradicts a checkpoint this signer produced (signer state file, anchor on the EVM
    chain), or entries no such checkpoint covers do not match their decisions on the topic.
    `kind` names the reason (docs/operations.md, "The sequencer refuses to sign")."""

    kind = "signing_refused"

    def __init__(self, kind: str, chain: int, seq: int | None, detail: str) -> None:
        at = f", seq {seq}" if seq is not None else ""
        super().__init__(f"refusing to sign chain {chain}{at} ({kind}): {detail}")
        self.kind = kind
        self.chain = chain
        self.seq = seq

    def diagnostics(self) -> str:
        return (
            f"{self}\nNothing was signed. Run `attestream forensic verify` and see"
            ' docs/operations.md, "The sequencer refuses to sign".'
        )
