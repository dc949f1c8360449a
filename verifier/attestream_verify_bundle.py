#!/usr/bin/env python3
"""Check an attestream case bundle with the log's verifier key, without attestream.

    python attestream_verify_bundle.py case.bundle --key VKEY [--key VKEY2] [--rpc-url URL]
        [--chain-id ID] [--confirmations N] [--json]

Needs Python 3.10+ and the `cryptography` package (Ed25519) only. It checks what `attestream
forensic verify-bundle` checks, with the same verdicts and exit codes: 0 verified, 1 any
failure (each one named with its kind, chain and seq), 2 a usage error (no key, a bad key,
an unreadable file, an RPC on another network), 3 the RPC given could not be reached.

The formats (attestream docs/ledger-format.md; JSON Schema docs/schemas/case-bundle.json):
- bundle: JSON {format "attestream-bundle/1", manifest, chains, entries, events}; bytes are
  padded base64, hashes 64 hex digits; unknown members are ignored.
- entry: compact JSON {chain, decision, prev, seq, source, v}; v 1 = a decision without
  `context` (the old format), v 2 = with one. The bytes are hashed as stored, never re-encoded.
- leaf and node hashes (RFC 6962 2.1 / RFC 9162 2.1.1): SHA-256(0x00 || entry) and
  SHA-256(0x01 || left || right).
- nodes: each chain's bundle holds perfect subtrees (level, index), each once, from which the
  RFC 9162 2.1.3.1 inclusion path of every entry is rebuilt, then checked (RFC 9162 2.1.3.2).
- checkpoint: a C2SP signed note (c2sp.org/signed-note) whose text is a C2SP checkpoint
  (c2sp.org/tlog-checkpoint): origin, tree size, base64 root, extension lines; signature
  lines "— <name> <base64(4-byte key id || Ed25519 signature)>".
- verifier key: <name>+<8 hex key id>+<base64(0x01 || 32-byte Ed25519 public key)>, key id =
  SHA-256(name || 0x0A || 0x01 || public key)[:4] (c2sp.org/signed-note).
- anchor proof: the checkpoint's consistency (RFC 9162 2.1.4.2) with a signed anchored
  checkpoint, whose note bytes are a leaf of the anchor root (RFC 9162 2.1.3.2) carried by an
  EVM transaction in its calldata: b"ATST" || 0x01 || root.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LOWER_HEX64 = re.compile(r"[0-9a-f]{64}")
CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
RPC_TIMEOUT_S = 10.0  # a healthy node answers in well under a second
RPC_ATTEMPTS = 3  # rides out a node restart; a longer outage is exit 3


class Failure(Exception):
    """One failed check; `kind` is the failure's name in the report."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class UsageError(Exception):  # exit 2: nothing was checked
    pass


class RpcUnreachable(Exception):  # exit 3: nothing was checked on the chain
    pass


# --- the bundle's shape (docs/schemas/case-bundle.json, docs/schemas/anchor-proof.json) ----

HASHES = ["hex"]
ANCHOR_PROOF = {
    "format": "anchor-format", "chain": "int", "size": "int", "anchored_size": "int",
    "consistency_proof": HASHES, "anchored_checkpoint": "b64", "anchor_index": "int",
    "anchor_size": "int", "anchor_inclusion_proof": HASHES, "anchor_root": "hex",
    "network_chain_id": "int", "tx_hash": "0x64", "block_number": "int",
    "block_hash": "0x64", "sender": "0x40",
}  # fmt: skip
FILTER = {
    "entity_id?": "str", "event_id?": "str", "detector?": "str", "outcome?": "str",
    "model_sha256?": "str", "min_score?": "score", "max_score?": "score",
    "event_time_from?": "time", "event_time_to?": "time",
}  # fmt: skip
COUNTS = dict.fromkeys(("entries", "chains", "events", "nodes", "anchored_chains"), "int")
BUNDLE = {
    "format": "bundle-format",
    "manifest": {
        "exported_by": "str", "exported_at": "time", "note?": "str", "tool": "str",
        "selection": {"query?": "str", "filter?": FILTER, "ids?": ["str"]}, "counts": COUNTS,
    },
    "chains": [{
        "chain": "int", "tree_size": "int", "checkpoint": "str",
        "nodes": [{"level": "int", "index": "int", "hash": "hex"}], "anchor?": ANCHOR_PROOF,
    }],
    "entries": [{"chain": "int", "seq": "int", "entry": "b64"}],
    "events": [{"event_sha256": "hex", "event": "b64"}],
}  # fmt: skip
KINDS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: type(v) is int and v >= 0,
    "str": lambda v: isinstance(v, str),
    "score": lambda v: type(v) in (int, float) and 0 <= v <= 1,
    "time": lambda v: isinstance(v, str) and parse_time(v) is not None,
    "hex": lambda v: isinstance(v, str) and re.fullmatch("[0-9a-fA-F]{64}", v) is not None,
    "0x64": lambda v: isinstance(v, str) and re.fullmatch("0x[0-9a-fA-F]{64}", v) is not None,
    "0x40": lambda v: isinstance(v, str) and re.fullmatch("0x[0-9a-fA-F]{40}", v) is not None,
    "b64": lambda v: isinstance(v, str) and b64(v) is not None,
    "bundle-format": lambda v: v == "attestream-bundle/1",
    "anchor-format": lambda v: v == "attestream-anchor-proof/1",
}


