"""The error contract of every command (README, "Exit codes and errors"): exit codes 0-4, one
message and no traceback for expected errors, the JSON error object under --json, and for a
bug one line naming a crash log that holds the traceback. No service is needed."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from factories import proof_bundle

from anchoring.service import load_account
from attestcore.errors import ConfigError, ExitCode
from attestream.cli import run
from attestream.commands import forensic
from attestream.settings import Settings
from ledger.keys import NoteSigner, signer_from_seed, verifier_key_string

Captured = tuple[int, str, str]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home outside any project folder, and no other ATTESTREAM_* setting."""
    for name in [n for n in os.environ if n.startswith("ATTESTREAM_")]:
        monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("ATTESTREAM_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


def attestream(capsys: pytest.CaptureFixture[str], *argv: str) -> Captured:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def json_error(stdout: str) -> dict[str, Any]:
    data = json.loads(stdout)
    assert data["ok"] is False and set(data["error"]) == {"kind", "message", "exit_code"}
    error: dict[str, Any] = data["error"]
    return error


def test_an_unexpected_exception_is_a_bug_with_a_crash_log(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise ZeroDivisionError("division by zero in the test")

    monkeypatch.setattr(forensic, "load_settings", broken)
    code, out, err = attestream(capsys, "forensic", "verify", "--offline", "--json")
    assert code == ExitCode.INTERNAL and ExitCode.INTERNAL.value == 4
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "a bug in attestream" in err and "ZeroDivisionError: division by zero in the test" in err
    log = Path(err.rsplit("traceback in ", 1)[1].strip())
    assert log.parent == (home / "logs").resolve()
    assert "Traceback" in log.read_text() and "def broken" not in err
    error = json_error(out)
    assert (error["kind"], error["exit_code"]) == ("internal", 4) and str(log) in error["message"]


def test_the_crash_log_goes_to_the_temp_dir_when_the_home_is_unusable(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("a file where the home directory should be")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setattr(forensic, "load_settings", lambda: 1 / 0)
    code, _, err = attestream(capsys, "forensic", "verify", "--offline")
    assert code == 4
    log = Path(err.rsplit("traceback in ", 1)[1].strip())
    assert log.is_relative_to((tmp_path / "tmp").resolve()) and log.exists()


def test_a_bad_flag_is_a_usage_error_with_a_json_object(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = attestream(capsys, "forensic", "verify", "--no-such-flag", "--json")
    assert code == 2 and "No such option: --no-such-flag" in err
    assert json_error(out) == {
        "kind": "usage",
        "message": "No such option: --no-such-flag",
        "exit_code": 2,
    }


def test_invalid_settings_are_a_config_error_naming_the_setting(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTESTREAM_TOPIC_PARTITIONS", "0")
    code, _, err = attestream(capsys, "ledger", "keys")
    assert code == 2 and "invalid settings: ATTESTREAM_TOPIC_PARTITIONS" in err
    assert "Traceback" not in err


# --- keys an auditor can trust -----------------------------------------------------------------
def test_ledger_keys_only_reads(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = attestream(capsys, "ledger", "keys", "--json")
    assert code == 2 and "no ledger signing key" in err and "ledger keys --create" in err
    assert json_error(out)["kind"] == "config"
    assert not home.exists(), "reading the key must not create one (nor the home)"


def test_ledger_keys_create_makes_the_key_once(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = attestream(capsys, "ledger", "keys", "--create", "--json")
    assert code == 0, err
    created = json.loads(out)
    assert Path(created["key_file"]) == home / "keys" / "ledger.key"
    assert f"created the ledger signing key {home / 'keys' / 'ledger.key'}" in err
    key_bytes = (home / "keys" / "ledger.key").read_bytes()

    code, out, err = attestream(capsys, "ledger", "keys", "--create")
    assert code == 2 and "already exists; it is never overwritten" in err
    assert (home / "keys" / "ledger.key").read_bytes() == key_bytes

    code, out, _ = attestream(capsys, "ledger", "keys", "--json")
    assert code == 0 and json.loads(out)["verifier_key"] == created["verifier_key"]


def test_ledger_run_never_creates_a_key(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = attestream(capsys, "ledger", "run", "--max-idle", "1")
    assert code == 2 and "no ledger signing key" in err and "ledger keys --create" in err
    assert not (home / "keys").exists()


# --- proof and key files -------------------------------------------------------------------
SIGNER = signer_from_seed("attestream.test/ledger", b"\x05" * 32)
STRANGER = signer_from_seed("attestream.test/ledger", b"\x06" * 32)


def proof_file(tmp_path: Path, content: bytes | None = None, signer: NoteSigner = SIGNER) -> str:
    path = tmp_path / "proof.json"
    if content is None:
        content = json.dumps(proof_bundle(3, 8, signer).to_json()).encode()
    path.write_bytes(content)
    return str(path)


def test_verify_proof_json_prints_the_verdict_or_an_error_object(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = verifier_key_string(SIGNER)
    code, out, err = attestream(
        capsys, "forensic", "verify-proof", proof_file(tmp_path), "--key", key, "--json"
    )
    assert code == 0 and json.loads(out)["ok"] is True, err

    untrusted = proof_file(tmp_path, signer=STRANGER)
    code, out, err = attestream(
        capsys, "forensic", "verify-proof", untrusted, "--key", key, "--json"
    )
    assert code == 1 and "Traceback" not in err
    error = json_error(out)
    assert (error["kind"], error["exit_code"]) == ("bad_signature", 1)
    # It names the key that signed (from the signature line) and the keys it trusts.
    assert f"signed by attestream.test/ledger+{STRANGER.key_id:08x}" in error["message"]
    assert f"trusted keys: attestream.test/ledger+{SIGNER.key_id:08x}" in error["message"]


@pytest.mark.parametrize(
    ("content", "kind", "code", "message"),
    [
        (b"\xff\xfe\x00garbage", "malformed", 1, "proof file is not UTF-8 text"),
        (b"{not json", "malformed", 1, "proof file is not JSON"),
        (b'{"format": "attestream-proof/1"}', "malformed", 1, "lacks the field 'chain'"),
        (None, "usage", 2, "cannot read"),
    ],
)
def test_a_broken_proof_file_is_a_clear_error(
    content: bytes | None,
    kind: str,
    code: int,
    message: str,
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = proof_file(tmp_path, content) if content is not None else str(tmp_path / "missing")
    got, out, err = attestream(
        capsys, "forensic", "verify-proof", path, "--key", verifier_key_string(SIGNER), "--json"
    )
    assert got == code and message in err and "Traceback" not in err
    assert json_error(out)["kind"] == kind


@pytest.mark.parametrize(
    ("content", "kind", "code", "message"),
    [
        (b"{not json", "malformed", 1, "case bundle is not JSON"),
        (b'{"format": "attestream-bundle/1"}', "malformed", 1, "lacks the field 'manifest'"),
        (b'{"format": "attestream-proof/1"}', "malformed", 1, "not an attestream-bundle/1"),
        (None, "usage", 2, "cannot read"),
    ],
)
def test_a_broken_case_bundle_is_a_clear_error(
    content: bytes | None,
    kind: str,
    code: int,
    message: str,
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "case.bundle"
    if content is not None:
        path.write_bytes(content)
    got, out, err = attestream(
        capsys,
        "forensic",
        "verify-bundle",
        str(path),
        "--key",
        verifier_key_string(SIGNER),
        "--json",
    )
    assert got == code and message in err and "Traceback" not in err
    assert json_error(out)["kind"] == kind


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--query", "colour=red"], "unknown key 'colour'"),
        (["--query", "entity=C1", "--ids", "ids.txt"], "exactly one of --query"),
        ([], "exactly one of --query"),
        (["--ids", "missing.txt"], "cannot read the id list"),
    ],
)
def test_a_bundle_asked_for_wrongly_is_a_usage_error_before_any_service(
    argv: list[str], message: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = attestream(capsys, "forensic", "bundle", *argv, "-o", "case.bundle")
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not-a-key", "malformed verifier key"),
        ("attestream.test/ledger+00000000+AAAA", "not base64|only Ed25519"),
    ],
)
def test_a_bad_verifier_key_is_a_config_error(
    key: str, message: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = attestream(
        capsys, "forensic", "verify-proof", proof_file(tmp_path), "--key", key, "--json"
    )
    assert code == 2 and json_error(out)["kind"] == "config"
    assert re.search(message, err) and "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00", "cannot be read"),
        (b"PRIVATE+KEY+attestream.local/ledger+00000000+!!!!\n", "not base64"),
        (b"attestream.local/ledger+00000000+AAAA\n", "starts with 'PRIVATE\\+KEY\\+'"),
    ],
)
def test_a_broken_ledger_key_file_is_a_config_error(
    content: bytes, message: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "ledger.key").write_bytes(content)
    code, out, err = attestream(capsys, "ledger", "keys", "--json")
    assert code == 2 and re.search(message, err) and "Traceback" not in err
    assert json_error(out)["kind"] == "config"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00", "cannot read anchor key file"),
        (b"0xnothex\n", "not a valid secp256k1 key"),
        (b"", "not a valid secp256k1 key"),
    ],
)
def test_a_broken_anchor_key_file_is_a_config_error(
    content: bytes, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "anchor.key"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_account(Settings(anchor_key_file=path).anchor_private_key())


def test_a_crash_report_and_its_log_hold_no_secret(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTESTREAM_ANCHOR_KEY", "0x" + "a1b2c3d4" * 8)
    monkeypatch.setenv("ATTESTREAM_RPC_URL", "https://rpc.example/v3/tok-c0ffee-4242")

    def leaky() -> None:
        raise RuntimeError(
            "could not use clickhouse://auditor:pa55-w0rd@db:9000/x, key a1b2c3d4a1b2c3d4"
            "a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4 via"
            " https://rpc.example/v3/tok-c0ffee-4242 signer PRIVATE+KEY+log+01020304+AZcd"
        )

    monkeypatch.setattr(forensic, "load_settings", leaky)
    code, out, err = attestream(capsys, "forensic", "verify", "--offline", "--json")
    assert code == 4
    log = Path(err.rsplit("traceback in ", 1)[1].strip()).read_text()
    for text in (out, err, log):
        assert "clickhouse://auditor:***@db:9000/x" in text
        for secret in ("pa55-w0rd", "a1b2c3d4" * 8, "tok-c0ffee-4242", "AZcd"):
            assert secret not in text


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md"])
def test_the_documented_exit_codes_are_the_codes(doc: str) -> None:
    text = (Path(__file__).parents[3] / doc).read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (\d) \| ([^|]+?) \|", text, re.MULTILINE))
    assert {int(code) for code in rows} == {int(code) for code in ExitCode}
    assert rows["1"].startswith("verification failed") and rows["4"].startswith("internal error")
    assert '{"ok": false, "error": {"kind": ' in text
