"""docs/ledger-format.md says what the code does: its worked example is recomputed here from
the values in the text, and its shell commands are run and their output compared."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
from factories import make_decision

from anchoring.calldata import anchor_root, encode_calldata
from ledger.chain import ChainWriter, Incoming
from ledger.entry import GENESIS_PREV, Entry, EntrySource, encode_entry
from ledger.keys import parse_verifier_key, signer_from_seed, signer_key_string, verifier_key_string
from ledger.merkle import (
    MemoryNodeStore,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
)
from ledger.note import Checkpoint, open_checkpoint, sign_checkpoint

DOC = (Path(__file__).parents[3] / "docs" / "ledger-format.md").read_text(encoding="utf-8")


def _section(heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", DOC, re.M | re.S)
    assert match, f"docs/ledger-format.md has no section '## {heading}'"
    return match.group(1)


EXAMPLE = _section("Worked example")
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```$", EXAMPLE, re.M | re.S)
VALUES = dict(
    line.split(" = ", 1) for _, block in BLOCKS for line in block.splitlines() if " = " in line
)


def _hash(label: str) -> bytes:
    return bytes.fromhex(VALUES[label])


@pytest.mark.parametrize(
    "heading",
    [
        "Hashing",
        "Tree and node addressing",
        "Inclusion and consistency proofs",
        "Checkpoints (signed notes)",
        "Keys and key ids",
    ],
)
def test_sections_exist(heading: str) -> None:
    assert _section(heading).strip()


def _doc_values(heading: str) -> dict[str, str]:
    blocks = re.findall(r"^```(\w+)\n(.*?)^```$", _section(heading), re.M | re.S)
    return dict(
        line.split(" = ", 1) for _, block in blocks for line in block.splitlines() if " = " in line
    )


def test_entry_example_is_what_the_sequencer_writes() -> None:
    values = _doc_values("Entries")
    entry = Entry(
        v=1,
        chain=0,
        seq=0,
        prev=GENESIS_PREV,
        source=EntrySource(
            cluster="attestream-0123456789abcdef",
            topic="attestream.decisions",
            partition=0,
            offset=0,
        ),
        decision=make_decision(0),
    )
    data = encode_entry(entry)
    assert values["entry"].encode() == data
    assert len(data) == 813
    assert leaf_hash(data).hex() == values["entry_leaf_hash"]
    written = ChainWriter(chain=0, tree=MerkleTree(), prev=None).append(
        [Incoming(make_decision(0), entry.source)]
    )
    assert written.entries["entry"] == [data]
    assert written.entries["leaf_hash"] == [values["entry_leaf_hash"]]


def test_anchor_example_recomputes_from_the_worked_checkpoint() -> None:
    notes = [b for _, b in BLOCKS if "\u2014 " in b and b.startswith("attestream.example/demo")]
    assert len(notes) == 1
    values = _doc_values("Anchor calldata")
    root = anchor_root([notes[0].encode()])
    assert root.hex() == values["anchor_root"]
    assert encode_calldata(root).hex() == values["calldata"]


def test_worked_example_tree() -> None:
    entries = [bytes.fromhex(VALUES[f"entry {i}"]) for i in range(3)]
    assert entries == [b"alpha", b"beta", b"gamma"]
    for i, entry in enumerate(entries):
        assert leaf_hash(entry) == _hash(f"node (0,{i})")
    assert node_hash(_hash("node (0,0)"), _hash("node (0,1)")) == _hash("node (1,0)")
    assert node_hash(_hash("node (1,0)"), _hash("node (0,2)")) == _hash("root of size 3")

    tree, store = MerkleTree(), MemoryNodeStore()
    for entry in entries:
        store.add(tree.append(entry))
    assert tree.root() == _hash("root of size 3")
    assert [n.id for n in tree.compact_range()] == [(1, 0), (0, 2)]
    assert inclusion_proof(0, 3, store) == [_hash("node (0,1)"), _hash("node (0,2)")]
    assert inclusion_proof(2, 3, store) == [_hash("node (1,0)")]
    assert consistency_proof(2, 3, store) == [_hash("node (0,2)")]
    assert consistency_proof(1, 3, store) == [_hash("node (0,1)"), _hash("node (0,2)")]


def test_worked_example_checkpoint_and_keys() -> None:
    seed = hashlib.sha256(b"attestream ledger-format example key").digest()
    signer = signer_from_seed("attestream.example/demo", seed)
    assert signer_key_string(signer) == VALUES["signing key"]
    assert verifier_key_string(signer) == VALUES["verifier key"]
    assert f"`{signer.public_key.hex()}`" in EXAMPLE
    assert f"key id `{signer.key_id:08x}`" in EXAMPLE

    text_blocks = [block for kind, block in BLOCKS if kind == "text"]
    body = next(b for b in text_blocks if b.startswith("attestream.example/demo\n3\n"))
    note = next(b for b in text_blocks if "\n\n\u2014 " in b)
    checkpoint = Checkpoint.parse(body.encode())
    assert (checkpoint.size, checkpoint.root) == (3, _hash("root of size 3"))
    assert note.startswith(body)
    assert sign_checkpoint(checkpoint, signer) == note.encode()
    trusted = [parse_verifier_key(VALUES["verifier key"])]
    assert open_checkpoint(note.encode(), trusted, "attestream.example/demo") == checkpoint


SHELL = [block for kind, block in BLOCKS if kind == "sh"]
SHELL_TIMEOUT = 10  # seconds; each command hashes a few bytes, so only a hang comes near it
COMMANDS = re.findall(r"^([^#\n].*)\n# (.*)$", SHELL[0], re.M) if SHELL else []


def test_shell_block_is_there() -> None:
    assert len(COMMANDS) == 7


@pytest.mark.parametrize(("command", "expected"), COMMANDS)
def test_shell_commands_print_what_the_doc_says(command: str, expected: str) -> None:
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, check=True, timeout=SHELL_TIMEOUT
    )
    assert result.stdout.strip() == expected.strip()