def check_shape(value: Any, shape: Any, path: str = "") -> None:
    """Reject (`malformed`, naming the member) a file that does not have the bundle's shape:
    verify-bundle checks the whole file before verifying anything. Unknown members pass."""
    if isinstance(shape, list):
        if not isinstance(value, list):
            raise Failure("malformed", f"case bundle field {path!r} must be a list")
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{path}[{i}]")
    elif isinstance(shape, dict):
        if not isinstance(value, dict):
            raise Failure("malformed", f"case bundle field {path or '.'!r} must be an object")
        for key, member in shape.items():
            name, optional = key.rstrip("?"), key.endswith("?")
            where = f"{path}.{name}".lstrip(".")
            if name not in value and not optional:
                raise Failure("malformed", f"case bundle lacks the field {where!r}")
            if value.get(name) is not None or not optional:
                check_shape(value.get(name), member, where)
    elif not KINDS[shape](value):
        raise Failure("malformed", f"case bundle field {path!r} must be {shape}: {value!r:.60}")


def b64(text: str) -> bytes | None:
    """Padded base64 (RFC 4648) as bytes, None if it is not."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 time with its offset, None if it is not."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


# --- RFC 9162 Merkle trees ----------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()  # RFC 9162 2.1.1


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()  # RFC 9162 2.1.1


def tiling(start: int, end: int) -> list[tuple[int, int]]:
    """The perfect subtrees (level, index) covering leaves [start, end), largest first."""
    ids, width = [], end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if (width >> level) & 1:
            ids.append((level, start >> level))
            start += 1 << level
    return ids


def inclusion_plan(index: int, size: int) -> list[list[tuple[int, int]]]:
    """RFC 9162 2.1.3.1 PATH(index, D[size]) as perfect subtrees, bottom to top: below the
    level where the paths to `index` and to the last leaf part, each level has a sibling
    (the highest may be a right-edge subtree, tiled); above it only left siblings exist."""
    plan, inner = [], (index ^ (size - 1)).bit_length()
    for level in range(inner):
        start = ((index >> level) ^ 1) << level
        plan.append(tiling(start, min(start + (1 << level), size)))
    level = inner
    while index >> level:
        if (index >> level) & 1:
            plan.append([(level, (index >> level) - 1)])
        level += 1
    return plan


def rebuilt_path(index: int, size: int, nodes: dict[tuple[int, int], bytes]) -> list[bytes]:
    plan = inclusion_plan(index, size)
    wanted = list(dict.fromkeys(node for tiles in plan for node in tiles))
    missing = [node for node in wanted if node not in nodes]
    if missing:
        raise Failure("bad_proof", f"tree nodes (level, index) missing from the bundle: {missing}")
    path = []
    for tiles in plan:  # a right-edge subtree folds its tiles right to left (RFC 9162 2.1.1)
        acc = nodes[tiles[-1]]
        for tile in reversed(tiles[:-1]):
            acc = node_hash(nodes[tile], acc)
        path.append(acc)
    return path


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    """RFC 9162 2.1.3.2: compute the root the proof yields for `leaf`, then compare."""
    if not 0 <= index < size:  # step 1 (the empty tree includes nothing)
        raise Failure("bad_proof", f"leaf index {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf  # steps 2-3
    for p in proof:  # step 4
        if sn == 0:
            raise Failure("bad_proof", f"wrong proof length: got {len(proof)} hashes")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # step 5
        raise Failure("bad_proof", f"wrong proof length: got {len(proof)} hashes")
    if r != root:
        raise Failure(
            "root_mismatch",
            f"inclusion of leaf {index} in size {size}: root mismatch:"
            f" expected {root.hex()}, calculated {r.hex()}",
        )


def verify_consistency(
    size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes
) -> None:
    """RFC 9162 2.1.4.2: the tree (size1, root1) is a prefix of (size2, root2)."""
    if not 0 < size1 <= size2:
        raise Failure("bad_proof", f"no consistency proof from size {size1} to {size2}")
    if size1 == size2:
        if proof:
            detail = f"sizes are equal ({size1}) but the proof has {len(proof)} hashes"
            raise Failure("bad_proof", detail)
        if root1 != root2:
            detail = f"expected {root2.hex()}, calculated {root1.hex()}"
            raise Failure("root_mismatch", f"two roots of size {size1}: root mismatch: {detail}")
        return
    if not proof:  # step 1
        raise Failure("bad_proof", "empty consistency proof")
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)  # step 2
    fn, sn = size1 - 1, size2 - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            raise Failure("bad_proof", "wrong consistency proof length")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != root1 or sr != root2:  # step 7
        raise Failure("root_mismatch", f"consistency proof from size {size1} to {size2} fails")


# --- C2SP signed notes, checkpoints and verifier keys --------------------------------------


def parse_key(text: str) -> tuple[str, int, bytes]:
    """A verifier key: (name, key id, Ed25519 public key); the key id must match."""
    name, key_hex, data = (text.strip().split("+", 2) + ["", ""])[:3]
    raw = b64(data) or b""
    if not valid_name(name) or not re.fullmatch("[0-9a-fA-F]{8}", key_hex):
        raise UsageError(f"malformed verifier key {text!r:.40}: want <name>+<8 hex>+<base64>")
    if len(raw) != 33 or raw[0] != 0x01:
        raise UsageError(f"verifier key {name}: only Ed25519 keys (0x01 || 32 bytes) are read")
    digest = hashlib.sha256(name.encode() + b"\n" + raw).digest()
    if int.from_bytes(digest[:4], "big") != int(key_hex, 16):
        raise UsageError(f"verifier key {name}+{key_hex}: key id does not match the key")
    return name, int(key_hex, 16), raw[1:]


def valid_name(name: str) -> bool:  # non-empty, no Unicode spaces, no "+"
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def note_text(data: bytes, what: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Failure("malformed", f"{what} is not valid UTF-8") from None
    if CONTROL.search(text):
        raise Failure("malformed", f"{what} has control characters other than newline")
    return text


def open_note(note: bytes, keys: list[tuple[str, int, bytes]]) -> tuple[bytes, list[str]]:
    """The note text and the trusted keys that signed it. Signatures of unknown keys are
    ignored; a trusted key's bad signature, or no trusted signature, is `bad_signature`."""
    text = note_text(note, "signed note")
    split = text.rfind("\n\n")  # the text ends at the last blank line
    if split < 0 or not text.endswith("\n"):
        raise Failure("malformed", "a signed note is text, a blank line, then signature lines")
    body, lines = text[: split + 1].encode(), text[split + 2 : -1].split("\n")
    if len(lines) > 100:
        raise Failure("malformed", "more than 100 signatures on one note")
    trusted = {(name, kid): key for name, kid, key in keys}
    signed_by: list[str] = []
    present, checked = [], set()
    for line in lines:
        name, _, encoded = line[2:].partition(" ")
        if not line.startswith("\u2014 ") or not valid_name(name):
            raise Failure("malformed", f"signature line {line[:40]!r} is not '— <name> <sig>'")
        raw = b64(encoded) or b""
        if len(raw) < 5:
            raise Failure("malformed", f"signature by {name} is not base64 of a key id and more")
        kid = int.from_bytes(raw[:4], "big")
        present.append(f"{name}+{kid:08x}")
        if (name, kid) not in trusted or (name, kid) in checked:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(trusted[(name, kid)]).verify(raw[4:], body)
        except InvalidSignature:
            raise Failure(
                "bad_signature", f"signature by {name}+{kid:08x} does not verify"
            ) from None
        checked.add((name, kid))
        signed_by += [] if name in signed_by else [name]
    if not signed_by:
        known = ", ".join(f"{n}+{k:08x}" for n, k in trusted) or "none"
        raise Failure(
            "bad_signature",
            f"no trusted key signed this note: it is signed by {', '.join(present)};"
            f" trusted keys: {known}",
        )
    return body, signed_by


