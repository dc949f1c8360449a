"""Running the service: backoff, a missing key or wrong chain without a crash loop, settings
for Sepolia and any EVM endpoint, and the key never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from anchoring.metrics import REGISTRY
from anchoring.rpc import redact_url
from anchoring.runner import Pacing, backoff_delay, run_round, supervise
from anchoring.service import AnchorService, load_account
from anchoring.store import AnchoredStore
from attestcore.errors import (
    AnchorKeyError,
    ConfigError,
    InsufficientFundsError,
    ServiceUnavailableError,
    WrongChainError,
)
from attestcore.records import StoredAnchor
from attestream.settings import SEPOLIA_CHAIN_ID, Settings
from attestream.wiring import open_service

KEY = "0x" + "4c" * 32  # a throwaway secp256k1 key: never funded anywhere


def errors(kind: str) -> float:
    return REGISTRY.get_sample_value("attestream_anchor_errors_total", {"kind": kind}) or 0.0


def blocked(reason: str) -> float:
    return REGISTRY.get_sample_value("attestream_anchor_blocked_bool", {"reason": reason}) or 0


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    pacing = Pacing(retry_initial_s=1.0, retry_max_s=60.0)
    assert [backoff_delay(n, pacing, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff_delay(3, pacing, rng=lambda: 0.0) == 2.0  # half the ceiling at least
    assert backoff_delay(30, pacing, rng=lambda: 1.0) == 60.0


def test_a_missing_key_is_an_error_and_a_metric_not_a_crash_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("ATTESTREAM_ANCHOR_KEY", "ATTESTREAM_ANCHOR_KEY_FILE", "ATTESTREAM_HOME"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(rpc_url="http://127.0.0.1:9", anchor_key_file=Path("/nonexistent/key"))
    builds = []

    def build() -> AnchorService:
        builds.append(1)
        # The key is read before the store is used: a store on a closed port is never asked.
        return open_service(settings, store=AnchoredStore("clickhouse://127.0.0.1:9/unused"))

    before = errors("missing_key")
    supervise(build, Pacing(retry_initial_s=0.001, retry_max_s=0.001), lambda: len(builds) >= 3)
    assert len(builds) == 3, "it kept trying, without raising"
    assert errors("missing_key") == before + 3
    assert blocked("missing_key") == 1
    with pytest.raises(AnchorKeyError, match="cannot read anchor key file /nonexistent/key"):
        build()


class FailingService(AnchorService):
    """An AnchorService whose round fails at once with `exc` (nothing else is built: run_round
    reads no other attribute of a failed round)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def step(self, send: bool = True) -> StoredAnchor | None:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (WrongChainError("serves chain id 1"), "wrong_chain_id"),
        (InsufficientFundsError("holds 0 ETH"), "insufficient_funds"),
        (ServiceUnavailableError("EVM JSON-RPC", "http://x", "refused"), "rpc"),
        (ServiceUnavailableError("ClickHouse", "x:9000", "refused"), "store"),
        (ConfigError("other"), "config"),
    ],
)
def test_round_failures_are_classified(exc: Exception, kind: str) -> None:
    before = errors(kind)
    assert run_round(FailingService(exc)).error == kind
    assert errors(kind) == before + 1


def test_sepolia_is_the_default_chain_and_confirmations_follow_it() -> None:
    settings = Settings(rpc_url="https://sepolia.example/v3/SECRET", chain_id=None)
    assert settings.require_rpc() == ("https://sepolia.example/v3/SECRET", SEPOLIA_CHAIN_ID)
    assert settings.confirmations(SEPOLIA_CHAIN_ID) == 3
    assert settings.confirmations(31337) == 1
    assert Settings(anchor_confirmations=5).confirmations(SEPOLIA_CHAIN_ID) == 5
    custom = Settings(rpc_url="http://10.0.0.2:8545", chain_id=17000)
    assert custom.require_rpc() == ("http://10.0.0.2:8545", 17000)


def test_the_key_is_never_printed() -> None:
    settings = Settings(anchor_key=KEY)
    assert KEY[2:] not in repr(settings) and KEY[2:] not in str(settings.model_dump())
    assert settings.anchor_private_key() == KEY
    with pytest.raises(ConfigError) as caught:
        load_account(KEY[:-2] + "zz")
    assert KEY[2:-2] not in str(caught.value) and caught.value.__cause__ is None


def test_urls_are_shown_without_their_api_key() -> None:
    assert redact_url("https://sepolia.infura.io/v3/0123abcd") == "https://sepolia.infura.io/..."
    assert redact_url("https://user:pw@rpc.example:8545/?key=1") == "https://rpc.example:8545/..."
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
