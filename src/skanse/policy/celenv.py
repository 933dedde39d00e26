"""The CEL environment of ValidatingAdmissionPolicy, on cel-expr-python (Google's cel-cpp).

What the runtime brings: the standard library and macros, and the extensions the API server
also enables (strings, lists, sets, optional types, two-variable comprehensions, bindings).
What it lacks is declared here from `skanse.policy.k8slib`: the Kubernetes lists, regex, URL,
quantity, IP, CIDR and semver functions. The runtime cannot add overloads to a function an
extension already declares, return optionals from Python, or carry opaque Python values, so
list `indexOf`/`lastIndexOf`, `format.*().validate()`, `string(<ip>)` and the authorizer are
not offered; an expression that uses them fails to compile with a located error
(docs/policies.md lists the gaps).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel

from skanse.policy import k8slib

__all__ = ["CelCompileError", "CelEnv", "CompiledExpression", "Position", "new_env"]

_EXTENSIONS = """
extensions:
  - name: strings
    version: 3
  - name: lists
  - name: sets
  - name: optional
    version: 2
  - name: two-var-comprehensions
  - name: bindings
"""

_T = cel.Type
_MAP = _T.MAP
_STR = _T.STRING
_LIST = _T.List(_T.DYN)


def _decl(name: str, *overloads: tuple[str, Any, list[Any], bool, Callable[..., Any]]) -> Any:
    return cel.FunctionDecl(
        name,
        [
            cel.Overload(oid, ret, params, is_member=member, impl=impl)
            for oid, ret, params, member, impl in overloads
        ],
    )


def _member(name: str, ret: Any, impl: Callable[..., Any], *args: Any) -> Any:
    return _decl(name, (f"k8s_{name}_{len(args)}", ret, [_MAP, *args], True, impl))


def _functions() -> list[Any]:
    k = k8slib
    b, i, s = _T.BOOL, _T.INT, _STR
    return [
        # lists
        _decl("isSorted", ("k8s_list_isSorted", b, [_LIST], True, k.is_sorted)),
        _decl("sum", ("k8s_list_sum", _T.DYN, [_LIST], True, k.list_sum)),
        _decl("min", ("k8s_list_min", _T.DYN, [_LIST], True, k.list_min)),
        _decl("max", ("k8s_list_max", _T.DYN, [_LIST], True, k.list_max)),
        # regex
        _decl("find", ("k8s_string_find", s, [s, s], True, k.find)),
        _decl(
            "findAll",
            ("k8s_string_findAll", _T.List(s), [s, s], True, k.find_all),
            ("k8s_string_findAll_n", _T.List(s), [s, s, i], True, k.find_all),
        ),
        # URLs
        _decl("url", ("k8s_url", _MAP, [s], False, k.url)),
        _decl("isURL", ("k8s_isURL", b, [s], False, k.is_url)),
        _member("getScheme", s, k.url_scheme),
        _member("getHost", s, k.url_host),
        _member("getHostname", s, k.url_hostname),
        _member("getPort", s, k.url_port),
        _member("getEscapedPath", s, k.url_escaped_path),
        _member("getQuery", _T.Map(s, _T.List(s)), k.url_query),
        # IP and CIDR
        _decl(
            "ip",
            ("k8s_ip_string", _MAP, [s], False, k.ip),
            ("k8s_cidr_ip", _MAP, [_MAP], True, k.cidr_ip),
        ),
        _decl("isIP", ("k8s_isIP", b, [s], False, k.is_ip)),
        _decl("ip.isCanonical", ("k8s_ip_isCanonical", b, [s], False, k.ip_is_canonical)),
        _member("family", i, k.ip_family),
        _member("isUnspecified", b, k.ip_is_unspecified),
        _member("isLoopback", b, k.ip_is_loopback),
        _member("isLinkLocalMulticast", b, k.ip_is_link_local_multicast),
        _member("isLinkLocalUnicast", b, k.ip_is_link_local_unicast),
        _member("isGlobalUnicast", b, k.ip_is_global_unicast),
        _decl("cidr", ("k8s_cidr", _MAP, [s], False, k.cidr)),
        _decl("isCIDR", ("k8s_isCIDR", b, [s], False, k.is_cidr)),
        _decl(
            "containsIP",
            ("k8s_cidr_containsIP_string", b, [_MAP, s], True, k.cidr_contains_ip),
            ("k8s_cidr_containsIP_ip", b, [_MAP, _MAP], True, k.cidr_contains_ip),
        ),
        _decl(
            "containsCIDR",
            ("k8s_cidr_containsCIDR_string", b, [_MAP, s], True, k.cidr_contains_cidr),
            ("k8s_cidr_containsCIDR_cidr", b, [_MAP, _MAP], True, k.cidr_contains_cidr),
        ),
        _member("masked", _MAP, k.cidr_masked),
        _member("prefixLength", i, k.cidr_prefix_length),
        # quantity
        _decl("quantity", ("k8s_quantity", _MAP, [s], False, k.quantity)),
        _decl("isQuantity", ("k8s_isQuantity", b, [s], False, k.is_quantity)),
        _member("sign", i, k.q_sign),
        _member("isInteger", b, k.q_is_integer),
        _member("asInteger", i, k.q_as_integer),
        _member("asApproximateFloat", _T.DOUBLE, k.q_as_float),
        _decl(
            "add",
            ("k8s_quantity_add", _MAP, [_MAP, _MAP], True, k.q_add),
            ("k8s_quantity_add_int", _MAP, [_MAP, i], True, k.q_add),
        ),
        _decl(
            "sub",
            ("k8s_quantity_sub", _MAP, [_MAP, _MAP], True, k.q_sub),
            ("k8s_quantity_sub_int", _MAP, [_MAP, i], True, k.q_sub),
        ),
        _member("mul", _MAP, k.q_mul, i),
        _member("div", _MAP, k.q_div, i),
        _member("divInt", _MAP, k.q_div_int, i),
        _member("isLessThan", b, k.is_less_than, _MAP),
        _member("isGreaterThan", b, k.is_greater_than, _MAP),
        _member("compareTo", i, k.compare_to, _MAP),
        # semver
        _decl(
            "semver",
            ("k8s_semver", _MAP, [s], False, k.semver),
            ("k8s_semver_normalize", _MAP, [s, b], False, k.semver),
        ),
        _decl(
            "isSemver",
            ("k8s_isSemver", b, [s], False, k.is_semver),
            ("k8s_isSemver_normalize", b, [s, b], False, k.is_semver),
        ),
        _member("major", i, k.sv_major),
        _member("minor", i, k.sv_minor),
        _member("patch", i, k.sv_patch),
    ]


@dataclass(frozen=True, slots=True)
class Position:
    """A 1-based line and column inside an expression's text."""

    line: int
    column: int


