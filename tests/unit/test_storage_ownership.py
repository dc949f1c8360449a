"""Where the ledger's SQL lives, checked against the code (ledger/schema.py lists the tables).

SQL is written only in the storage modules; every other module calls their typed methods.
Each table is created and altered only by the schema module of the package that owns it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "attestcore",
    "ledger",
    "detectors",
    "streams",
    "anchoring",
    "forensics",
    "attestream",
    "bench",
)

STORAGE_MODULES = frozenset(
    {
        "ledger/clickhouse.py",
        "ledger/schema.py",
        "ledger/store.py",
        "ledger/archive_store.py",
        "anchoring/schema.py",
        "anchoring/store.py",
        "bench/raw_table.py",
    }
)
"""The modules that may hold SQL: the connection, each owner's schema and store, and the
benchmark's own scratch table."""

TABLE_OWNERS = {
    "entries": "ledger/schema.py",
    "nodes": "ledger/schema.py",
    "checkpoints": "ledger/schema.py",
    "event_archive": "ledger/schema.py",
    "entity_index": "ledger/schema.py",
    "entry_context": "ledger/schema.py",
    "anchors": "anchoring/schema.py",
}

SQL = re.compile(
    r"\{db\}|\bSELECT\b.+\bFROM\b|\bINSERT INTO\b|\bALTER TABLE\b|\bCREATE (TABLE|DATABASE)\b"
    r"|\bDROP (TABLE|DATABASE)\b|\bTRUNCATE\b",
    re.DOTALL,
)


def string_constants() -> dict[str, list[str]]:
    """Every string constant (f-string parts included) of every product module, by path."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            texts = [
                node.value
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
            ]
            found[str(path.relative_to(ROOT))] = texts
    return found


def test_only_the_storage_modules_hold_sql() -> None:
    outside = {
        path: [text.strip()[:60] for text in texts if SQL.search(text)]
        for path, texts in string_constants().items()
        if path not in STORAGE_MODULES
    }
    assert {path: texts for path, texts in outside.items() if texts} == {}


def test_each_table_is_created_and_altered_by_its_owner_alone() -> None:
    modules = string_constants()
    for table, owner in TABLE_OWNERS.items():
        ddl = re.compile(rf"\b(CREATE TABLE( IF NOT EXISTS)?|ALTER TABLE) \{{db\}}\.{table}\b")
        writers = sorted(
            path for path, texts in modules.items() if any(ddl.search(text) for text in texts)
        )
        assert writers == [owner], table
