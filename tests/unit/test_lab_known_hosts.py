"""The lab's known_hosts: a host's lines are replaced as a whole, everything else is kept."""

from __future__ import annotations

from mailprov.lab.known_hosts import key_lines, remove_entries, replace_entries

ED25519_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO6fpatPmSh9 root@vm\n"
RSA_PUB = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB root@vm\n"


def test_key_lines_come_from_pub_files_without_comments() -> None:
    assert key_lines("10.231.1.1", [ED25519_PUB, RSA_PUB, "\n"]) == [
        "10.231.1.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO6fpatPmSh9",
        "10.231.1.1 ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB",
    ]


def test_stale_lines_for_the_address_are_replaced_and_others_kept() -> None:
    existing = (
        "# lab\n"
        "10.231.1.1 ssh-ed25519 OLDKEY\n"
        "10.231.1.10 ssh-ed25519 KEEP-10\n"  # a prefix of the address is another host
        "[10.231.1.1]:22 ssh-rsa OLDRSA\n"
        "10.231.2.1,trixie-1 ssh-ed25519 KEEP-TRIXIE\n"
        "[10.231.1.1]:2222 ssh-ed25519 KEEP-OTHER-PORT\n"
        "other.example,10.231.1.1 ecdsa-sha2-nistp256 OLDECDSA\n"
    )
    result = replace_entries(existing, "10.231.1.1", ["10.231.1.1 ssh-ed25519 NEWKEY"])
    assert result == (
        "# lab\n"
        "10.231.1.10 ssh-ed25519 KEEP-10\n"
        "10.231.2.1,trixie-1 ssh-ed25519 KEEP-TRIXIE\n"
        "[10.231.1.1]:2222 ssh-ed25519 KEEP-OTHER-PORT\n"
        "10.231.1.1 ssh-ed25519 NEWKEY\n"
    )


def test_markers_are_matched_on_their_host_field() -> None:
    existing = "@revoked 10.231.1.1 ssh-ed25519 OLD\n@cert-authority *.example ssh-ed25519 CA\n"
    assert remove_entries(existing, ["10.231.1.1"]) == "@cert-authority *.example ssh-ed25519 CA\n"


def test_replacing_in_an_empty_file() -> None:
    assert replace_entries("", "10.231.2.3", ["10.231.2.3 ssh-ed25519 K"]) == "10.231.2.3 ssh-ed25519 K\n"


def test_forgetting_several_hosts() -> None:
    existing = "10.231.1.1 ssh-ed25519 A\n10.231.2.1 ssh-ed25519 B\n192.0.2.7 ssh-ed25519 C\n"
    assert remove_entries(existing, ["10.231.1.1", "10.231.2.1"]) == "192.0.2.7 ssh-ed25519 C\n"
