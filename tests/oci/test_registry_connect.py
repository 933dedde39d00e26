"""Resolving and connecting count against a request's deadline (skanse.oci._connect).

The resolver is real: each test runs in a child process in fresh mount and network
namespaces, whose /etc/resolv.conf names a nameserver on the namespace's own loopback that
this test plays (a registry's domain answers as slowly as its owner likes). Nothing leaves
the namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root for mount and network namespaces"
)

# The child: loopback up, resolv.conf bind-mounted to a nameserver on 127.0.0.1:53 that
# records each query's name and answers none, then the test's own lines (`BODY`).
_CHILD = """
import json, socket, subprocess, sys, threading, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
conf = sys.argv[1]
with open(conf, "w") as handle:
    handle.write("nameserver 127.0.0.1\\noptions timeout:30 attempts:2\\n")
subprocess.run(["mount", "--bind", conf, "/etc/resolv.conf"], check=True)
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind(("127.0.0.1", 53))
asked = []

def silent():
    while True:
        data, _ = dns.recvfrom(4096)
        labels, at = [], 12
        while data[at]:
            labels.append(data[at + 1 : at + 1 + data[at]].decode())
            at += data[at] + 1
        asked.append(".".join(labels))

threading.Thread(target=silent, daemon=True).start()
from skanse.errors import SkanseError
from skanse.oci.reference import parse_reference
from skanse.oci.registry import RegistryClient, RegistryOptions
out = {}
"""


def _in_namespaces(tmp_path: Path, body: str) -> dict[str, object]:
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("ip") is None:
        pytest.skip("unshare (util-linux) and ip (iproute2) are needed")
    script = _CHILD + body + "\nout['asked'] = asked\nprint(json.dumps(out))\n"
    run = subprocess.run(
        [unshare, "--mount", "--net", sys.executable, "-c", script, str(tmp_path / "resolv")],
        capture_output=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    if run.returncode != 0 and b"unshare failed" in run.stderr:
        pytest.skip(f"namespaces unavailable: {run.stderr.decode().strip()}")
    assert run.returncode == 0, run.stderr.decode()
    result: dict[str, object] = json.loads(run.stdout)
    return result


def test_a_resolver_that_never_answers_is_bound_by_the_deadline(tmp_path: Path) -> None:
    # reported: resolution had no bound but the resolver's (here 2 attempts of 30 s: a
    # minute), so a registry whose nameserver stalls held a verification thread long past
    # `deadline()`. Now the lookup gets what the deadline leaves, and a second request for
    # the same name waits on the lookup already in flight instead of starting another.
    out = _in_namespaces(
        tmp_path,
        """
client = RegistryClient(RegistryOptions(timeout=60))
ref = parse_reference("registry.stalls.test/team/app:1.0")
errors = []
for _ in range(2):
    try:
        with client.deadline(0.5):
            client.get_manifest(ref)
    except SkanseError as exc:
        errors.append(exc.diagnostics())
out["errors"] = errors
""",
    )
    errors = out["errors"]
    assert isinstance(errors, list) and len(errors) == 2
    for error in errors:
        assert (
            "registry.stalls.test was not reached within the 0.5 s given to all requests together"
        ) in error
    # one lookup (an A and an AAAA query at most) for both requests
    asked = out["asked"]
    assert isinstance(asked, list) and 1 <= len(asked) <= 2
    assert set(asked) == {"registry.stalls.test"}


def test_stalled_lookups_are_capped_and_the_next_name_fails_at_once(tmp_path: Path) -> None:
    # each stalled lookup holds a thread until the resolver gives up; past MAX_LOOKUPS of
    # them a new name is refused without a lookup (fail closed) instead of adding threads
    out = _in_namespaces(
        tmp_path,
        """
from skanse.oci import _connect
_connect.MAX_LOOKUPS = 2
client = RegistryClient(RegistryOptions(timeout=60))
errors = []
for name in ("a.stalls.test", "b.stalls.test", "c.stalls.test"):
    try:
        with client.deadline(0.3):
            client.get_manifest(parse_reference(name + "/team/app:1.0"))
    except SkanseError as exc:
        errors.append(exc.diagnostics())
time.sleep(0.2)  # any query c.stalls.test would have sent has arrived
out["errors"] = errors
""",
    )
    errors = out["errors"]
    assert isinstance(errors, list) and len(errors) == 3
    assert "a.stalls.test was not reached within the 0.3 s" in errors[0]
    assert "b.stalls.test was not reached within the 0.3 s" in errors[1]
    assert "cannot reach c.stalls.test" in errors[2]
    assert "2 name lookups are already waiting for the resolver" in errors[2]
    asked = out["asked"]
    assert isinstance(asked, list) and set(asked) == {"a.stalls.test", "b.stalls.test"}