class CelCompileError(Exception):
    """An expression that does not compile: the runtime's messages, each with its position."""

    def __init__(self, errors: tuple[tuple[Position, str], ...]) -> None:
        super().__init__("; ".join(f"{p.line}:{p.column}: {m}" for p, m in errors))
        self.errors = errors


_ERROR_LINE = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")


def _compile_errors(text: str) -> tuple[tuple[Position, str], ...]:
    found = tuple(
        (Position(int(m.group(1)), int(m.group(2))), m.group(3).strip())
        for m in _ERROR_LINE.finditer(text)
    )
    return found or ((Position(1, 1), text.strip()),)


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """One checked expression and what the cost bound needs to know about it."""

    source: str
    program: Any  # cel.Expression
    result_type: str


class CelEnv:
    """One CEL environment: declared variables (all `dyn`, as the API server's are for
    objects without a schema) plus the Kubernetes functions."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        config = cel.NewEnvConfigFromYaml(_EXTENSIONS)
        self.variables = tuple(variables)
        self._env = cel.NewEnv(config=config, variables=dict(variables), functions=_functions())

    def compile(self, source: str) -> CompiledExpression:
        """Parse and type-check `source`; CelCompileError with positions if it is wrong."""
        try:
            program = self._env.compile(source)
        except RuntimeError as exc:
            raise CelCompileError(_compile_errors(str(exc))) from None
        return CompiledExpression(source, program, program.return_type().name())

    def activation(self, data: Mapping[str, Any]) -> Any:
        return self._env.Activation(data=dict(data))


_ENVS: dict[tuple[str, ...], CelEnv] = {}


def new_env(names: tuple[str, ...]) -> CelEnv:
    """The environment with `names` declared as `dyn` variables (cached: building one costs
    a few milliseconds)."""
    env = _ENVS.get(names)
    if env is None:
        env = CelEnv(dict.fromkeys(names, _T.DYN))
        _ENVS[names] = env
    return env
