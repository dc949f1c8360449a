"""Bearer tokens of the forensic API: shown once, kept only as a SHA-256, revocable."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from attestcore.errors import UsageError
from attestream.access_tokens import AccessTokens, Role
from attestream.cli import run


def test_a_granted_token_is_kept_only_as_its_digest(tmp_path: Path) -> None:
    path = tmp_path / "access-tokens.json"
    tokens = AccessTokens(path)
    token = tokens.grant("ines", Role.INVESTIGATOR)
    content = path.read_text()
    assert token not in content
    assert hashlib.sha256(token.encode()).hexdigest() in content
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    holder = tokens.holder(token)
    assert holder is not None and (holder.name, holder.role) == ("ines", Role.INVESTIGATOR)
    assert tokens.holder(token + "x") is None
    assert tokens.holder("") is None


def test_tokens_are_distinct_revocable_and_names_unique(tmp_path: Path) -> None:
    tokens = AccessTokens(tmp_path / "access-tokens.json")
    first = tokens.grant("ines", Role.INVESTIGATOR)
    second = tokens.grant("audrey", Role.AUDITOR)
    assert first != second
    with pytest.raises(UsageError, match="holds a token already"):
        tokens.grant("ines", Role.AUDITOR)
    tokens.revoke("ines")
    assert tokens.holder(first) is None
    assert [g.name for g in tokens.grants()] == ["audrey"]
    with pytest.raises(UsageError, match="no token is granted to ines"):
        tokens.revoke("ines")
    with pytest.raises(UsageError, match="a token name"):
        tokens.grant("bad name'; DROP", Role.AUDITOR)


def test_access_commands_print_the_token_once_and_never_list_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ATTESTREAM_HOME", str(tmp_path))
    assert run(["access", "grant", "audrey", "--role", "auditor"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("ast_") and len(token) == 4 + 43  # 32 bytes, base64url
    assert run(["access", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert json.loads(listed)[0]["name"] == "audrey" and token not in listed
    assert run(["access", "grant", "audrey", "--role", "auditor"]) == 2
    assert run(["access", "grant", "x", "--role", "admin"]) == 2
    assert run(["access", "revoke", "audrey"]) == 0
    assert AccessTokens(tmp_path / "access-tokens.json").holder(token) is None