def parse_checkpoint(body: bytes) -> tuple[str, int, bytes]:
    """c2sp.org/tlog-checkpoint: (origin, size, root); only the canonical form parses."""
    text = note_text(body, "checkpoint")
    lines = text[:-1].split("\n") if text.endswith("\n") else []
    if len(lines) < 3 or not all(lines):
        raise Failure("malformed", "a checkpoint is at least 3 non-empty lines, each ending in \\n")
    origin, size, root_b64 = lines[:3]
    if not re.fullmatch("0|[1-9][0-9]*", size):
        raise Failure("malformed", f"checkpoint tree size {size!r} is not a canonical decimal")
    root = b64(root_b64) or b""
    if len(root) != 32 or base64.b64encode(root).decode() != root_b64:
        raise Failure("malformed", f"checkpoint root {root_b64!r} is not 32 bytes in base64")
    return origin, int(size), root


def checkpoint_of(note: bytes) -> tuple[str, int, bytes]:
    """The checkpoint a signed note carries (signatures checked elsewhere)."""
    split = note.rfind(b"\n\n")
    if split < 0:
        raise Failure("malformed", "a signed note is text, a blank line, then signature lines")
    return parse_checkpoint(note[: split + 1])


# --- entries (docs/ledger-format.md, "Entries") and the recorded selection -----------------

