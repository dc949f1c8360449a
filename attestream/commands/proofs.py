"""`attestream forensic prove | verify-proof | consistency`: proofs for third parties."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from attestream.errors import UsageError
from attestream.settings import load_settings
from attestream.wiring import open_store, trusted_verifiers
from forensics.proofs import load_bundle, prove_consistency, prove_decision, verify_bundle
from ledger.keys import NoteVerifier, parse_verifier_key

KEY_HELP = "Trusted verifier key (repeatable); default: ATTESTREAM_TRUSTED_KEYS / local key."


def _verifiers(keys: list[str] | None) -> list[NoteVerifier]:
    if keys:
        return [parse_verifier_key(k) for k in keys]
    return trusted_verifiers(load_settings())


def prove(
    decision_id: str = typer.Argument(..., help="The decision_id to prove."),
    output: Path = typer.Option(None, "-o", "--output", help="Write the proof file here."),
) -> None:
    """Write a proof file: the entry, its inclusion proof and the signed checkpoint."""
    store = open_store(load_settings())
    try:
        bundle = prove_decision(store, decision_id)
    finally:
        store.close()
    text = json.dumps(bundle.to_json(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}: entry {bundle.chain}/{bundle.seq} in tree of {bundle.tree_size}",
               err=True)  # fmt: skip


def verify_proof(
    proof_file: Path = typer.Argument(..., help="A proof file written by `forensic prove`."),
    key: list[str] = typer.Option(None, "--key", help=KEY_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check a proof file offline: signature, inclusion, entry position. Exit 1 on failure."""
    try:
        text = proof_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {proof_file}: {exc}") from exc
    verdict = verify_bundle(load_bundle(text), _verifiers(key))
    if as_json:
        typer.echo(json.dumps(verdict.to_json(), indent=2))
    else:
        typer.echo(f"VERIFIED: decision {verdict.decision_id} is entry {verdict.chain}/"
                   f"{verdict.seq} of {verdict.origin} (tree size {verdict.tree_size}),"
                   f" signed by {', '.join(verdict.signed_by)}")  # fmt: skip


def consistency(
    old_size: int = typer.Argument(..., min=1),
    new_size: int = typer.Argument(..., min=1),
    chain: int = typer.Option(0, "--chain", min=0),
    key: list[str] = typer.Option(None, "--key", help=KEY_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Print and check a consistency proof between two sizes of one chain."""
    settings = load_settings()
    verifiers = _verifiers(key)
    store = open_store(settings)
    try:
        result = prove_consistency(store, chain, old_size, new_size, verifiers)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    typer.echo(f"CONSISTENT: chain {chain} size {old_size} ({result.old_root.hex()}) is a"
               f" prefix of size {new_size} ({result.new_root.hex()})")  # fmt: skip
    for h in result.proof:
        typer.echo(f"  {h.hex()}")


