"""Key ids, key strings and key files.

Reproduce a key id from a shell (name "PeterNeumann", public key given in hex):
`(printf 'PeterNeumann\n\001'; echo -n "$PUBKEY_HEX" | xxd -r -p) | sha256sum | cut -c1-8`.
"""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest

from attestcore.errors import ConfigError, SignatureError
from ledger.keys import (
    generate_signer,
    key_id,
    load_signer,
    parse_signer_key,
    parse_verifier_key,
    save_signer,
    signer_key_string,
    verifier_key_string,
)

# The example key of golang.org/x/mod/sumdb/note (package documentation, BSD licence): the
# key strings that the signed-note ecosystem shares.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"


def test_key_id_is_the_spec_definition() -> None:
    # c2sp.org/signed-note: SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]
    verifier = parse_verifier_key(GO_VERIFIER_KEY)
    public_key = base64.b64decode(GO_VERIFIER_KEY.split("+", 2)[2])[1:]
    assert verifier.public_key == public_key
    # (printf 'PeterNeumann\n\001'; echo -n 1a5cd9...44d6 | xxd -r -p) | sha256sum -> c74f20a3...
    digest = hashlib.sha256(b"PeterNeumann\n\x01" + public_key).digest()
    assert digest[:4].hex() == "c74f20a3"
    assert key_id("PeterNeumann", public_key) == verifier.key_id == 0xC74F20A3


def test_the_go_example_key_round_trips() -> None:
    signer = parse_signer_key(GO_SIGNER_KEY)
    assert signer_key_string(signer) == GO_SIGNER_KEY
    assert verifier_key_string(signer) == GO_VERIFIER_KEY
    assert signer.verifier() == parse_verifier_key(GO_VERIFIER_KEY)


def test_generated_keys_sign_and_verify() -> None:
    signer = generate_signer("attestream.example/log")
    verifier = parse_verifier_key(verifier_key_string(signer))
    verifier.verify(b"text\n", signer.sign(b"text\n"))
    with pytest.raises(SignatureError, match=r"attestream.example/log\+[0-9a-f]{8} does not"):
        verifier.verify(b"other\n", signer.sign(b"text\n"))
    assert "private_key" not in repr(signer)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PeterNeumann+c74f20a3", "want <name>"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex digits"),
        ("PeterNeumann+0xc74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex digits"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "invalid key name"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "invalid key name"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T!", "not base64"),
        ("PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=", "only Ed25519"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumanm+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
    ],
)
def test_bad_verifier_keys_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_verifier_key(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GO_VERIFIER_KEY, "starts with 'PRIVATE\\+KEY\\+'"),
        (GO_SIGNER_KEY.replace("c74f20a3", "c74f20a4"), "does not match"),
        (GO_SIGNER_KEY[:-1], "not base64"),
        (GO_SIGNER_KEY[:-4], "only Ed25519"),
        (GO_SIGNER_KEY.replace("+AYEK", "+AIEK"), "only Ed25519"),
    ],
)
def test_bad_signer_keys_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_signer_key(text)


def test_key_file_is_private_and_reloads(tmp_path: Path) -> None:
    signer = generate_signer("attestream.example/log")
    path = tmp_path / "keys" / "checkpoint.key"
    save_signer(signer, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == signer_key_string(signer) + "\n"
    assert load_signer(path).verifier() == signer.verifier()
    assert load_signer(str(path)).verifier() == signer.verifier()
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.key"]  # no temporary left
    with pytest.raises(ConfigError, match="already exists"):
        save_signer(generate_signer("attestream.example/log"), path)
    assert load_signer(path).verifier() == signer.verifier()


def test_load_signer_takes_the_key_string_itself() -> None:
    # As passed in an environment variable, with the newline a shell may leave.
    assert verifier_key_string(load_signer(GO_SIGNER_KEY + "\n")) == GO_VERIFIER_KEY


def test_unreadable_key_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_signer(tmp_path / "missing.key")
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_signer(garbage)
    garbage.write_text("PRIVATE+KEY+x+00000000+AAAA\n")
    with pytest.raises(ConfigError, match=f"signing key file {garbage}: "):
        load_signer(garbage)


def test_invalid_names_are_refused() -> None:
    for name in ("", "a b", "a+b", "tab\there", "nbsp\u00a0name"):
        with pytest.raises(ConfigError, match="invalid key name"):
            generate_signer(name)