ENTRY_MEMBERS = {"chain", "decision", "prev", "seq", "source", "v"}
DECISION_MEMBERS = {
    "decision_id", "event_id", "event_sha256", "source", "entity_id", "detector", "model_id",
    "model_sha256", "features", "score", "outcome", "reasons", "event_time", "decided_at",
}  # fmt: skip


def decode_entry(data: bytes) -> dict[str, Any]:
    """An entry's members, checked as far as this verifier reads them; v1 (no `context`)
    and v2 (with one) must match the decision. Anything else is `bad_entry`."""
    try:
        entry = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Failure("bad_entry", f"not a ledger entry: {exc}") from None
    d: Any = entry.get("decision") if isinstance(entry, dict) else None
    shape = (
        isinstance(d, dict)
        and set(entry) == ENTRY_MEMBERS
        and DECISION_MEMBERS <= set(d) <= DECISION_MEMBERS | {"context"}
        and all(type(entry[k]) is int and entry[k] >= 0 for k in ("chain", "seq", "v"))
        and all(LOWER_HEX64.fullmatch(str(d[k])) for k in ("decision_id", "event_sha256"))
        and all(isinstance(d[k], str) for k in ("event_id", "entity_id", "detector", "outcome"))
        and isinstance(d["score"], (int, float))
        and not isinstance(d["score"], bool)
        and 0 <= d["score"] <= 1
        and parse_time(str(d["event_time"])) is not None
    )
    if not shape:
        raise Failure("bad_entry", "not a ledger entry: members missing, unknown or mistyped")
    version = 1 if d.get("context") is None else 2
    if entry["v"] != version:
        detail = f"format version {entry['v']} for a decision of format {version}"
        raise Failure("bad_entry", f"not a ledger entry: {detail}")
    return dict(entry)


def outside(selection: dict[str, Any], d: dict[str, Any]) -> str | None:
    """Why decision `d` is not what the manifest says was selected, or None."""
    where, ids = selection.get("filter"), selection.get("ids")
    reason = None
    if where is not None:
        texts = ("entity_id", "event_id", "detector", "outcome", "model_sha256")
        low, high = where.get("min_score"), where.get("max_score")
        start, end = where.get("event_time_from"), where.get("event_time_to")
        at = parse_time(d["event_time"])
        assert at is not None  # decode_entry checked it
        if (
            any(where.get(k) is not None and d.get(k) != where[k] for k in texts)
            or (low is not None and d["score"] < low)
            or (high is not None and d["score"] > high)
            or (start is not None and at < (parse_time(start) or at))
            or (end is not None and not at < (parse_time(end) or at))
        ):
            reason = "does not meet the bundle's query"
    if ids is not None and not {d["decision_id"], d["event_id"]} & set(ids):
        reason = "is not in the bundle's id list"
    return reason


# --- anchors: offline (RFC 9162 proofs) and on the EVM chain (JSON-RPC) --------------------


