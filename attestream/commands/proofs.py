"""`attestream forensic prove | verify-proof | consistency`: proofs for third parties."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from anchoring.rpc import ChainClient
from attestcore.errors import UsageError
from attestream.commands.verifier_state import NoStateOption, StateOption, state_path
from attestream.settings import load_settings
from attestream.wiring import open_store, trusted_verifiers
from forensics.proofs import (
    dump_bundle,
    load_bundle,
    prove_consistency,
    prove_verified,
    verify_bundle,
    verify_bundle_on_chain,
)
from forensics.resolve import resolve_decision_id
from forensics.trusted_state import load_state, save_state, seen_checkpoint
from forensics.verify_state import ProofHistory, check_proof_history
from ledger.archive_store import ArchiveStore
from ledger.keys import NoteVerifier, parse_verifier_key

KEY_HELP = "Trusted verifier key (repeatable); default: ATTESTREAM_TRUSTED_KEYS / local key."


def verifiers_for(keys: list[str] | None) -> list[NoteVerifier]:
    if keys:
        return [parse_verifier_key(k) for k in keys]
    return trusted_verifiers(load_settings())


def prove(
    decision_id: str = typer.Argument(
        ..., help="The decision_id to prove, or the event id of an event with one decision."
    ),
    output: Path = typer.Option(
        None, "-o", "--output", envvar="ATTESTREAM_PROOF_OUTPUT", help="Write the proof file here."
    ),
    key: list[str] = typer.Option(None, "--key", envvar="ATTESTREAM_PROVE_KEYS", help=KEY_HELP),
    since_size: int | None = typer.Option(
        None,
        "--since-size",
        min=1,
        envvar="ATTESTREAM_PROVE_SINCE_SIZE",
        help="Also embed the consistency proof from this earlier tree size (one a verifier"
        " remembers) to the proof's checkpoint.",
    ),
) -> None:
    """Write a proof file: the entry, its inclusion proof and the signed checkpoint. The proof
    is verified first (signature, inclusion): exit 1, and no file, if it does not verify."""
    settings = load_settings()
    verifiers = verifiers_for(key)
    store = open_store(settings)
    try:
        decision_id = resolve_decision_id(ArchiveStore(store), decision_id)
        bundle = prove_verified(store, decision_id, verifiers, since_size)
    finally:
        store.close()
    text = dump_bundle(bundle)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(
        f"wrote {output}: entry {bundle.chain}/{bundle.seq} in tree of {bundle.tree_size}", err=True
    )


def verify_proof(
    proof_file: Path = typer.Argument(..., help="A proof file written by `forensic prove`."),
    key: list[str] = typer.Option(None, "--key", help=KEY_HELP),
    rpc_url: str = typer.Option(
        None,
        "--rpc-url",
        envvar="ATTESTREAM_VERIFY_RPC_URL",
        help="Also check the anchor transaction on this EVM JSON-RPC (else offline only).",
    ),
    chain_id: int = typer.Option(
        None,
        "--chain-id",
        envvar="ATTESTREAM_VERIFY_CHAIN_ID",
        help="With --rpc-url: the network the anchor must be on (default: the proof's).",
    ),
    confirmations: int = typer.Option(
        1,
        "--confirmations",
        min=0,
        envvar="ATTESTREAM_VERIFY_CONFIRMATIONS",
        help="With --rpc-url: blocks the anchor must be buried under.",
    ),
    as_json: bool = typer.Option(False, "--json"),
    state: Path | None = StateOption,
    no_state: bool = NoStateOption,
) -> None:
    """Check a proof file: signature, inclusion, entry position, anchor proof; with --rpc-url
    also the anchor transaction; then its checkpoint against the one remembered in the
    trusted-state file (--state): a fork fails, and so does a failing consistency proof the
    file carries. Exit 1 on failure, 3 if the RPC cannot be reached."""
    path = state_path(state, no_state)
    trusted = load_state(path) if path is not None else None  # a bad file: exit 2, before work
    try:
        content = proof_file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {proof_file}: {exc.strerror or exc}") from None
    bundle = load_bundle(content)
    verifiers = verifiers_for(key)
    if rpc_url is None:
        verdict = verify_bundle(bundle, verifiers)
    else:
        network = (
            chain_id
            if chain_id is not None
            else (bundle.anchor.network_chain_id if bundle.anchor else 0)
        )
        lookup = ChainClient(rpc_url, network)
        verdict = verify_bundle_on_chain(bundle, verifiers, lookup, confirmations)
    history = None
    if trusted is not None and path is not None:
        seen = seen_checkpoint(bundle.chain, bundle.checkpoint, verifiers)
        history = check_proof_history(trusted, seen, bundle.since_size, bundle.consistency)
        if history.advance:
            trusted.remember(seen.record("forensic verify-proof"))
            save_state(path, trusted)
    if as_json:
        typer.echo(
            json.dumps(
                {**verdict.to_json(), "trusted_state": _history_json(path, history)}, indent=2
            )
        )
    else:
        typer.echo(
            f"VERIFIED: decision {verdict.decision_id} is entry {verdict.chain}/"
            f"{verdict.seq} of {verdict.origin} (tree size {verdict.tree_size}),"
            f" signed by {', '.join(verdict.signed_by)}"
        )
        if verdict.anchor_tx:
            where = "checked on chain" if verdict.anchor_checked_on_chain else "not looked up"
            typer.echo(f"anchored in transaction {verdict.anchor_tx} ({where})")
        else:
            typer.echo("not anchored when proven")
        if history is not None:
            typer.echo(f"trusted state ({path}): {history.message}")


def _history_json(path: Path | None, history: ProofHistory | None) -> object:
    if path is None or history is None:
        return None
    return {"file": str(path), "message": history.message, "remembered": history.advance}


def consistency(
    old_size: int = typer.Argument(..., min=1),
    new_size: int = typer.Argument(..., min=1),
    chain: int = typer.Option(0, "--chain", min=0),
    key: list[str] = typer.Option(None, "--key", help=KEY_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Print and check a consistency proof between two sizes of one chain."""
    settings = load_settings()
    verifiers = verifiers_for(key)
    store = open_store(settings)
    try:
        result = prove_consistency(store, chain, old_size, new_size, verifiers)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    typer.echo(
        f"CONSISTENT: chain {chain} size {old_size} ({result.old_root.hex()}) is a"
        f" prefix of size {new_size} ({result.new_root.hex()})"
    )
    for h in result.proof:
        typer.echo(f"  {h.hex()}")
