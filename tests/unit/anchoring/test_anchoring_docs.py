"""docs/operations.md ("Anchoring on an EVM chain") and docs/ledger-format.md ("Anchor proofs")
say what the code does: their commands parse, their metrics exist, their tables match."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from anchoring import metrics
from anchoring.calldata import encode_calldata
from anchoring.fees import GWEI, intrinsic_gas
from anchoring.proofs import PROOF_FORMAT, AnchorProof
from anchoring.service import load_account
from attestream.cli import app

DOCS = Path(__file__).parents[3] / "docs"


def section(doc: str, heading: str) -> str:
    text = (DOCS / doc).read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/{doc} has no section '## {heading}'"
    return match.group(1)


OPERATIONS = section("operations.md", "Anchoring on an EVM chain")
COMMANDS = [
    line
    for block in re.findall(r"^```\n(.*?)^```$", OPERATIONS, re.M | re.S)
    for line in block.splitlines()
]


def test_the_attestream_commands_shown_parse() -> None:
    shown = [
        shlex.split(line.split("attestream ", 1)[1])
        for line in COMMANDS
        if "attestream " in line and "python" not in line
    ]
    assert ["anchor", "status", "--json"] in shown
    for args in shown:
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)


def test_the_key_creation_command_makes_a_key() -> None:
    (line,) = [line for line in COMMANDS if "python -c" in line]
    code = shlex.split(line.split(">")[0])[2]
    key = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert len(key) == 64 and load_account(key).address.startswith("0x")


def test_every_metric_is_documented() -> None:
    names = {m._name for m in vars(metrics).values() if hasattr(m, "_name")}  # noqa: SLF001
    documented = set(re.findall(r"`(attestream_anchor_\w+?)(?:\{|`)", OPERATIONS))
    counters = {
        m._name
        for m in vars(metrics).values()  # noqa: SLF001
        if type(m).__name__ == "Counter"
    }
    names = {f"{n}_total" if n in counters else n for n in names}
    assert names == documented


def test_the_cost_table_follows_from_the_measured_gas() -> None:
    gas = intrinsic_gas(encode_calldata(b"\x11" * 32))
    prose = " ".join(OPERATIONS.split())
    assert f"{gas:,} gas" in prose
    per_day = 2880 * gas
    assert f"{per_day / 1e6:.1f} million gas per day" in prose
    for price_gwei, per_anchor, daily in [
        (0.1, "0.00000225", "0.0065"),
        (1, "0.0000225", "0.065"),
        (10, "0.000225", "0.65"),
    ]:
        assert f"| {per_anchor} ETH | {daily} ETH |" in OPERATIONS
        assert abs(float(daily) - per_day * price_gwei * GWEI / 1e18) < 0.01 * float(daily)
        assert abs(float(per_anchor) - gas * price_gwei * GWEI / 1e18) < 0.01 * float(per_anchor)


def test_the_anchor_proof_members_are_documented() -> None:
    text = section("ledger-format.md", "Anchor proofs")
    rows = re.findall(r"^\| (`.*?) \|", text, re.M)
    documented = {name for row in rows for name in re.findall(r"`(\w+)`", row)}
    assert f"`{PROOF_FORMAT}`" in text
    members = set(AnchorProof.__dataclass_fields__) | {"format"}
    assert documented == members
