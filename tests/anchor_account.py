"""A new anchor account per test: `forensic verify` demands a row in the test's database for
every anchor transaction of the account, so databases must not share one."""

from __future__ import annotations

from pathlib import Path

from eth_account import Account
from web3 import Web3
from web3.types import RPCEndpoint

# Ten ETH pays for hundreds of thousands of anchors on anvil.
ANCHOR_FUNDS_WEI = 10 * 10**18


def funded_anchor_key(rpc_url: str, path: Path) -> str:
    """Write a new anchor key to `path`, fund its account on anvil; return its address."""
    account = Account.create()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(account.key.hex(), encoding="utf-8")
    path.chmod(0o600)
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    answer = w3.provider.make_request(
        RPCEndpoint("anvil_setBalance"), [account.address, hex(ANCHOR_FUNDS_WEI)]
    )
    assert "error" not in answer, answer
    return str(account.address)