def check_anchor_offline(chain: int, proof: dict[str, Any], note: bytes, keys: Any) -> None:
    """The anchored note is signed by a trusted key, the checkpoint's tree is a prefix of
    its tree, and its note bytes are a leaf of the anchor root."""
    if proof["chain"] != chain:
        raise Failure("anchor_mismatch", f"the anchor proof is for chain {proof['chain']}")
    anchored = base64.b64decode(proof["anchored_checkpoint"])
    open_note(anchored, keys)
    origin, size, root = checkpoint_of(note)
    a_origin, a_size, a_root = checkpoint_of(anchored)
    if size != proof["size"]:
        detail = f"the checkpoint has tree size {size}, the proof is for {proof['size']}"
        raise Failure("anchor_mismatch", detail)
    if a_origin != origin or a_size != proof["anchored_size"]:
        detail = f"{a_origin!r} size {a_size}, not {origin!r} size {proof['anchored_size']}"
        raise Failure("anchor_mismatch", f"the anchored checkpoint is {detail}")
    hashes = [bytes.fromhex(h) for h in proof["consistency_proof"]]
    verify_consistency(size, a_size, hashes, root, a_root)
    path = [bytes.fromhex(h) for h in proof["anchor_inclusion_proof"]]
    index, count = proof["anchor_index"], proof["anchor_size"]
    verify_inclusion(index, count, leaf_hash(anchored), path, bytes.fromhex(proof["anchor_root"]))


