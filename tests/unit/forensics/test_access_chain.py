"""The access chain (ledger/access_entry.py) under `forensic verify`: access records written by
the real ChainWriter verify, and every edit of them is named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from memory_ledger import COL, MemoryLedger, build, checkpoint, kinds, rehash, rows_of

from attestcore.errors import MalformedError
from ledger.access_entry import (
    ACCESS_CHAIN,
    AccessRecord,
    decode_access_entry,
    encode_access_entry,
)
from ledger.chain import ChainWriter
from ledger.entry import GENESIS_PREV
from ledger.merkle import MerkleTree


def record(i: int, outcome: str = "allowed") -> AccessRecord:
    return AccessRecord(
        request_id=f"{i:032x}",
        at=datetime(2026, 1, 2, 3, 4, i, tzinfo=UTC),
        principal="ines",
        role="investigator",
        operation="search",
        filters={"query": "entity=C3 ' OR 1=1 --"},
        status=200,
        results=i,
        outcome=outcome,
    )


def with_access_chain(sizes: tuple[int, ...] = (1, 2, 3)) -> MemoryLedger:
    """A decision chain 0 and an access chain, one signed checkpoint per record, as
    `ledger.access_log` writes it."""
    ledger = build()
    writer = ChainWriter(chain=ACCESS_CHAIN, tree=MerkleTree(), prev=None)
    done = 0
    for size in sizes:
        result = writer.append_access([record(i) for i in range(done, size)])
        done = size
        ledger.rows.setdefault(ACCESS_CHAIN, []).extend(rows_of(result.entries))
        nodes = ledger.node_rows.setdefault(ACCESS_CHAIN, [])
        nodes.extend(zip(result.node_keys, result.node_hashes, strict=True))
        ledger.cps.setdefault(ACCESS_CHAIN, []).append(checkpoint(ACCESS_CHAIN, size, result.root))
    return ledger


def test_access_entry_bytes_are_canonical_and_round_trip() -> None:
    data = encode_access_entry(ACCESS_CHAIN, 0, GENESIS_PREV, record(1))
    assert data.startswith(b'{"access":{"request_id":"00000000000000000000000000000001",')
    assert data.endswith(
        b',"chain":4294967295,"kind":"access","prev":"' + b"0" * 64 + b'","seq":0,"v":1}'
    )
    assert decode_access_entry(data).access == record(1)
    with pytest.raises(MalformedError, match="canonical"):
        decode_access_entry(data.replace(b'"chain":', b' "chain":'))
    with pytest.raises(MalformedError, match="kind 'decision'"):
        decode_access_entry(data.replace(b'"kind":"access"', b'"kind":"decision"'))


def test_an_access_chain_verifies_with_the_decision_chains() -> None:
    ledger = with_access_chain()
    assert kinds(ledger) == set()
    assert len(ledger.rows[ACCESS_CHAIN]) == 3


def test_an_edited_access_record_is_named() -> None:
    ledger = with_access_chain()
    row = ledger.row(1, chain=ACCESS_CHAIN)
    row[COL["entry"]] = row[COL["entry"]].replace(b'"results":1', b'"results":7')
    assert ("bad_leaf", ACCESS_CHAIN, 1) in kinds(ledger)
    rehash(row)  # a careful forger: the leaf now matches, the tree and checkpoint do not
    found = kinds(ledger)
    assert ("root_mismatch", ACCESS_CHAIN, 1) in found


def test_an_edited_searchable_column_of_an_access_entry_is_named() -> None:
    ledger = with_access_chain()
    ledger.row(2, chain=ACCESS_CHAIN)[COL["entity_id"]] = b"someone-else"
    assert kinds(ledger) == {("column_mismatch", ACCESS_CHAIN, 2)}


def test_a_decision_entry_in_the_access_chain_and_an_access_entry_elsewhere_are_bad() -> None:
    ledger = with_access_chain()
    decision_bytes = ledger.row(0, chain=0)[COL["entry"]]
    access_bytes = ledger.row(0, chain=ACCESS_CHAIN)[COL["entry"]]
    ledger.row(0, chain=ACCESS_CHAIN)[COL["entry"]] = decision_bytes
    ledger.row(0, chain=0)[COL["entry"]] = access_bytes
    found = kinds(ledger)
    assert ("bad_entry", ACCESS_CHAIN, 0) in found
    assert ("bad_entry", 0, 0) in found


def test_one_unsigned_access_record_is_a_crash_window_more_are_not() -> None:
    ledger = with_access_chain((1, 2, 3))
    ledger.cps[ACCESS_CHAIN] = ledger.cps[ACCESS_CHAIN][:2]
    assert kinds(ledger) == {("unsigned_tail", ACCESS_CHAIN, 2)}
    ledger.cps[ACCESS_CHAIN] = ledger.cps[ACCESS_CHAIN][:1]
    assert kinds(ledger) == {("unexplained_tail", ACCESS_CHAIN, 1)}
