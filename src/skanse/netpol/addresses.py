"""IP address ranges: the external peers of the analysis, and CIDR aggregation.

The address space outside the cluster is split at every ipBlock and except boundary into
ranges that no policy can tell apart; each is one external peer. Ranges are inclusive
integer intervals per address family, so IPv4 and IPv6 are handled alike. Aggregation into
the fewest CIDRs uses the standard library (`ipaddress.summarize_address_range` and
`collapse_addresses`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "FULL_V4",
    "FULL_V6",
    "IpNetwork",
    "IpRange",
    "aggregate",
    "atoms",
    "block_ranges",
    "graph_label",
    "merge_segments",
    "parse_range",
    "range_cidrs",
]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")

_MAX = {4: (1 << 32) - 1, 6: (1 << 128) - 1}


@dataclass(frozen=True, slots=True, order=True)
class IpRange:
    """An inclusive range of addresses of one family (4 or 6)."""

    version: int
    lo: int
    hi: int

    @classmethod
    def of(cls, network: IpNetwork) -> IpRange:
        return cls(network.version, int(network.network_address), int(network.broadcast_address))

    def __str__(self) -> str:
        return f"{_address(self.version, self.lo)}-{_address(self.version, self.hi)}"

    def contains(self, other: IpRange) -> bool:
        return self.version == other.version and self.lo <= other.lo and other.hi <= self.hi

    def contains_address(self, version: int, value: int) -> bool:
        return self.version == version and self.lo <= value <= self.hi

    @property
    def is_everything(self) -> bool:
        return self.lo == 0 and self.hi == _MAX[self.version]

    def cidrs(self) -> list[IpNetwork]:
        return range_cidrs(self)


FULL_V4 = IpRange(4, 0, _MAX[4])
FULL_V6 = IpRange(6, 0, _MAX[6])


def _address(version: int, value: int) -> str:
    if version == 4:
        return str(ipaddress.IPv4Address(value))
    return str(ipaddress.IPv6Address(value))


def parse_range(text: str) -> IpRange:
    """`a.b.c.d-e.f.g.h`, a CIDR or a single address (the forms the outputs use)."""
    text = text.strip()
    if "/" in text:
        return IpRange.of(ipaddress.ip_network(text, strict=False))
    lo_text, sep, hi_text = text.partition("-")
    lo = ipaddress.ip_address(lo_text)
    hi = ipaddress.ip_address(hi_text) if sep else lo
    if lo.version != hi.version or int(lo) > int(hi):
        raise ValueError(f"{text!r} is not an address range")
    return IpRange(lo.version, int(lo), int(hi))


def range_cidrs(r: IpRange) -> list[IpNetwork]:
    """The fewest CIDRs that cover exactly `r`."""
    lo, hi = (
        ipaddress.ip_address(_address(r.version, r.lo)),
        ipaddress.ip_address(_address(r.version, r.hi)),
    )
    return list(ipaddress.summarize_address_range(lo, hi))


def block_ranges(cidr: IpNetwork, excepts: Iterable[IpNetwork]) -> list[IpRange]:
    """The addresses of an ipBlock: `cidr` minus every `except`, as disjoint ranges in order.

    The excepts are sorted and walked once, so thousands of them cost a sort, not a split
    of every remaining range per except.
    """
    whole = IpRange.of(cidr)
    cuts = sorted(
        (max(lo, whole.lo), min(hi, whole.hi))
        for lo, hi in (_bounds(ex) for ex in excepts if ex.version == cidr.version)
        if hi >= whole.lo and lo <= whole.hi
    )
    out: list[IpRange] = []
    start = whole.lo  # the first address not yet cut or emitted
    for lo, hi in cuts:
        if lo > start:
            out.append(IpRange(whole.version, start, lo - 1))
        start = max(start, hi + 1)
    if start <= whole.hi:
        out.append(IpRange(whole.version, start, whole.hi))
    return out


def _bounds(network: IpNetwork) -> tuple[int, int]:
    """First and last address as integers, from the prefix length (`broadcast_address`
    builds an address object per network: the slow part of 100,000 excepts)."""
    lo = int(network.network_address)
    return lo, lo | ((1 << (network.max_prefixlen - network.prefixlen)) - 1)


def atoms(blocks: Iterable[IpRange]) -> list[IpRange]:
    """The whole IPv4 and IPv6 space split at every boundary of `blocks`, in order.

    Every returned range is either inside or outside each block, so a peer that is one of
    these ranges is matched by an ipBlock entirely or not at all.
    """
    cuts: dict[int, set[int]] = {4: {0}, 6: {0}}
    for b in blocks:
        cuts[b.version].add(b.lo)
        if b.hi < _MAX[b.version]:
            cuts[b.version].add(b.hi + 1)
    out: list[IpRange] = []
    for version in (4, 6):
        starts = sorted(cuts[version])
        for i, start in enumerate(starts):
            end = starts[i + 1] - 1 if i + 1 < len(starts) else _MAX[version]
            out.append(IpRange(version, start, end))
    return out


def merge_segments(segments: Iterable[tuple[IpRange, T]]) -> list[tuple[IpRange, T]]:
    """Sort ranges and join neighbours that carry equal values (ranges must not overlap)."""
    out: list[tuple[IpRange, T]] = []
    for r, value in sorted(segments, key=lambda s: (s[0].version, s[0].lo)):
        if out:
            last, last_value = out[-1]
            if last.version == r.version and last.hi + 1 == r.lo and last_value == value:
                out[-1] = (IpRange(r.version, last.lo, r.hi), value)
                continue
        out.append((r, value))
    return out


def aggregate(networks: Iterable[IpNetwork | IpRange]) -> list[IpNetwork]:
    """The fewest CIDRs covering the union of the inputs: IPv4 first, then IPv6.

    Overlapping, nested and adjacent inputs merge; ranges that are not CIDR-aligned (an RIR
    allocation of 768 addresses) are cut into the CIDRs that cover them exactly.
    """
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for item in networks:
        nets = item.cidrs() if isinstance(item, IpRange) else [item]
        for net in nets:
            if isinstance(net, ipaddress.IPv4Network):
                v4.append(net)
            else:
                v6.append(net)
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


_EXTERNAL = "[External]"


def graph_label(label: str, suffix: str = "", *, limit: int = 34) -> str:
    """What a graph node shows of an endpoint label (the full label goes in its tooltip): a
    workload `ns/name[Kind]` without its namespace; an external peer, `a-b[,c-d...][External]`,
    as its first CIDR and how many more there are. `suffix` is appended; text longer than
    `limit` ends in an ellipsis."""
    if label.endswith(_EXTERNAL):
        ranges = label.removesuffix(_EXTERNAL).split(",")
        try:
            cidrs = [str(c) for r in ranges for c in parse_range(r).cidrs()]
        except ValueError:  # not ranges after all: shown as given
            cidrs = ranges
        text = cidrs[0] + (f" +{len(cidrs) - 1} more" if len(cidrs) > 1 else "")
    else:
        text = label.split("/", 1)[1] if "/" in label else label
    text += suffix
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
