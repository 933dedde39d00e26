"""Registry credentials (docker's config.json and credential helpers) and auth challenges.

Lookup follows docker's CLI: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`;
`credHelpers[host]`, then `credsStore`, then `auths[host]` (keys may carry a scheme and a
path, and Docker Hub's key is `https://index.docker.io/v1/`). Credential helpers are run as
`docker-credential-<name> get` with the host on standard input, never through a shell.
Secrets never appear in messages or reprs.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from skanse.errors import ConfigError
from skanse.oci.reference import DOCKER_HUB, DOCKER_HUB_API, DOCKER_HUB_CONFIG_KEY

__all__ = ["Challenge", "Credentials", "DockerConfig", "parse_challenges"]

_MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and a secret (password or token); the secret never shows in repr."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _host_key(key: str) -> str:
    """`https://index.docker.io/v1/` -> `index.docker.io`; `host:5000/path` -> `host:5000`."""
    host = re.sub(r"^[a-z]+://", "", key.strip())
    return host.split("/", 1)[0].lower()


def _hub_aliases(host: str) -> set[str]:
    if host in (DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"):
        return {DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"}
    return {host}


@dataclass(frozen=True, slots=True)
class DockerConfig:
    """Credentials from a docker config.json; empty when there is none."""

    auths: Mapping[str, Credentials] = field(default_factory=dict, repr=False)
    helpers: Mapping[str, str] = field(default_factory=dict)
    store: str | None = None
    path: str | None = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> DockerConfig:
        """Read `path`, or docker's default location; a missing file means no credentials."""
        if path is None:
            base = os.environ.get("DOCKER_CONFIG")
            path = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
        path = Path(path)
        try:
            raw = path.read_bytes()[: _MAX_CONFIG_BYTES + 1]
        except FileNotFoundError:
            return cls(path=str(path))
        except OSError as exc:
            raise ConfigError(
                f"cannot read docker config: {exc.strerror}", path=str(path)
            ) from None
        if len(raw) > _MAX_CONFIG_BYTES:
            raise ConfigError("docker config is larger than 1 MiB", path=str(path))
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"docker config is not valid JSON: {exc}", path=str(path)) from None
        if not isinstance(doc, dict):
            raise ConfigError("docker config is not a JSON object", path=str(path))
        auths: dict[str, Credentials] = {}
        for key, entry in (doc.get("auths") or {}).items():
            if isinstance(entry, dict):
                creds = _entry_credentials(entry, key, str(path))
                if creds is not None:
                    auths[_host_key(key)] = creds
        helpers = {
            _host_key(k): v for k, v in (doc.get("credHelpers") or {}).items() if isinstance(v, str)
        }
        store = doc.get("credsStore") if isinstance(doc.get("credsStore"), str) else None
        return cls(auths, helpers, store, str(path))

    def credentials_for(self, host: str) -> Credentials | None:
        """The credentials docker would use for registry `host`, or None (anonymous)."""
        aliases = _hub_aliases(host.lower())
        for alias in aliases:
            helper = self.helpers.get(alias)
            if helper:
                return _run_helper(
                    helper,
                    DOCKER_HUB_CONFIG_KEY if DOCKER_HUB in aliases and len(aliases) > 1 else alias,
                )
        for alias in aliases:
            if alias in self.auths:
                return self.auths[alias]
        if self.store:
            key = DOCKER_HUB_CONFIG_KEY if len(aliases) > 1 else host
            return _run_helper(self.store, key)
        return None


def _entry_credentials(entry: dict[str, object], key: str, path: str) -> Credentials | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(
                f"auths[{key!r}].auth is not base64 of user:password", path=path
            ) from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise ConfigError(f"auths[{key!r}].auth is not base64 of user:password", path=path)
        return Credentials(user, password)
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str) and name:
        return Credentials(name, secret)
    return None


def _run_helper(helper: str, server: str) -> Credentials | None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", helper):
        raise ConfigError(f"invalid credential helper name {helper!r}")
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise ConfigError(f"credential helper docker-credential-{helper} is not on PATH")
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell, helper name validated
            [program, "get"], input=server.encode(), capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"credential helper {helper} failed: {exc}") from None
    if done.returncode != 0:
        return None  # "credentials not found" is a non-zero exit by the helper protocol
    try:
        doc = json.loads(done.stdout)
        user, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"credential helper {helper} returned malformed JSON") from None
    return Credentials(str(user), str(secret))


@dataclass(frozen=True, slots=True)
class Challenge:
    """One `WWW-Authenticate` challenge: scheme (lower case) and its parameters."""

    scheme: str
    params: Mapping[str, str]


_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TCHARS})\s*=\s*("(?:[^"\\]|\\.)*"|{_TCHARS})\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """Parse `Bearer realm="...",service="...",scope="..."` (and Basic) challenges."""
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        match = re.match(rf"({_TCHARS})\s*", rest)
        if match is None:
            break
        scheme = match.group(1).lower()
        rest = rest[match.end() :]
        params: dict[str, str] = {}
        while True:
            pm = _PARAM.match(rest)
            if pm is None:
                break
            value = pm.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[pm.group(1).lower()] = value
            rest = rest[pm.end() :]
        challenges.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return challenges
