"""Signed notes and checkpoints: round trips, one broken note per rejection reason, the
spec's rules on unknown keys and rotation, and the golang.org/x/mod/sumdb/note example."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attestcore.errors import (
    AttestreamError,
    ConfigError,
    MalformedError,
    SignatureError,
    VerificationError,
)
from ledger.keys import generate_signer, parse_verifier_key, signer_from_seed
from ledger.merkle import EMPTY_ROOT, RootHash
from ledger.note import (
    MAX_SIGNATURES,
    Checkpoint,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)

ORIGIN = "attestream.example/chain/0"
ROOT = RootHash(bytes.fromhex("385da30f3917282c8939dff851957e519ab1846b1351a14c0adb3b11632742aa"))
LOG_KEY = signer_from_seed(ORIGIN, bytes(range(32)))
NEXT_KEY = signer_from_seed(ORIGIN, bytes(range(1, 33)))  # same name, rotated key
WITNESS = signer_from_seed("witness.example", bytes(range(2, 34)))

# golang.org/x/mod/sumdb/note package documentation (BSD licence): a note signed by the key
# PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz.
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + (
        "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
        "KvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    ).encode()
)


def test_go_example_note_opens() -> None:
    body, signed_by = open_note(GO_NOTE, [parse_verifier_key(GO_VERIFIER_KEY)])
    assert body == GO_TEXT
    assert signed_by == ["PeterNeumann"]


def test_checkpoint_round_trip() -> None:
    checkpoint = Checkpoint(ORIGIN, 3, ROOT)
    assert checkpoint.body() == (
        b"attestream.example/chain/0\n3\nOF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMnQqo=\n"
    )
    note = sign_checkpoint(checkpoint, LOG_KEY)
    assert note.startswith(checkpoint.body() + b"\n\xe2\x80\x94 " + ORIGIN.encode() + b" ")
    assert open_checkpoint(note, [LOG_KEY.verifier()], origin=ORIGIN) == checkpoint
    signature = base64.b64decode(note.split(b" ")[-1])
    assert signature[:4] == LOG_KEY.key_id.to_bytes(4, "big") and len(signature) == 68


def test_checkpoint_with_extensions_and_empty_tree() -> None:
    checkpoint = Checkpoint(ORIGIN, 0, EMPTY_ROOT, ("ext one", "ext two"))
    assert Checkpoint.parse(checkpoint.body()) == checkpoint
    assert checkpoint.body().endswith(b"\next one\next two\n")


def test_wrong_origin_is_rejected() -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), LOG_KEY)
    with pytest.raises(VerificationError, match="for log 'attestream.example/chain/0', expec"):
        open_checkpoint(note, [LOG_KEY.verifier()], origin="attestream.example/chain/1")


def test_tampered_body_is_rejected() -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), LOG_KEY)
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(note.replace(b"\n3\n", b"\n4\n"), [LOG_KEY.verifier()])


def test_tampered_signature_is_rejected() -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), LOG_KEY)
    head, encoded = note[:-1].rsplit(b" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[10] ^= 1
    tampered = head + b" " + base64.b64encode(bytes(raw)) + b"\n"
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(tampered, [LOG_KEY.verifier()])


def test_untrusted_key_is_rejected() -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), generate_signer(ORIGIN))
    with pytest.raises(SignatureError, match="no trusted key signed this note"):
        open_note(note, [LOG_KEY.verifier()])
    with pytest.raises(SignatureError, match=r"trusted keys: none"):
        open_note(note, [])


def test_rotation_accepts_either_trusted_key() -> None:
    trusted = [LOG_KEY.verifier(), NEXT_KEY.verifier()]
    body = Checkpoint(ORIGIN, 3, ROOT).body()
    assert open_note(sign_note(body, LOG_KEY), trusted).signed_by == [ORIGIN]
    assert open_note(sign_note(body, NEXT_KEY), trusted).signed_by == [ORIGIN]
    assert open_note(sign_note(body, LOG_KEY, NEXT_KEY), trusted).signed_by == [ORIGIN]


def test_unknown_signatures_are_ignored() -> None:
    body = Checkpoint(ORIGIN, 3, ROOT).body()
    note = sign_note(body, WITNESS, generate_signer(ORIGIN), LOG_KEY)
    assert open_note(note, [LOG_KEY.verifier()]) == (body, [ORIGIN])
    both = open_note(note, [LOG_KEY.verifier(), WITNESS.verifier()])
    assert both.signed_by == ["witness.example", ORIGIN]


def test_bad_signature_by_a_trusted_key_rejects_the_note() -> None:
    # Spec: a failing signature from a known key rejects the note, even if another verifies.
    body = Checkpoint(ORIGIN, 3, ROOT).body()
    good = sign_note(body, LOG_KEY)
    forged = sign_note(b"something else\n", WITNESS).split(b"\n\n")[1]
    with pytest.raises(SignatureError, match="witness.example"):
        open_note(good + forged, [LOG_KEY.verifier(), WITNESS.verifier()])


def test_conflicting_trusted_keys_are_a_config_error() -> None:
    clash = LOG_KEY.verifier().__class__(ORIGIN, LOG_KEY.key_id, NEXT_KEY.public_key)
    with pytest.raises(ConfigError, match="share the name and key id"):
        open_note(sign_note(b"x\n", LOG_KEY), [LOG_KEY.verifier(), clash])


SIGNED = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), LOG_KEY)
SIGNATURE_LINE = SIGNED.split(b"\n\n")[1]


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (b"\xff" + SIGNED, "not valid UTF-8"),
        (SIGNED.replace(b"\n3\n", b"\n3\r\n"), "control characters"),
        (SIGNED.replace(b"\n\n", b"\n"), "a blank line, then signature lines"),
        (SIGNED[:-1], "a blank line, then signature lines"),
        (SIGNED + b"\n", "does not start with an em dash"),
        (SIGNED.replace("\u2014".encode(), b"-"), "does not start with an em dash"),
        (SIGNED.replace(b" UDA", b"UDA").replace(b"\xe2\x80\x94 ", b"\xe2\x80\x94 a "), "base64"),
        (SIGNED[:-2] + b"!\n", "base64"),
        (SIGNED.split(b"\n\n")[0] + b"\n\n\xe2\x80\x94 x AAAA\n", "no room for a key id"),
        (SIGNED.split(b"\n\n")[0] + b"\n\n\xe2\x80\x94 a+b AAAAAAA=\n", "invalid key name"),
        (SIGNED + SIGNATURE_LINE * MAX_SIGNATURES, f"more than {MAX_SIGNATURES} signatures"),
    ],
)
def test_malformed_notes(note: bytes, message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        open_note(note, [LOG_KEY.verifier()])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"origin\n3\n", "at least 3 non-empty lines"),
        (b"origin\n3\nOF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMnQqo=", "at least 3"),
        (b"origin\n\n3\nOF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMnQqo=\n", "at least 3"),
        (b"origin\n03\nOF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMnQqo=\n", "canonical decimal"),
        (b"origin\n-3\nOF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMnQqo=\n", "canonical decimal"),
        ("origin\n\u0663\nOF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMnQqo=\n".encode(), "decimal"),
        (b"origin\n3\nOF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMnQqo\n", "not valid base64"),
        (b"origin\n3\nOF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMnQqr=\n", "not canonical base64"),
        (b"origin\n3\nOF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMn\n", "root has 30 bytes"),
        (b"\xc3\x28\n3\nOF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMnQqo=\n", "not valid UTF-8"),
    ],
)
def test_malformed_checkpoints(body: bytes, message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        Checkpoint.parse(body)


def test_parsers_raise_only_domain_errors() -> None:
    # ValueError and binascii.Error never escape: every byte flip is a domain error or valid.
    trusted = [LOG_KEY.verifier()]
    for position in range(len(SIGNED)):
        for bit in (0x01, 0x20, 0x80):
            damaged = bytearray(SIGNED)
            damaged[position] ^= bit
            with contextlib.suppress(AttestreamError):
                open_checkpoint(bytes(damaged), trusted)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_input_gives_only_domain_errors(data: bytes) -> None:
    attempts: list[Callable[[], object]] = [
        lambda: open_checkpoint(data, [LOG_KEY.verifier()]),
        lambda: open_checkpoint(Checkpoint(ORIGIN, 3, ROOT).body() + b"\n" + data, []),
        lambda: Checkpoint.parse(data),
    ]
    for attempt in attempts:
        with contextlib.suppress(AttestreamError):
            attempt()


def test_signing_refuses_a_bad_note_text() -> None:
    with pytest.raises(MalformedError, match="must end with a newline"):
        sign_note(b"no newline", LOG_KEY)
    with pytest.raises(MalformedError, match="control characters"):
        sign_note(b"bell\x07\n", LOG_KEY)
    with pytest.raises(ConfigError, match="at least one signer"):
        sign_note(b"text\n")
    with pytest.raises(MalformedError, match="empty or has control chars"):
        Checkpoint("two\nlines", 3, ROOT)
    with pytest.raises(MalformedError, match="negative"):
        Checkpoint(ORIGIN, -1, ROOT)
