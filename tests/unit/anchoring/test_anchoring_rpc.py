"""The one EVM JSON-RPC client: every read the verifiers make is retried like the anchor
service's calls, then ends in ServiceUnavailableError (exit 3). The endpoint is a closed
loopback port: no service is started."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import pytest

from anchoring.rpc import RPC_ATTEMPTS, ChainClient
from attestcore.errors import ServiceUnavailableError

TX = "0x" + "ab" * 32
ACCOUNT = "0x" + "00" * 19 + "01"
READS: dict[str, Callable[[ChainClient], object]] = {
    "transaction": lambda c: c.transaction(TX),
    "head_block_number": lambda c: c.head_block_number(),
    "transaction_count": lambda c: c.transaction_count(ACCOUNT, 5),
    "block_transactions": lambda c: c.block_transactions(5),
    "network_chain_id": lambda c: c.network_chain_id(),
}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("read", READS, ids=list(READS))
def test_a_read_is_retried_then_the_node_is_unavailable(
    read: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="attestream.anchor")
    client = ChainClient(f"http://127.0.0.1:{closed_port()}/v3/secret-key", 31337)
    with pytest.raises(ServiceUnavailableError, match="could not be reached") as raised:
        READS[read](client)
    retries = [r for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert len(retries) == RPC_ATTEMPTS - 1
    assert "secret-key" not in raised.value.diagnostics()