class Rpc:
    """EVM JSON-RPC over HTTP: eth_chainId, eth_getTransactionByHash, -Receipt, eth_blockNumber."""

    def __init__(self, url: str, network: int | None, confirmations: int) -> None:
        self.url, self.network, self.served = url, network, -1
        self.confirmations = confirmations
        self.checked: dict[str, Failure | None] = {}  # by transaction hash
        parts = urllib.parse.urlsplit(url)  # the path may hold an API key: never shown
        self.shown = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    def call(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        headers = {"Content-Type": "application/json"}
        cause = ""
        for attempt in range(RPC_ATTEMPTS):
            request = urllib.request.Request(self.url, body.encode(), headers)
            try:
                with urllib.request.urlopen(request, timeout=RPC_TIMEOUT_S) as answer:
                    reply = json.loads(answer.read())
                if isinstance(reply, dict) and "error" not in reply:
                    return reply.get("result")
                cause = f"{method} answered an error: {str(reply)[:200]}"
                break  # an error answer is the node's verdict: no retry
            except (OSError, ValueError) as exc:  # refused, timed out, HTTP 4xx/5xx, not JSON
                cause = f"{method}: {getattr(exc, 'reason', exc)}"
                time.sleep(0.1 * 2**attempt)
        raise RpcUnreachable(f"EVM JSON-RPC at {self.shown} could not be reached: {cause}")

    def chain_id(self) -> int:
        """The network served, checked once to be the one the anchors are on (else exit 2)."""
        if self.served < 0:
            self.served = int(self.call("eth_chainId"), 16)
            if self.network is not None and self.served != self.network:
                detail = f"serves chain id {self.served}, the anchors are on {self.network}"
                raise UsageError(f"the JSON-RPC at {self.shown} {detail}")
        return self.served

    def anchor_failure(self, proof: dict[str, Any]) -> Failure | None:
        """`check_anchor_tx`, once per transaction (chains anchored together share one)."""
        tx_hash = proof["tx_hash"]
        if tx_hash not in self.checked:
            try:
                check_anchor_tx(self, proof, self.confirmations)
                self.checked[tx_hash] = None
            except Failure as exc:
                self.checked[tx_hash] = exc
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # no EVM node
                raise RpcUnreachable(f"EVM JSON-RPC at {self.shown} answered {exc!r}") from None
        return self.checked[tx_hash]


def check_anchor_tx(rpc: Rpc, proof: dict[str, Any], min_confirmations: int) -> None:
    """The transaction is mined on the anchor's network, carries the anchor root in its
    calldata, succeeded, was sent by the recorded sender, is in the recorded block, and is
    buried under `min_confirmations` blocks (its own counting)."""
    tx_hash, served = proof["tx_hash"], rpc.chain_id()
    if served != proof["network_chain_id"]:
        detail = f"the chain reader serves chain id {served}, the anchor is on"
        raise Failure("anchor_mismatch", f"{detail} {proof['network_chain_id']}")
    tx = rpc.call("eth_getTransactionByHash", tx_hash)
    receipt = rpc.call("eth_getTransactionReceipt", tx_hash) if tx else None
    if not tx or not receipt or receipt.get("blockNumber") is None:
        raise Failure(
            "unanchored", f"anchor transaction {tx_hash}: the transaction is not on chain {served}"
        )
    calldata, root = bytes.fromhex(tx["input"][2:]), bytes.fromhex(proof["anchor_root"])
    number, block = int(receipt["blockNumber"], 16), receipt["blockHash"].lower()
    where = f"anchor transaction {tx_hash}:"
    if len(calldata) != 37 or calldata[:5] != b"ATST\x01":  # b"ATST" || version 1 || root
        detail = f"{calldata[:8].hex()}... ({len(calldata)} bytes)"
        raise Failure("anchor_mismatch", f"{where} not attestream anchor calldata: {detail}")
    if calldata[5:] != root:
        detail = f"the calldata carries root {calldata[5:].hex()}, expected {root.hex()}"
        raise Failure("anchor_mismatch", f"{where} {detail}")
    if int(receipt["status"], 16) != 1:
        raise Failure("anchor_mismatch", f"{where} the transaction reverted")
    if tx["from"].lower() != proof["sender"].lower():
        detail = f"sent by {tx['from']}, not by the recorded sender {proof['sender']}"
        raise Failure("anchor_mismatch", f"{where} the transaction was {detail}")
    recorded = f"{proof['block_number']} ({proof['block_hash']})"
    if block != proof["block_hash"].lower():  # the recorded block is no longer canonical
        detail = f"now in block {number} ({block}), not in the recorded block {recorded}"
        raise Failure("anchor_reorged", f"{where} the transaction is {detail}")
    if number != proof["block_number"]:
        detail = f"is number {number}, the anchor records {proof['block_number']}"
        raise Failure("anchor_mismatch", f"{where} block {block} {detail}")
    confirmations = int(rpc.call("eth_blockNumber"), 16) - number + 1 if min_confirmations else 0
    if confirmations < min_confirmations:
        detail = f"{confirmations} confirmation(s), {min_confirmations} required"
        raise Failure("anchor_unconfirmed", f"anchor transaction {tx_hash} has {detail}")


# --- the verification, in the order of docs/ledger-format.md, "Case bundles" ---------------

Tree = tuple[int, bytes, dict[tuple[int, int], bytes]]  # a chain's signed size, root, nodes


def verify(bundle: Any, keys: Any, rpc: Rpc | None = None) -> Any:
    """The report of every check (`--json` prints it); with `rpc`, the anchors on the chain
    too, and a chain without an anchor proof fails."""
    check_shape(bundle, BUNDLE)
    report: Any = {"ok": False, "format": bundle["format"], "entries": 0, "events": 0}
    report.update(chains=[], manifest=bundle["manifest"], failures=[])
    counts = {"entries": len(bundle["entries"]), "chains": len(bundle["chains"])}
    counts["events"] = len(bundle["events"])
    counts["nodes"] = sum(len(c["nodes"]) for c in bundle["chains"])
    counts["anchored_chains"] = sum(c.get("anchor") is not None for c in bundle["chains"])
    for name, value in counts.items():  # 1. the manifest's counts
        claimed = bundle["manifest"]["counts"][name]
        if claimed != value:
            detail = f"the manifest counts {claimed} {name}, the bundle holds {value}"
            fail(report, "malformed", None, None, detail)
    trees: dict[int, Tree] = {}
    for evidence in bundle["chains"]:
        if any(c["chain"] == evidence["chain"] for c in report["chains"]):
            fail(report, "malformed", evidence["chain"], None, "the chain appears twice")
            continue
        tree = check_chain(evidence, keys, report)  # 2.
        if tree is not None:
            trees[evidence["chain"]] = tree
            check_anchor(evidence, keys, rpc, report)  # 3.
    logged = check_entries(bundle, trees, report)  # 4. and 5.
    check_events(bundle["events"], logged, report)  # 6.
    report["ok"] = not report["failures"]
    return report


def fail(report: Any, kind: str, chain: int | None, seq: int | None, detail: str) -> None:
    report["failures"].append({"kind": kind, "chain": chain, "seq": seq, "detail": detail})


def check_chain(evidence: Any, keys: Any, report: Any) -> Tree | None:
    """2. The checkpoint is signed by a trusted key, of `tree_size`, of the chain's log
    (origin ending in /<chain>); no node is given twice."""
    chain = evidence["chain"]
    verdict = {"chain": chain, "tree_size": evidence["tree_size"], "origin": "", "signed_by": []}
    verdict.update(anchor_tx=None, anchor_checked_on_chain=False, ok=False)
    report["chains"].append(verdict)
    try:
        body, verdict["signed_by"] = open_note(note_bytes(evidence), keys)
        origin, size, root = parse_checkpoint(body)
    except Failure as exc:
        fail(report, exc.kind, chain, None, f"checkpoint: {exc}")
        return None
    verdict["origin"] = origin
    ids = [(n["level"], n["index"]) for n in evidence["nodes"]]
    if size != evidence["tree_size"]:
        detail = f"the bundle says tree size {evidence['tree_size']}, the signed checkpoint {size}"
        fail(report, "bad_checkpoint", chain, None, detail)
        return None
    if not origin.endswith(f"/{chain}"):
        detail = f"the checkpoint is of log {origin!r}, not of chain {chain}"
        fail(report, "bad_checkpoint", chain, None, detail)
        return None
    if len(set(ids)) != len(ids):
        twice = sorted(i for i, n in Counter(ids).items() if n > 1)
        fail(report, "malformed", chain, None, f"tree nodes (level, index) given twice: {twice}")
        return None
    verdict["ok"] = True
    return (
        size,
        root,
        {i: bytes.fromhex(n["hash"]) for i, n in zip(ids, evidence["nodes"], strict=True)},
    )


def note_bytes(evidence: Any) -> bytes:  # a lone surrogate in the JSON text is not UTF-8
    return str(evidence["checkpoint"]).encode("utf-8", "surrogatepass")


def check_anchor(evidence: Any, keys: Any, rpc: Rpc | None, report: Any) -> None:
    """3. The anchor proof offline; with `rpc`, its transaction on the chain (looked up once)."""
    chain, proof = evidence["chain"], evidence.get("anchor")
    if proof is None:
        if rpc is not None:
            detail = "the bundle holds no anchor proof for this chain (not anchored yet?)"
            fail(report, "unanchored", chain, None, detail)
        return
    report["chains"][-1]["anchor_tx"] = proof["tx_hash"]
    try:
        check_anchor_offline(chain, proof, note_bytes(evidence), keys)
    except Failure as exc:
        fail(report, "anchor_mismatch", chain, None, f"anchor proof: {exc}")
        return None
    if rpc is None:
        return
    failed = rpc.anchor_failure(proof)
    report["chains"][-1]["anchor_checked_on_chain"] = failed is None
    if failed is not None:
        fail(report, failed.kind, chain, None, f"anchor transaction: {failed}")


def check_entries(bundle: Any, trees: dict[int, Tree], report: Any) -> dict[str, list[Any]]:
    """4. Each entry's bytes parse and name its position, its decision is in the selection,
    its inclusion path rebuilt from the nodes yields the signed root; 5. every listed id is
    bundled. Returns the event digests the decisions logged, with the entries logging each."""
    selection, declared = bundle["manifest"]["selection"], {c["chain"] for c in bundle["chains"]}
    logged: dict[str, list[Any]] = {}
    positions: set[tuple[int, int]] = set()
    matched: set[str] = set()
    for item in bundle["entries"]:
        chain, seq, data = item["chain"], item["seq"], base64.b64decode(item["entry"])
        if (chain, seq) in positions:
            fail(report, "malformed", chain, seq, "the entry appears twice")
            continue
        positions.add((chain, seq))
        if chain not in declared:
            fail(report, "malformed", chain, seq, "the bundle holds no checkpoint of its chain")
        try:
            entry = decode_entry(data)
            if (entry["chain"], entry["seq"]) != (chain, seq):
                named = f"chain {entry['chain']} seq {entry['seq']}"
                raise Failure("bad_entry", f"the entry's bytes are {named}")
        except Failure as exc:
            fail(report, exc.kind, chain, seq, str(exc))
            continue
        d = entry["decision"]
        logged.setdefault(d["event_sha256"], []).append((chain, seq))
        matched |= {d["decision_id"], d["event_id"]}
        reason = outside(selection, d)
        if reason is not None:
            fail(report, "outside_selection", chain, seq, f"decision {d['decision_id']} {reason}")
        if chain not in trees:
            continue
        size, root, nodes = trees[chain]
        try:
            if seq >= size:
                raise Failure("bad_proof", f"seq {seq} is not in the checkpoint's tree of {size}")
            verify_inclusion(seq, size, leaf_hash(data), rebuilt_path(seq, size, nodes), root)
            report["entries"] += 1
        except Failure as exc:
            fail(report, exc.kind, chain, seq, f"inclusion under the signed checkpoint: {exc}")
    for missing in [i for i in selection.get("ids") or () if i not in matched]:
        fail(
            report, "missing_id", None, None, f"no entry of the bundle has the listed id {missing}"
        )
    return logged


def check_events(events: Any, logged: dict[str, list[Any]], report: Any) -> None:
    """6. Each archived event's SHA-256 is the digest a bundled decision logged."""
    seen: set[str] = set()
    for item in events:
        digest = item["event_sha256"].lower()
        users = logged.get(digest, [])
        chain, seq = users[0] if users else (None, None)
        actual = hashlib.sha256(base64.b64decode(item["event"])).hexdigest()
        if digest in seen:
            fail(report, "malformed", chain, seq, f"event {digest} appears twice")
        elif actual != digest:
            detail = f"the archived event's bytes hash to {actual}, its decision logged"
            detail += f" event_sha256 {digest}"
            fail(report, "bad_event", chain, seq, detail)
        elif not users:
            fail(
                report,
                "bad_event",
                None,
                None,
                f"event {digest} is logged by no entry of the bundle",
            )
        else:
            report["events"] += 1
        seen.add(digest)


def print_report(report: Any) -> None:
    """The text verify-bundle prints: the verdict, each verified chain, each failure."""
    verdict, m = "VERIFIED" if report["ok"] else "FAILED", report["manifest"]
    counted = f"{report['entries']} entries in {len(report['chains'])} chain(s)"
    counted += f", {report['events']} archived event(s)"
    print(f"{verdict}: {counted}; exported by {m['exported_by']} at {m['exported_at']}")
    for c in (c for c in report["chains"] if c["ok"]):
        looked_up = "checked on chain" if c["anchor_checked_on_chain"] else "not looked up"
        anchor = f"anchored in {c['anchor_tx']} ({looked_up})"
        anchor = anchor if c["anchor_tx"] else "not anchored when exported"
        signers = ", ".join(c["signed_by"])
        tree = f"{c['origin']} tree size {c['tree_size']}"
        print(f"  chain {c['chain']}: {tree}, signed by {signers}; {anchor}")
    for f in report["failures"]:
        where = "" if f["chain"] is None else f" chain {f['chain']}"
        where += "" if f["seq"] is None else f" seq {f['seq']}"
        print(f"  {f['kind']}{where}: {f['detail']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", help="a case bundle written by `attestream forensic bundle`")
    parser.add_argument("--key", action="append", required=True, help="trusted verifier key")
    env = os.environ.get  # the same environment variables as verify-bundle
    parser.add_argument("--rpc-url", default=env("ATTESTREAM_VERIFY_RPC_URL"))
    parser.add_argument("--chain-id", type=int, default=env("ATTESTREAM_VERIFY_CHAIN_ID"))
    parser.add_argument(
        "--confirmations", type=int, default=env("ATTESTREAM_VERIFY_CONFIRMATIONS", "1")
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = run(args)
    except (Failure, UsageError, RpcUnreachable) as exc:
        kind, code = {Failure: ("malformed", 1), UsageError: ("usage", 2)}.get(
            type(exc), ("service_unavailable", 3)
        )
        print(f"error: {exc}", file=sys.stderr)
        if args.json:
            error = {"kind": kind, "message": str(exc), "exit_code": code}
            print(json.dumps({"ok": False, "error": error}, indent=2))
        return code
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0 if report["ok"] else 1


def run(args: argparse.Namespace) -> Any:
    if args.confirmations < 0:
        raise UsageError("--confirmations must be 0 or more")
    keys = [parse_key(k) for k in args.key]
    try:
        with open(args.bundle, "rb") as file:
            content = file.read()
    except OSError as exc:
        raise UsageError(f"cannot read {args.bundle}: {exc.strerror or exc}") from None
    try:
        bundle = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Failure("malformed", f"case bundle is not UTF-8 JSON: {exc}") from None
    rpc = None
    if args.rpc_url:
        check_shape(bundle, BUNDLE)
        anchors = [c["anchor"] for c in bundle["chains"] if c.get("anchor") is not None]
        network = anchors[0]["network_chain_id"] if anchors else 0
        network = args.chain_id if args.chain_id is not None else network
        rpc = Rpc(args.rpc_url, network, args.confirmations)
    return verify(bundle, keys, rpc)


if __name__ == "__main__":
    sys.exit(main())
