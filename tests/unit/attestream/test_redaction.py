"""Secrets stay secret: URL settings are SecretStr, a bad ClickHouse URL is echoed with its
password masked, and `redact` masks what slips into a message anyway."""

from __future__ import annotations

import pytest

from attestcore.errors import ConfigError
from attestcore.redaction import mask_url, redact
from attestream.settings import Settings
from ledger.clickhouse import parse_url

PASSWORD = "pa55-w0rd-1234"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgres://auditor:{PASSWORD}@db:9000/x", "'postgres://auditor:***@db:9000/x'"),
        (f"clickhouse://auditor:{PASSWORD}@db:port/x", "'clickhouse://auditor:***@db:port/x'"),
    ],
)
def test_a_bad_clickhouse_url_is_echoed_without_its_password(url: str, shown: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_url(url)
    assert shown in str(raised.value) and PASSWORD not in str(raised.value)


def test_url_settings_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTESTREAM_CLICKHOUSE_URL", f"clickhouse://u:{PASSWORD}@db:9000/x")
    monkeypatch.setenv("ATTESTREAM_RPC_URL", "https://rpc.example/v3/tok-9f8e7d6c")
    settings = Settings()
    for text in (repr(settings), str(settings.model_dump()), settings.model_dump_json()):
        assert PASSWORD not in text and "tok-9f8e7d6c" not in text
    assert settings.require_clickhouse() == f"clickhouse://u:{PASSWORD}@db:9000/x"
    assert settings.require_rpc()[0] == "https://rpc.example/v3/tok-9f8e7d6c"


def test_redact_masks_passwords_keys_and_configured_secrets() -> None:
    assert mask_url(f"x clickhouses://a:{PASSWORD}@h/db y") == "x clickhouses://a:***@h/db y"
    assert mask_url("http://127.0.0.1:8545/") == "http://127.0.0.1:8545/"
    text = f"PRIVATE+KEY+log+01020304+AZcd== and https://rpc.example/v3/tok-9f8e7d6c {PASSWORD}"
    masked = redact(text, ["tok-9f8e7d6c", PASSWORD])
    assert masked == "PRIVATE+KEY+*** and https://rpc.example/v3/*** ***"
