"""Issue 12, item 3: `mailprov render --out` (often run as root) never writes through a symlink or a hard
link, never outside its directory, and creates a secret file 0600 from the start."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailprov.cli import main

KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
SITE = """\
domain: example.org
hosts:
  - name: mail.example.org
users:
  - login: alice
    password: {env: MAILPROV_ALICE_PASSWORD}
aliases:
  root: [alice]
tls:
  files: {cert: mail.pem, key: mail.key}
"""
MAIN_CF = "etc/postfix/main.cf"
KEY_FILE = "etc/ssl/private/mail.example.org.key"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "mail.pem").write_text(CERT)
    (tmp_path / "mail.key").write_text(KEY)
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    return path


def render(site: Path, out: Path) -> Any:
    return CliRunner().invoke(main, ["render", str(site), "--facts", "debian12", "--out", str(out)])


def test_the_tree_is_written(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = render(site, out)
    assert result.exit_code == 0, result.output
    assert (out / MAIN_CF).read_text().startswith("# Managed by mailprov")
    assert (out / KEY_FILE).read_text() == KEY
    assert stat.S_IMODE((out / KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((out / MAIN_CF).stat().st_mode) == 0o644
    again = render(site, out)  # rendering again into the same directory replaces the files
    assert again.exit_code == 0, again.output
    assert not [p for p in out.rglob(".*mailprov-*")], "temporary files left behind"


def test_a_symlink_planted_at_a_file_is_replaced_not_followed(site: Path, tmp_path: Path) -> None:
    victim = tmp_path / "shadow"
    victim.write_text("root:x:0:0\n")
    victim.chmod(0o640)
    out = tmp_path / "out"
    (out / "etc/postfix").mkdir(parents=True)
    (out / MAIN_CF).symlink_to(victim)
    result = render(site, out)
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "root:x:0:0\n" and stat.S_IMODE(victim.stat().st_mode) == 0o640
    assert not (out / MAIN_CF).is_symlink()


def test_a_hard_link_planted_at_a_file_is_replaced_not_written(site: Path, tmp_path: Path) -> None:
    victim = tmp_path / "passwd"
    victim.write_text("root:x:0:0\n")
    out = tmp_path / "out"
    (out / "etc/postfix").mkdir(parents=True)
    os.link(victim, out / MAIN_CF)
    assert render(site, out).exit_code == 0
    assert victim.read_text() == "root:x:0:0\n"


def test_a_symlinked_directory_below_out_is_refused(site: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc-of-the-system"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "etc").symlink_to(elsewhere)
    result = render(site, out)
    assert result.exit_code == 2, result.output
    assert "symlink" in result.output and "Traceback" not in result.output
    assert list(elsewhere.iterdir()) == []


def test_out_itself_as_a_symlink_is_refused(site: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    result = render(site, tmp_path / "link")
    assert result.exit_code == 2, result.output
    assert "symlink" in result.output
    assert list(real.iterdir()) == []


def test_a_secret_file_is_never_readable_by_others_while_it_holds_the_key(site: Path, tmp_path: Path) -> None:
    """Every chmod or rename of a file under out (audited) finds a file holding the key already 0600."""
    out = tmp_path / "out"
    seen: list[tuple[str, int, bool]] = []

    def check(mode: int, content: bytes, what: str) -> None:
        seen.append((what, mode, KEY.encode() in content))

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not _watching:
            return
        try:
            if event == "os.chmod":
                path, _mode, dir_fd = args
                if isinstance(path, int):
                    info = os.fstat(path)
                    content = b""  # an fd being set up: nothing written yet
                else:
                    info = os.stat(path, dir_fd=dir_fd if dir_fd not in (None, -1) else None)
                    content = Path(path).read_bytes() if dir_fd in (None, -1) else b""
                check(stat.S_IMODE(info.st_mode), content, f"chmod {path}")
            elif event == "os.rename":
                src, _dst, src_dir_fd, _dst_dir_fd = args
                fd = os.open(src, os.O_RDONLY, dir_fd=src_dir_fd if src_dir_fd not in (None, -1) else None)
                try:
                    info = os.fstat(fd)
                    content = os.read(fd, 1 << 16)
                finally:
                    os.close(fd)
                check(stat.S_IMODE(info.st_mode), content, f"rename {src}")
        except OSError:
            pass

    global _watching
    _install(hook)
    _watching = True
    try:
        result = render(site, out)
    finally:
        _watching = False
    assert result.exit_code == 0, result.output
    holding_key = [(what, mode) for what, mode, has_key in seen if has_key]
    assert holding_key, f"no audited step saw the key: {seen}"
    assert all(mode == 0o600 for _, mode in holding_key), holding_key


_watching = False
_hooks: list[Any] = []


def _install(hook: Any) -> None:
    """Audit hooks cannot be removed: one dispatcher, installed once, calls the current test's hook."""
    if not _hooks:
        sys.addaudithook(lambda event, args: _hooks[-1](event, args) if _hooks else None)
    _hooks.append(hook)
