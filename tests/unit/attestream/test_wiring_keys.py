"""Where the checkpoint key comes from, and which keys verification trusts."""

from __future__ import annotations

from pathlib import Path

import pytest

from attestcore.errors import ConfigError
from attestream.settings import Settings
from attestream.wiring import (
    create_ledger_key,
    ensure_local_ledger_key,
    ledger_signer,
    trusted_verifiers,
)
from ledger.keys import signer_from_seed, signer_key_string, verifier_key_string

ORIGIN = "attestream.test/ledger"


def test_reading_the_key_never_creates_one(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, log_origin=ORIGIN)
    with pytest.raises(
        ConfigError,
        match=r"no ledger signing key: .* `attestream ledger keys"
        r" --create`",
    ) as raised:
        ledger_signer(settings)
    assert raised.value.exit_code == 2
    assert not (tmp_path / "keys").exists()


def test_a_key_is_created_explicitly_once_and_never_overwritten(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, log_origin=ORIGIN)
    created = create_ledger_key(settings)
    assert (tmp_path / "keys" / "ledger.key").stat().st_mode & 0o777 == 0o600
    assert ledger_signer(settings).public_key == created.public_key
    with pytest.raises(ConfigError, match="already exists; it is never overwritten"):
        create_ledger_key(settings)
    assert ledger_signer(settings).public_key == created.public_key


def test_the_local_stack_key_is_made_only_when_there_is_none(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, log_origin=ORIGIN)
    assert ensure_local_ledger_key(settings) == tmp_path / "keys" / "ledger.key"
    first = ledger_signer(settings)
    assert ensure_local_ledger_key(settings) is None
    assert ledger_signer(settings).public_key == first.public_key


def test_key_from_the_environment_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    signer = signer_from_seed(ORIGIN, b"\x09" * 32)
    monkeypatch.setenv("ATTESTREAM_LEDGER_KEY", signer_key_string(signer))
    settings = Settings(home=tmp_path, log_origin=ORIGIN)
    assert ledger_signer(settings).public_key == signer.public_key
    assert not (tmp_path / "keys").exists(), "an env key must not create a key file"
    assert "PRIVATE" not in repr(settings), "the secret is never printed"


def test_key_named_for_another_log_is_refused(tmp_path: Path) -> None:
    other = signer_from_seed("someone.else/log", b"\x01" * 32)
    settings = Settings(home=tmp_path, log_origin=ORIGIN, ledger_key=signer_key_string(other))
    with pytest.raises(ConfigError, match="origin"):
        ledger_signer(settings)


def test_rotation_trusts_old_and_new_keys(tmp_path: Path) -> None:
    old = signer_from_seed(ORIGIN, b"\x01" * 32)
    new = signer_from_seed(ORIGIN, b"\x02" * 32)
    settings = Settings(
        home=tmp_path,
        log_origin=ORIGIN,
        trusted_keys=f"{verifier_key_string(old)}, {verifier_key_string(new)}",
    )
    assert [v.key_id for v in trusted_verifiers(settings)] == [old.key_id, new.key_id]


def test_no_trusted_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ATTESTREAM_TRUSTED_KEYS"):
        trusted_verifiers(Settings(home=tmp_path, log_origin=ORIGIN))
