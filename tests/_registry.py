"""Real registries for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1.

Three flavours, each a session fixture with storage in a temp dir:
- `registry`: anonymous;
- `basic_registry`: htpasswd (bcrypt) basic auth, user `tester` / `s3cret-pass`;
- `token_registry`: bearer tokens from a small token server started here, signed with an
  ES256 key whose self-signed certificate the registry trusts (distribution's `token` auth).
Each skips with a clear reason when the `docker-registry` binary is missing
(`make test` installs it: APT_PACKAGES in the Makefile).
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from skanse.oci.auth import DockerConfig
from skanse.oci.cache import BlobCache
from skanse.oci.reference import Reference, parse_reference
from skanse.oci.registry import RegistryClient, RegistryOptions

USER, PASSWORD = "tester", "s3cret-pass"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalRegistry:
    host: str
    storage: Path
    process: subprocess.Popen[bytes]
    credentials: DockerConfig = field(default_factory=DockerConfig)

    def ref(self, name: str) -> Reference:
        return parse_reference(f"{self.host}/{name}")

    def client(self, cache_dir: Path, **options: Any) -> RegistryClient:
        return RegistryClient(
            RegistryOptions(**options), cache=BlobCache(cache_dir), credentials=self.credentials
        )


def _start(tmp: Path, auth: str) -> LocalRegistry:
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip(
            "docker-registry is not installed (apt-get install docker-registry; make test does)"
        )
    port = free_port()
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    config = tmp / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}', secret: {secrets.token_hex(16)}}}\n" + auth
    )
    with (tmp / "registry.log").open("wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1)
            break
        except urllib.error.HTTPError:
            break  # 401: up, and asking for credentials
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"docker-registry did not start: {(tmp / 'registry.log').read_text()[-2000:]}"
                ) from None
            time.sleep(0.05)
    return LocalRegistry(host, tmp / "data", process)


def _stop(registry: LocalRegistry) -> None:
    registry.process.terminate()
    try:
        registry.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        registry.process.kill()
        registry.process.wait()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """An anonymous registry on 127.0.0.1 for the whole session."""
    reg = _start(tmp_path_factory.mktemp("registry"), "")
    yield reg
    _stop(reg)


def _docker_config(tmp: Path, host: str) -> DockerConfig:
    path = tmp / "docker-config.json"
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return DockerConfig.load(path)


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A registry with htpasswd basic auth; `.credentials` holds a matching docker config."""
    import bcrypt

    tmp = tmp_path_factory.mktemp("registry-basic")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp / "htpasswd").write_text(f"{USER}:{hashed}\n")
    reg = _start(tmp, f"auth: {{htpasswd: {{realm: skanse-test, path: {tmp / 'htpasswd'}}}}}\n")
    reg.credentials = _docker_config(tmp, reg.host)
    yield reg
    _stop(reg)


class _TokenServer:
    """Issues distribution-style JWTs (ES256, x5c header) for USER/PASSWORD only."""

    def __init__(self, tmp: Path) -> None:
        import datetime as dt

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skanse-test-token-issuer")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = tmp / "token-issuer.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.der = self.cert.public_bytes(serialization.Encoding.DER)
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                import urllib.parse

                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                auth = self.headers.get("Authorization", "")
                server.requests.append({"scope": query.get("scope", ""), "auth": auth})
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if auth != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.token(query)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def token(self, query: dict[str, str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        access = []
        for scope in query.get("scope", "").split(" "):
            parts = scope.split(":")
            if len(parts) == 3:
                access.append({"type": parts[0], "name": parts[1], "actions": parts[2].split(",")})
        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "x5c": [base64.b64encode(self.der).decode()]}
        claims = {
            "iss": "skanse-test-issuer",
            "sub": USER,
            "aud": query.get("service", ""),
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry, Any]]:
    """A registry with bearer-token auth, and the token server (`.requests` records calls)."""
    tmp = tmp_path_factory.mktemp("registry-token")
    tokens = _TokenServer(tmp)
    reg = _start(
        tmp,
        "auth:\n  token:\n"
        f"    realm: http://127.0.0.1:{tokens.port}/token\n"
        "    service: skanse-test-registry\n"
        "    issuer: skanse-test-issuer\n"
        f"    rootcertbundle: {tokens.cert_path}\n",
    )
    reg.credentials = _docker_config(tmp, reg.host)
    yield reg, tokens
    _stop(reg)
    tokens.close()
