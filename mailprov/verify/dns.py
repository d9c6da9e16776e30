"""The DNS records a mail site needs (MX, A, PTR), and a minimal stub resolver to look them up.

The guide's last step: "configure MX records in DNS for your domain (ideally a PTR rDNS entry too)".
Lookups go to the first nameserver of /etc/resolv.conf over UDP with one deadline (2 s by default), so a
machine without working DNS gets a clean skip quickly instead of the libc resolver's long retries.
The packet builder and parser are pure and tested without a network.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mailprov.config.model import Host, Site

RecordType = Literal["A", "AAAA", "MX", "NS", "PTR", "CNAME"]
_TYPES: dict[str, int] = {"A": 1, "NS": 2, "CNAME": 5, "PTR": 12, "MX": 15, "AAAA": 28}
_NAMES = {v: k for k, v in _TYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
DNS_TIMEOUT = 2.0


class DnsUnavailable(Exception):
    """No usable answer from the resolver (no nameserver, timeout, unreachable, SERVFAIL)."""


@dataclass(frozen=True)
class Record:
    type: str
    value: str  # A/AAAA: the address; MX: "10 mx.example.com"; NS/PTR/CNAME: the name, no trailing dot


@dataclass(frozen=True)
class Answer:
    rcode: str
    records: tuple[Record, ...]

    def values(self, rtype: str) -> tuple[str, ...]:
        return tuple(r.value for r in self.records if r.type == rtype)


# --- what the site needs ---------------------------------------------------------------------------------


def ip_literal(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def needed_records(site: Site, host: Host) -> list[str]:
    """Zone-file lines the site needs for `host` (MX for the domain, A/AAAA for the name, PTR back), at
    the host's public address (hosts[].public_address, else ssh.address)."""
    address = ip_literal(host.public())
    rtype = "AAAA" if address and ":" in address else "A"
    lines = [f"{site.domain}. IN MX {host.mx_priority} {host.name}."]
    lines.append(f"{host.name}. IN {rtype} {address or '<public address of ' + host.name + '>'}")
    if address:
        lines.append(f"{ipaddress.ip_address(address).reverse_pointer}. IN PTR {host.name}.")
    return lines


# --- wire format -----------------------------------------------------------------------------------------


def build_query(name: str, rtype: str, query_id: int) -> bytes:
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # recursion desired, one question
    qname = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.rstrip(".").split(".") if label)
    return header + qname + b"\0" + struct.pack("!HH", _TYPES[rtype], 1)


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """A possibly compressed name at offset → (name, offset after it in the original position)."""
    labels: list[str] = []
    end: int | None = None
    jumps = 0
    while True:
        if offset >= len(data):
            raise ValueError("name runs past the end of the packet")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise ValueError("truncated compression pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            jumps += 1
            if jumps > 32:
                raise ValueError("compression loop")
            continue
        if length == 0:
            return ".".join(labels), (end if end is not None else offset + 1)
        labels.append(data[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length


def parse_response(data: bytes, query_id: int) -> Answer:
    if len(data) < 12:
        raise ValueError("short DNS packet")
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
    if rid != query_id or not flags & 0x8000:
        raise ValueError("not the answer to our query")
    offset = 12
    for _ in range(qd):
        _, offset = _read_name(data, offset)
        offset += 4
    records = []
    for _ in range(an):
        _, offset = _read_name(data, offset)
        rtype, _, _, length = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        rdata_at = offset
        offset += length
        kind = _NAMES.get(rtype)
        if kind == "A" and length == 4:
            records.append(Record("A", socket.inet_ntop(socket.AF_INET, data[rdata_at:offset])))
        elif kind == "AAAA" and length == 16:
            records.append(Record("AAAA", socket.inet_ntop(socket.AF_INET6, data[rdata_at:offset])))
        elif kind == "MX":
            (preference,) = struct.unpack("!H", data[rdata_at : rdata_at + 2])
            records.append(Record("MX", f"{preference} {_read_name(data, rdata_at + 2)[0]}"))
        elif kind in ("NS", "PTR", "CNAME"):
            records.append(Record(kind, _read_name(data, rdata_at)[0]))
    return Answer(RCODES.get(flags & 0x0F, str(flags & 0x0F)), tuple(records))


# --- the stub resolver -----------------------------------------------------------------------------------


def system_nameserver(resolv_conf: Path = Path("/etc/resolv.conf")) -> str | None:
    try:
        text = resolv_conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and ip_literal(parts[1].split("%")[0]):
            return parts[1].split("%")[0]
    return None


def lookup(name: str, rtype: str, server: str, timeout: float = DNS_TIMEOUT, port: int = 53) -> Answer:
    """One UDP question to `server`, answered within `timeout` seconds or DnsUnavailable."""
    query_id = secrets.randbelow(0x10000)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((server, port))
            sock.send(build_query(name, rtype, query_id))
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                data = sock.recv(4096)
                try:
                    answer = parse_response(data, query_id)
                except ValueError:
                    continue  # a stray or malformed packet: keep waiting until the deadline
                break
        except TimeoutError:
            raise DnsUnavailable(f"no answer from the resolver {server} within {timeout:g} s") from None
        except OSError as exc:
            raise DnsUnavailable(f"the resolver {server} cannot be reached: {exc.strerror or exc}") from None
    if answer.rcode not in ("NOERROR", "NXDOMAIN"):
        raise DnsUnavailable(f"the resolver {server} answered {answer.rcode} for {name} {rtype}")
    return answer


def check_resolver(server: str, timeout: float = DNS_TIMEOUT, port: int = 53) -> None:
    """Raise DnsUnavailable unless `server` resolves the public DNS: the root zone must have NS records.

    A resolver cut off from the internet may answer NXDOMAIN for everything; its "no such domain" says
    nothing about the site's records, so the checks skip instead of failing.
    """
    answer = lookup(".", "NS", server, timeout, port)
    if not answer.values("NS"):
        raise DnsUnavailable(
            f"the resolver {server} does not resolve the public DNS (no NS records for the root zone: {answer.rcode})"
        )
