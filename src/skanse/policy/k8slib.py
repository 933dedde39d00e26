"""The Kubernetes CEL libraries that the runtime lacks, as plain Python functions.

The API server adds these to CEL for ValidatingAdmissionPolicy (k8s.io/apiserver
`pkg/cel/library`): lists, regex, URLs, quantity, IP and CIDR, semver. The runtime cannot
carry Python objects as opaque CEL values, so a Quantity, URL, IP, CIDR or Semver is a CEL
map with one tag key (`TAG`) whose value is a canonical text; equal values have equal maps,
which keeps `==` right. Errors are raised as `ValueError` and become CEL errors.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import urllib.parse
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import re2

__all__ = [
    "TAG",
    "cidr",
    "find",
    "find_all",
    "ip",
    "is_quantity",
    "is_semver",
    "is_url",
    "kind_of",
    "quantity",
    "semver",
    "url",
]

TAG = "@k8s"  # the key that marks a map as a Kubernetes library value

# -- lists ---------------------------------------------------------------------------------


def _comparable(items: Sequence[Any]) -> list[Any]:
    kinds = {type(x) for x in items}
    if len(kinds) > 1 and not kinds <= {int, float}:
        raise ValueError("list elements must all be of one comparable type")
    for x in items:
        if isinstance(x, (dict, list, bool)) or x is None:
            raise ValueError(f"no ordering for {type(x).__name__} elements")
    return list(items)


def is_sorted(items: list[Any]) -> bool:
    values = _comparable(items)
    return all(a <= b for a, b in itertools.pairwise(values))


def list_sum(items: list[Any]) -> Any:
    values = _comparable(items)
    if not values:
        return 0
    total = values[0]
    for x in values[1:]:
        total = total + x
    if isinstance(total, int) and not -(2**63) <= total < 2**63:
        raise ValueError("integer overflow")
    return total


def list_min(items: list[Any]) -> Any:
    values = _comparable(items)
    if not values:
        raise ValueError("min called on an empty list")
    return min(values)


def list_max(items: list[Any]) -> Any:
    values = _comparable(items)
    if not values:
        raise ValueError("max called on an empty list")
    return max(values)


# -- regex (RE2, as Go's regexp: linear time) ----------------------------------------------

_PATTERNS: dict[str, Any] = {}


def _regex(pattern: str) -> Any:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        try:
            compiled = re2.compile(pattern)
        except re2.error as exc:
            raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
        if len(_PATTERNS) < 1024:
            _PATTERNS[pattern] = compiled
    return compiled


def find(text: str, pattern: str) -> str:
    match = _regex(pattern).search(text)
    return match.group(0) if match else ""


def find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    found: list[str] = []
    for match in _regex(pattern).finditer(text):
        found.append(match.group(0))
        if 0 < limit <= len(found):
            break
    return found


# -- tagged values ---------------------------------------------------------------------------


def _tagged(kind: str, text: str) -> dict[str, str]:
    return {TAG: f"{kind}:{text}"}


def kind_of(value: dict[str, Any]) -> tuple[str, str]:
    """The library type and canonical text of a tagged map (ValueError for any other map)."""
    tag = value.get(TAG) if len(value) == 1 else None
    if not isinstance(tag, str) or ":" not in tag:
        raise ValueError("no such overload: not a Kubernetes library value")
    kind, _, text = tag.partition(":")
    return kind, text


def _untag(value: dict[str, Any], kind: str) -> str:
    found, text = kind_of(value)
    if found != kind:
        raise ValueError(f"no such overload: expected a {kind}, got a {found}")
    return text


# -- quantity (k8s.io/apimachinery resource.Quantity) ------------------------------------

_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_MAX_QUANTITY_TEXT = 64


# The API server's first, looser test; what passes it but not `_QUANTITY` has a bad suffix.
_QUANTITY_LOOSE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")


def _parse_quantity(text: str) -> Fraction:
    match = _QUANTITY.match(text) if len(text) <= _MAX_QUANTITY_TEXT else None
    if match is None:
        if len(text) <= _MAX_QUANTITY_TEXT and _QUANTITY_LOOSE.match(text):
            raise ValueError(f"unable to parse quantity's suffix: {text!r}")
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    number, suffix = match.group(1), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        exponent = int(suffix[1:])
        if abs(exponent) > 100:
            raise ValueError(f"quantity exponent out of range: {text!r}")
        scale = Fraction(10) ** exponent
    else:
        scale = _SUFFIXES[suffix]
    value = Fraction(number) * scale
    # resource.Quantity keeps nano precision: smaller parts round up (away from zero).
    return _round_nanos(value)


def _q(value: Fraction) -> dict[str, str]:
    return _tagged("Quantity", f"{value.numerator}/{value.denominator}")


def _qvalue(value: dict[str, Any]) -> Fraction:
    return Fraction(_untag(value, "Quantity"))


def quantity(text: str) -> dict[str, str]:
    return _q(_parse_quantity(text))


def is_quantity(text: str) -> bool:
    try:
        _parse_quantity(text)
    except ValueError:
        return False
    return True


def q_sign(value: dict[str, Any]) -> int:
    v = _qvalue(value)
    return (v > 0) - (v < 0)


def q_is_integer(value: dict[str, Any]) -> bool:
    v = _qvalue(value)
    return v.denominator == 1 and -(2**63) <= v < 2**63


def q_as_integer(value: dict[str, Any]) -> int:
    v = _qvalue(value)
    if v.denominator != 1 or not -(2**63) <= v < 2**63:
        raise ValueError("cannot convert value to integer")
    return int(v)


def q_as_float(value: dict[str, Any]) -> float:
    return float(_qvalue(value))


def q_add(value: dict[str, Any], other: dict[str, Any] | int) -> dict[str, str]:
    right = Fraction(other) if isinstance(other, int) else _qvalue(other)
    return _q(_qvalue(value) + right)


def q_sub(value: dict[str, Any], other: dict[str, Any] | int) -> dict[str, str]:
    right = Fraction(other) if isinstance(other, int) else _qvalue(other)
    return _q(_qvalue(value) - right)


def q_mul(value: dict[str, Any], factor: int) -> dict[str, str]:
    return _q(_round_nanos(_qvalue(value) * factor))


def q_div(value: dict[str, Any], divisor: int) -> dict[str, str]:
    if divisor == 0:
        raise ValueError("division by zero")
    return _q(_round_nanos(_qvalue(value) / divisor))


def q_div_int(value: dict[str, Any], divisor: int) -> dict[str, str]:
    if divisor == 0:
        raise ValueError("division by zero")
    quotient = _qvalue(value) / divisor
    return _q(Fraction(int(quotient)))  # truncated toward zero, as Go's integer division


def _round_nanos(value: Fraction) -> Fraction:
    nanos = value * 10**9
    if nanos.denominator == 1:
        return value
    rounded = -((-abs(nanos)) // 1)
    return Fraction(rounded if value > 0 else -rounded) / 10**9


# -- semver -------------------------------------------------------------------------------

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def _parse_semver(text: str, normalize: bool = False) -> tuple[int, int, int, str]:
    if normalize:
        text = text.removeprefix("v")
        core, sep, rest = _split_core(text)
        parts = core.split(".")
        if all(p.isdigit() and p.isascii() for p in parts) and len(parts) <= 3:
            parts += ["0"] * (3 - len(parts))
            text = ".".join(p.lstrip("0") or "0" for p in parts) + sep + rest
    match = _SEMVER.match(text) if len(text) <= 256 else None
    if match is None:
        raise ValueError(f"No Major.Minor.Patch elements found: {text!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3)), match.group(4) or ""


def _split_core(text: str) -> tuple[str, str, str]:
    for i, ch in enumerate(text):
        if ch in "-+":
            return text[:i], ch, text[i + 1 :]
    return text, "", ""


def semver(text: str, normalize: bool = False) -> dict[str, str]:
    major, minor, patch, pre = _parse_semver(text, normalize)
    return _tagged("Semver", f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else ""))


def is_semver(text: str, normalize: bool = False) -> bool:
    try:
        _parse_semver(text, normalize)
    except ValueError:
        return False
    return True


def _semver_parts(value: dict[str, Any]) -> tuple[int, int, int, str]:
    return _parse_semver(_untag(value, "Semver"))


def sv_major(value: dict[str, Any]) -> int:
    return _semver_parts(value)[0]


def sv_minor(value: dict[str, Any]) -> int:
    return _semver_parts(value)[1]


def sv_patch(value: dict[str, Any]) -> int:
    return _semver_parts(value)[2]


def _pre_key(pre: str) -> tuple[Any, ...]:
    if not pre:
        return ((2,),)  # a release is greater than any pre-release
    key = [(0, int(part)) if part.isdigit() else (1, part) for part in pre.split(".")]
    return ((1,), *key)


def _semver_key(value: dict[str, Any]) -> tuple[Any, ...]:
    major, minor, patch, pre = _semver_parts(value)
    return (major, minor, patch, _pre_key(pre))


# -- comparisons shared by Quantity and Semver -------------------------------------------


def compare_to(left: dict[str, Any], right: dict[str, Any]) -> int:
    kind, _ = kind_of(left)
    other, _ = kind_of(right)
    if kind != other:
        raise ValueError(f"no such overload: {kind}.compareTo({other})")
    a: Any
    b: Any
    if kind == "Quantity":
        a, b = _qvalue(left), _qvalue(right)
    elif kind == "Semver":
        a, b = _semver_key(left), _semver_key(right)
    else:
        raise ValueError(f"no such overload: {kind} is not ordered")
    return int(a > b) - int(a < b)


def is_less_than(left: dict[str, Any], right: dict[str, Any]) -> bool:
    return compare_to(left, right) < 0


def is_greater_than(left: dict[str, Any], right: dict[str, Any]) -> bool:
    return compare_to(left, right) > 0


# -- URLs (Go's url.ParseRequestURI: absolute URI or absolute path) ------------------------


def _parse_url(text: str) -> urllib.parse.SplitResult:
    if not text or len(text) > 8192 or any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise ValueError(f"URL parse error during conversion from string: {text!r}")
    parts = urllib.parse.urlsplit(text)
    if parts.fragment or "#" in text:
        raise ValueError(f"URL parse error during conversion from string: {text!r}")
    if not parts.scheme and not text.startswith("/"):
        raise ValueError(f"URL parse error during conversion from string: {text!r}")
    if parts.scheme and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", parts.scheme):
        raise ValueError(f"URL parse error during conversion from string: {text!r}")
    return parts


def url(text: str) -> dict[str, str]:
    _parse_url(text)
    return _tagged("URL", text)


def is_url(text: str) -> bool:
    try:
        _parse_url(text)
    except ValueError:
        return False
    return True


def _url(value: dict[str, Any]) -> urllib.parse.SplitResult:
    return _parse_url(_untag(value, "URL"))


def url_scheme(value: dict[str, Any]) -> str:
    return _url(value).scheme


def url_host(value: dict[str, Any]) -> str:
    netloc = _url(value).netloc
    return netloc.rpartition("@")[2]


def url_hostname(value: dict[str, Any]) -> str:
    host = url_host(value)
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.partition(":")[0]


def url_port(value: dict[str, Any]) -> str:
    host = url_host(value)
    if host.startswith("["):
        rest = host[host.find("]") + 1 :]
        return rest[1:] if rest.startswith(":") else ""
    return host.partition(":")[2]


def url_escaped_path(value: dict[str, Any]) -> str:
    return _url(value).path


def url_query(value: dict[str, Any]) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(_url(value).query, keep_blank_values=True)


# -- IP and CIDR -----------------------------------------------------------------------------


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if "%" in text:
        raise ValueError(f"IP address with zone value is not allowed: {text!r}")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f'IP Address "{text}" parse error during conversion from string') from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise ValueError(f"IPv4-mapped IPv6 address is not allowed: {text!r}")
    return address


def ip(text: str) -> dict[str, str]:
    return _tagged("IP", str(_parse_ip(text)))


def is_ip(text: str) -> bool:
    try:
        _parse_ip(text)
    except ValueError:
        return False
    return True


def ip_is_canonical(text: str) -> bool:
    return str(_parse_ip(text)) == text


def _ip(value: dict[str, Any]) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return _parse_ip(_untag(value, "IP"))


def ip_family(value: dict[str, Any]) -> int:
    return _ip(value).version


def ip_is_unspecified(value: dict[str, Any]) -> bool:
    return _ip(value).is_unspecified


def ip_is_loopback(value: dict[str, Any]) -> bool:
    return _ip(value).is_loopback


def ip_is_link_local_multicast(value: dict[str, Any]) -> bool:
    address = _ip(value)
    if address.version == 4:
        return address in ipaddress.ip_network("224.0.0.0/24")
    return address.is_multicast and (int(address) >> 112) & 0xF == 2


def ip_is_link_local_unicast(value: dict[str, Any]) -> bool:
    address = _ip(value)
    if address.version == 4:
        return address in ipaddress.ip_network("169.254.0.0/16")
    return address in ipaddress.ip_network("fe80::/10")


def ip_is_global_unicast(value: dict[str, Any]) -> bool:
    # Go's IP.IsGlobalUnicast: not unspecified, loopback, multicast, link-local or broadcast.
    address = _ip(value)
    if address.is_unspecified or address.is_loopback or address.is_multicast:
        return False
    if ip_is_link_local_unicast(value):
        return False
    return not (address.version == 4 and str(address) == "255.255.255.255")


def _parse_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if "%" in text:
        raise ValueError(f"CIDR with zone value is not allowed: {text!r}")
    address, slash, _ = text.partition("/")
    if not slash:
        raise ValueError(f"network address parse error during conversion from string: {text!r}")
    _parse_ip(address)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(
            f"network address parse error during conversion from string: {text!r}"
        ) from None


def cidr(text: str) -> dict[str, str]:
    _parse_cidr(text)
    address, _, prefix = text.partition("/")
    return _tagged("CIDR", f"{_parse_ip(address)}/{int(prefix)}")


def is_cidr(text: str) -> bool:
    try:
        _parse_cidr(text)
    except ValueError:
        return False
    return True


def _cidr(value: dict[str, Any]) -> tuple[Any, ipaddress.IPv4Network | ipaddress.IPv6Network]:
    text = _untag(value, "CIDR")
    return _parse_ip(text.partition("/")[0]), _parse_cidr(text)


def cidr_contains_ip(value: dict[str, Any], other: dict[str, Any] | str) -> bool:
    address = _parse_ip(other) if isinstance(other, str) else _ip(other)
    network = _cidr(value)[1]
    return address.version == network.version and address in network


def cidr_contains_cidr(value: dict[str, Any], other: dict[str, Any] | str) -> bool:
    inner = _parse_cidr(other) if isinstance(other, str) else _cidr(other)[1]
    outer = _cidr(value)[1]
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def cidr_ip(value: dict[str, Any]) -> dict[str, str]:
    return _tagged("IP", str(_cidr(value)[0]))


def cidr_masked(value: dict[str, Any]) -> dict[str, str]:
    network = _cidr(value)[1]
    return _tagged("CIDR", str(network))


def cidr_prefix_length(value: dict[str, Any]) -> int:
    return _cidr(value)[1].prefixlen
