"""Country address lists from RIR "delegated" statistics files, and plain CIDR lists.

The five RIRs publish `registry|cc|type|start|value|date|status[|extensions]` lines: for
`ipv4` the value is a count of addresses (not always a power of two), for `ipv6` a prefix
length. Header (`2|...`), summary (`...|*|ipv4|*|count|summary`) and comment lines are
skipped; only `allocated` and `assigned` records count. Selected ranges are aggregated into
the fewest CIDRs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from skanse.netpol.addresses import IpNetwork, IpRange, aggregate
from skanse.printable import printable

__all__ = [
    "DelegatedRecord",
    "RirError",
    "country_cidrs",
    "parse_cidr_list",
    "parse_delegated",
    "strict_network",
]

_STATUSES = frozenset({"allocated", "assigned"})
# How much of a bad line an error quotes: enough to find it, too little to copy out a file
# that was not meant to be read (a cidr-file of /etc/shadow).
_EXCERPT = 24


def _excerpt(line: str) -> str:
    """The start of a line for an error message, quoted, control characters escaped."""
    cut = line[:_EXCERPT]
    return f"'{printable(cut)}'" + ("..." if len(line) > _EXCERPT else "")


class RirError(ValueError):
    """A line of an address file that cannot be read; carries the line number."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source, self.line = source, line


@dataclass(frozen=True, slots=True)
class DelegatedRecord:
    registry: str
    country: str
    addresses: IpRange


def parse_delegated(text: str, source: str = "<delegated>") -> list[DelegatedRecord]:
    """The allocated and assigned IPv4 and IPv6 records of a delegated file."""
    records = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("|")
        if len(fields) < 6 or fields[0].isdigit() or fields[1] == "*" or fields[-1] == "summary":
            continue  # the version header and summary lines
        if len(fields) < 7:
            raise RirError(
                source,
                number,
                f"expected registry|cc|type|start|value|date|status, not {_excerpt(line)}",
            )
        registry, cc, kind, start, value, _date, status = fields[:7]
        if kind not in ("ipv4", "ipv6") or status.lower() not in _STATUSES:
            continue
        bad = f"bad {kind} record {_excerpt(line)}"
        try:
            first = ipaddress.ip_address(start)
            size = int(value)
        except ValueError:
            raise RirError(source, number, bad) from None
        if kind == "ipv4":
            if first.version != 4 or size < 1 or int(first) + size - 1 > 0xFFFFFFFF:
                raise RirError(source, number, bad)
            r = IpRange(4, int(first), int(first) + size - 1)
        else:
            if first.version != 6 or not 0 <= size <= 128:
                raise RirError(source, number, bad)
            try:
                net = ipaddress.IPv6Network(f"{start}/{size}")
            except ValueError:
                raise RirError(source, number, bad) from None
            r = IpRange.of(net)
        records.append(DelegatedRecord(registry, cc.upper(), r))
    return records


def country_cidrs(records: Iterable[DelegatedRecord], countries: Iterable[str]) -> list[IpNetwork]:
    """The fewest CIDRs covering every range of the given countries (IPv4 then IPv6)."""
    wanted = {c.strip().upper() for c in countries if c.strip()}
    return aggregate(r.addresses for r in records if r.country in wanted)


def parse_cidr_list(text: str, source: str = "<cidrs>") -> list[IpNetwork]:
    """A file of CIDRs or addresses, one a line, `#` comments: aggregated."""
    networks: list[IpNetwork] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            networks.append(strict_network(line))
        except ValueError as exc:
            # strict_network's own advice only for what reads as an address; anything else
            # could be any file's content and is quoted no further than an excerpt
            reason = str(exc) if "host bits set" in str(exc) else "not a CIDR or an address"
            raise RirError(source, number, f"{reason}: {_excerpt(line)}") from None
    return aggregate(networks)


def strict_network(text: str) -> IpNetwork:
    """A CIDR or an address as written: `10.20.30.40/24` (host bits set) is refused, not
    silently widened to `10.20.30.0/24`, since either half of it may be the typo."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "host bits set" not in str(exc):
            raise
    network = ipaddress.ip_network(text, strict=False)
    address = text.partition("/")[0]
    raise ValueError(
        f"{text} has host bits set: write {network} for the network or "
        f"{address}/{network.max_prefixlen} for the one address"
    )
