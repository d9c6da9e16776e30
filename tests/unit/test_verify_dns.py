"""The DNS records a site needs, and the stub resolver (packets built and parsed without a network;
lookups only against a fake resolver on loopback)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailprov.config.loader import load_site
from mailprov.verify import dns


def _name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def response(query: bytes, answers: list[tuple[int, bytes]], rcode: int = 0) -> bytes:
    """An answer to `query`: each answer's owner is a pointer to the question name (offset 12)."""
    qid = struct.unpack("!H", query[:2])[0]
    header = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(answers), 0, 0)
    body = b"".join(struct.pack("!HHHIH", 0xC00C, rtype, 1, 300, len(rdata)) + rdata for rtype, rdata in answers)
    return header + query[12:] + body


def test_query_packet() -> None:
    packet = dns.build_query("example.test", "MX", 0x1234)
    assert packet[:4] == b"\x12\x34\x01\x00"
    assert packet[12:] == _name("example.test") + b"\x00\x0f\x00\x01"
    assert dns.build_query(".", "NS", 1)[12:] == b"\0\x00\x02\x00\x01"


def test_parse_mx_a_ptr_with_compression() -> None:
    query = dns.build_query("example.test", "MX", 7)
    mx = struct.pack("!H", 10) + b"\x03mx1\xc0\x0c"  # mx1 + pointer to example.test
    a = bytes([10, 231, 1, 5])
    answer = dns.parse_response(response(query, [(15, mx), (1, a), (12, _name("mx1.example.test"))]), 7)
    assert answer.rcode == "NOERROR"
    assert answer.values("MX") == ("10 mx1.example.test",)
    assert answer.values("A") == ("10.231.1.5",)
    assert answer.values("PTR") == ("mx1.example.test",)


def test_parse_rejects_foreign_and_short_packets() -> None:
    query = dns.build_query("example.test", "A", 7)
    with pytest.raises(ValueError):
        dns.parse_response(response(query, []), 8)
    with pytest.raises(ValueError):
        dns.parse_response(b"\0" * 5, 7)
    looped = response(query, [(12, b"\xc0\x0c")])[:-2] + b"\xc0" + bytes([len(query) + 12])
    with pytest.raises(ValueError):
        dns.parse_response(looped, 7)


def test_needed_records(example_path: Path) -> None:
    site = load_site(example_path)
    assert dns.needed_records(site, site.hosts[0]) == [
        "example.com. IN MX 10 mail.example.com.",
        "mail.example.com. IN A 192.168.0.10",
        "10.0.168.192.in-addr.arpa. IN PTR mail.example.com.",
    ]


def test_nameserver_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch lan\nnameserver fe80::1%eth0\nnameserver 10.0.0.53\n")
    assert dns.system_nameserver(conf) == "fe80::1"
    conf.write_text("search lan\n")
    assert dns.system_nameserver(conf) is None
    assert dns.system_nameserver(tmp_path / "missing") is None


@pytest.fixture
def fake_resolver() -> Iterator[Callable[[Callable[[bytes], bytes | None]], int]]:
    """A UDP server on 127.0.0.1 answering with the function given (None: stay silent)."""
    sockets: list[socket.socket] = []

    def start(answer: Callable[[bytes], bytes | None]) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)

        def serve() -> None:
            while True:
                try:
                    data, peer = sock.recvfrom(4096)
                except OSError:
                    return
                reply = answer(data)
                if reply is not None:
                    sock.sendto(reply, peer)

        threading.Thread(target=serve, daemon=True).start()
        return int(sock.getsockname()[1])

    yield start
    for sock in sockets:
        sock.close()


def _lookup(port: int, name: str, rtype: str, timeout: float) -> dns.Answer:
    return dns.lookup(name, rtype, "127.0.0.1", timeout, port)


def test_lookup_answer(fake_resolver: Callable[[Callable[[bytes], bytes | None]], int]) -> None:
    port = fake_resolver(lambda q: response(q, [(1, bytes([10, 231, 1, 5]))]))
    assert _lookup(port, "mx1.example.test", "A", 1.0).values("A") == ("10.231.1.5",)


def test_silent_resolver_times_out_fast(fake_resolver: Callable[[Callable[[bytes], bytes | None]], int]) -> None:
    port = fake_resolver(lambda q: None)
    started = time.monotonic()
    with pytest.raises(dns.DnsUnavailable, match="no answer"):
        _lookup(port, "example.test", "MX", 0.3)
    assert time.monotonic() - started < 1.0


def test_servfail_is_unavailable(fake_resolver: Callable[[Callable[[bytes], bytes | None]], int]) -> None:
    port = fake_resolver(lambda q: response(q, [], rcode=2))
    with pytest.raises(dns.DnsUnavailable, match="SERVFAIL"):
        _lookup(port, "example.test", "MX", 1.0)


def test_resolver_that_denies_everything_is_unavailable(
    fake_resolver: Callable[[Callable[[bytes], bytes | None]], int],
) -> None:
    """A resolver cut off from the internet answering NXDOMAIN even for the root zone: skip, don't fail."""
    port = fake_resolver(lambda q: response(q, [], rcode=3))
    with pytest.raises(dns.DnsUnavailable, match="does not resolve the public DNS"):
        dns.check_resolver("127.0.0.1", 1.0, port)


def test_resolver_with_root_servers_is_usable(
    fake_resolver: Callable[[Callable[[bytes], bytes | None]], int],
) -> None:
    port = fake_resolver(lambda q: response(q, [(2, _name("a.root-servers.net"))]))
    dns.check_resolver("127.0.0.1", 1.0, port)
