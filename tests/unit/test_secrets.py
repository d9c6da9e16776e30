"""Secrets: SHA-512-crypt as the system computes it, values that never print, and where they come from."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mailprov.config.model import SecretRef
from mailprov.config.secrets import MASK, Secret, new_salt, resolve, sha512_crypt, verify_sha512_crypt
from mailprov.errors import ConfigError

OPENSSL = shutil.which("openssl")

PASSWORDS = [
    ("test1234", "saltsalt"),  # the guide's test user
    ("correct horse battery staple", "abcdefgh12345678"),
    ("Hello world!", "saltstring"),
    ("ünïcødé-pässwörd", "./AZaz09"),
    ("x" * 100, "s"),  # longer than one SHA-512 block
    ('it\'s "quoted" $HOME `id` ;|&', "Q1w2E3r4"),
    ("a", "saltstringsaltstringsaltstring"),  # salt longer than 16: truncated, as glibc does
]


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
@pytest.mark.parametrize(("password", "salt"), PASSWORDS, ids=[f"{len(p)} chars" for p, _ in PASSWORDS])
def test_sha512_crypt_matches_openssl(password: str, salt: str) -> None:
    assert OPENSSL is not None
    done = subprocess.run(
        [OPENSSL, "passwd", "-6", "-salt", salt, password], capture_output=True, text=True, check=True
    )
    assert sha512_crypt(password, salt) == done.stdout.strip()


def test_sha512_crypt_with_rounds_matches_the_specification() -> None:
    # Test vectors from Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512" (the glibc reference)
    assert sha512_crypt("Hello world!", "saltstringsaltstring", rounds=10000) == (
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/"
        "YTBmSK6H9qs/y3RnOaw5v."
    )
    assert sha512_crypt("we have a short salt string but not a short password", "short", rounds=77777) == (
        "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"
    )
    # below the minimum the specification uses 1000
    assert sha512_crypt("abc", "salt", rounds=10).startswith("$6$rounds=1000$salt$")


def test_verify() -> None:
    hashed = sha512_crypt("test1234", new_salt())
    assert verify_sha512_crypt("test1234", hashed)
    assert not verify_sha512_crypt("test1235", hashed)
    assert not verify_sha512_crypt("test1234", "$1$saltsalt$abc")  # not SHA-512-crypt
    assert not verify_sha512_crypt("test1234", "garbage")
    with_rounds = sha512_crypt("pw", "salt", rounds=5000)
    assert verify_sha512_crypt("pw", with_rounds) and not verify_sha512_crypt("pW", with_rounds)


def test_new_salt_is_random_and_crypt_safe() -> None:
    salts = {new_salt() for _ in range(50)}
    assert len(salts) == 50
    for salt in salts:
        assert len(salt) == 16
        assert set(salt) <= set("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


# --- Secret never prints -------------------------------------------------------------------------------


def test_secret_masks_itself_everywhere() -> None:
    secret = Secret("hunter2")
    assert str(secret) == MASK == "***"
    assert repr(secret) == "Secret(***)"
    assert f"{secret}" == "***" and "{}".format(secret) == "***"  # noqa: UP032
    assert "hunter2" not in repr([secret, {"pw": secret}, (secret,)])
    assert secret.reveal() == "hunter2"


def test_secret_in_an_exception_message_stays_masked() -> None:
    with pytest.raises(RuntimeError) as info:
        raise RuntimeError(f"login failed with {Secret('hunter2')!r} / {Secret('hunter2')}")
    assert "hunter2" not in str(info.value)


# --- resolving references ------------------------------------------------------------------------------


def test_resolve_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAILPROV_TEST_PW", "s3cret value")
    secret = resolve(SecretRef(env="MAILPROV_TEST_PW"), tmp_path)
    assert secret.reveal() == "s3cret value"


def test_missing_env_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MAILPROV_TEST_PW", raising=False)
    with pytest.raises(ConfigError, match="MAILPROV_TEST_PW is not set") as info:
        resolve(SecretRef(env="MAILPROV_TEST_PW"), tmp_path)
    assert "environment variable MAILPROV_TEST_PW" in str(info.value)


def test_empty_env_is_a_value_not_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAILPROV_TEST_PW", "")
    assert resolve(SecretRef(env="MAILPROV_TEST_PW"), tmp_path).reveal() == ""


def test_resolve_from_file_relative_to_the_site(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "john").write_text("Tr0ub4dor&3\n")
    assert resolve(SecretRef(file="secrets/john"), tmp_path).reveal() == "Tr0ub4dor&3"
    assert resolve(SecretRef(file=str(tmp_path / "secrets" / "john")), Path("/")).reveal() == "Tr0ub4dor&3"


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read") as info:
        resolve(SecretRef(file="nope"), tmp_path)
    assert str(tmp_path / "nope") in str(info.value)


@pytest.mark.parametrize("content", ["", "\n", "line one\nline two\n"], ids=["empty", "newline", "two lines"])
def test_file_must_hold_one_line_and_the_error_does_not_show_it(tmp_path: Path, content: str) -> None:
    (tmp_path / "pw").write_text(content)
    with pytest.raises(ConfigError, match="exactly one line") as info:
        resolve(SecretRef(file="pw"), tmp_path)
    assert "line one" not in str(info.value) and "line two" not in str(info.value)


def test_reference_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SecretRef()
    with pytest.raises(ValueError, match="exactly one"):
        SecretRef(env="A", file="b")
    with pytest.raises(ValueError):
        SecretRef(env="NOT-A-VARIABLE")
