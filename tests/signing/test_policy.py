"""The admission policy: file format, globs, `verify_image` decisions and the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from skanse.errors import SignaturePolicyError
from skanse.oci.reference import parse_reference
from skanse.oci.registry import RegistryClient
from skanse.signing.policy import (
    Decision,
    DecisionCache,
    Policy,
    glob_pattern,
    load_policy,
    parse_policy,
    verify_image,
)
from skanse.signing.sign import PREDICATE_TYPES, attest_image, sign_image
from tests.signing.helpers import new_key, push_test_image


def _write_keys(tmp_path: Path, **keys) -> None:
    for name, key in keys.items():
        (tmp_path / f"{name}.pub").write_bytes(key.public_key().pem())


def _policy(tmp_path: Path, text: str):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return load_policy(path)


@pytest.mark.parametrize(
    ("glob", "repository", "matches"),
    [
        ("registry.example.com/team/*", "registry.example.com/team/app", True),
        ("registry.example.com/team/*", "registry.example.com/team/a/b", False),
        ("registry.example.com/**", "registry.example.com/team/a/b", True),
        ("registry.example.com/**", "registry.example.com.evil.io/x", False),
        ("docker.io/library/nginx", "docker.io/library/nginx", True),
        ("*/library/nginx", "docker.io/library/nginx", True),
        ("127.0.0.1:5000/app?", "127.0.0.1:5000/app1", True),
        ("127.0.0.1:5000/app?", "127.0.0.1:5000/app/", False),
        ("a.io/x.y", "a.io/xzy", False),  # dots are literal
    ],
)
def test_globs(glob: str, repository: str, matches: bool) -> None:
    assert (glob_pattern(glob).fullmatch(repository) is not None) is matches


def test_a_host_spelt_in_capitals_gets_the_rule_of_its_lower_case_name(tmp_path: Path) -> None:
    # host names are case-insensitive: LOCALHOST:28517 is localhost:28517 and must not fall
    # through to the weaker catch-all rule
    a, b = new_key(), new_key()
    _write_keys(tmp_path, a=a, b=b)
    policy = _policy(
        tmp_path,
        HEADER
        + """\
keys: {a: a.pub, b: b.pub}
images:
  - glob: "localhost:28517/demo/**"
    keys: [a, b]
    threshold: 2
  - glob: "REG.EXAMPLE/team/*"
    keys: [a, b]
    threshold: 2
  - glob: "**"
    keys: [a]
""",
    )
    for text in (
        "LOCALHOST:28517/demo/app:1",
        "LocalHost:28517/demo/app@sha256:" + "0" * 64,
        "reg.example/team/app",
        "Reg.Example:443/team/app",
    ):
        rule = policy.rule_for(parse_reference(text))
        assert rule is not None and rule.threshold == 2, text


def test_policy_file_is_read_with_keys_rules_and_cache_settings(tmp_path: Path) -> None:
    a, b = new_key(), new_key()
    _write_keys(tmp_path, a=a)
    pem = b.public_key().pem().decode().replace("\n", "\n      ")
    policy = _policy(
        tmp_path,
        f"""\
apiVersion: skanse.io/v1alpha1
kind: ImagePolicy
keys:
  ci: a.pub
  release:
    pem: |
      {pem}
images:
  - glob: "registry.example.com/payments/**"
    keys: [ci, release]
    threshold: 2
    requireReference: true
    attestations:
      - type: cyclonedx
        keys: [ci]
  - glob: "registry.k8s.io/**"
    allow: true
default: allow
cache: {{size: 7, ttl: 60, negativeTtl: 1}}
""",
    )
    first, second = policy.rules
    assert [k.name for k in first.keys] == ["ci", "release"]
    assert first.threshold == 2 and first.require_reference
    assert first.attestations[0].predicate_type == "https://cyclonedx.org/bom"
    assert [k.name for k in first.attestations[0].keys] == ["ci"]
    assert second.allow and policy.default_allow
    assert (policy.cache.size, policy.cache.ttl, policy.cache.negative_ttl) == (7, 60, 1)
    assert policy.rule_for(parse_reference("registry.k8s.io/pause:3.9")) is second
    assert policy.rule_for(parse_reference("nginx")) is None


HEADER = "apiVersion: skanse.io/v1alpha1\nkind: ImagePolicy\n"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("keys: {ci: a.pub}\nimages: [{glob: x, keys: [nope]}]\n", "undefined key(s) nope"),
        ("keys: {ci: a.pub}\nimages: [{glob: x, keys: [ci], threshold: 2}]\n", "threshold 2"),
        ("keys: {ci: a.pub}\nimages: [{glob: x, keys: [ci], allow: true}]\n", "takes no keys"),
        ("images: [{glob: x}]\n", "a rule needs keys"),
        ("keys: {ci: a.pub}\nimages: [{glob: x, keys: [ci], colour: red}]\n", "line 4"),
        (
            "keys: {ci: a.pub}\nimages: [{glob: x, keys: [ci], attestations: [{type: nope}]}]\n",
            "unknown attestation type 'nope'",
        ),
        ("keys: {ci: missing.pub}\nimages: [{glob: x, keys: [ci]}]\n", "missing.pub"),
        ("keys: {ci: {path: a.pub, pem: x}}\nimages: []\n", "exactly one of path and pem"),
        ("keys: {ci: {pem: nonsense}}\nimages: []\n", "no PEM block"),
        ("images: [\n", "invalid YAML"),
        ("images: []\nimages: []\n", "duplicate"),
        ("images: []\ndefault: maybe\n", "default"),
    ],
)
def test_bad_policy_files_name_the_problem(tmp_path: Path, body: str, fragment: str) -> None:
    _write_keys(tmp_path, a=new_key())
    with pytest.raises(SignaturePolicyError) as info:
        _policy(tmp_path, HEADER + body)
    assert fragment in info.value.diagnostics()
    assert "policy.yaml" in info.value.diagnostics()


def test_wrong_api_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SignaturePolicyError, match="apiVersion"):
        parse_policy(b"apiVersion: v2\nkind: ImagePolicy\nimages: []\n", base_dir=tmp_path)


def test_decision_cache_is_bounded_and_expires() -> None:
    now = [0.0]
    cache = DecisionCache(2, ttl=10, negative_ttl=1, clock=lambda: now[0])
    allow, deny = Decision(True, "ok", "i"), Decision(False, "no", "i")
    cache.put(("r", "a", "1"), allow)
    cache.put(("r", "a", "2"), allow)
    assert cache.get(("r", "a", "1")) is allow  # now the most recently used
    cache.put(("r", "a", "3"), deny)
    assert len(cache) == 2
    assert cache.get(("r", "a", "2")) is None  # the least recently used went
    now[0] = 1.5
    assert cache.get(("r", "a", "3")) is None  # denials expire sooner
    assert cache.get(("r", "a", "1")) is allow
    now[0] = 10.0
    assert cache.get(("r", "a", "1")) is None
    assert DecisionCache(0).get(("r", "a", "1")) is None


class _NoNetwork(RegistryClient):
    """A client that fails the test if it is used at all."""

    def _send(self, *args, **kwargs):
        raise AssertionError("the network was used")


@pytest.mark.registry
def test_verify_image_decisions_and_cache(registry, tmp_path: Path) -> None:
    key, other = new_key(), new_key()
    _write_keys(tmp_path, ci=key, other=other)
    client = registry.client(tmp_path / "cache")
    signed = registry.ref("policy/signed:1.0")
    unsigned = registry.ref("policy/unsigned:1.0")
    digest = push_test_image(client, signed, b"signed")
    push_test_image(client, unsigned, b"unsigned")
    sign_image(client, signed, key)
    policy = _policy(
        tmp_path,
        HEADER
        + f"""\
keys: {{ci: ci.pub, other: other.pub}}
images:
  - glob: "{registry.host}/policy/signed"
    keys: [ci]
  - glob: "{registry.host}/policy/two"
    keys: [ci, other]
    threshold: 2
  - glob: "{registry.host}/exempt/**"
    allow: true
  - glob: "{registry.host}/policy/**"
    keys: [ci]
""",
    )
    decision = verify_image(str(signed), policy, client=client)
    assert decision.allowed and not decision.cached
    assert decision.digest == digest and decision.verified_keys == ("ci",)
    assert decision.rule == f"{registry.host}/policy/signed"
    # by digest: a cache hit needs no network at all
    pinned = str(signed.with_digest(digest))
    hit = verify_image(pinned, policy, client=_NoNetwork())
    assert hit.allowed and hit.cached and hit.image == pinned

    denied = verify_image(str(unsigned), policy, client=client)
    assert not denied.allowed and "no signature found" in denied.reason

    # k-of-n in the policy
    two = registry.ref("policy/two:1.0")
    push_test_image(client, two, b"two")
    sign_image(client, two, key)
    assert "only 1 of the 2" in verify_image(str(two), policy, client=client).reason
    sign_image(client, two, other)
    policy.cache.clear()
    assert verify_image(str(two), policy, client=client).allowed

    exempt = verify_image(f"{registry.host}/exempt/anything:1", policy, client=_NoNetwork())
    assert exempt.allowed and "not verified" in exempt.reason
    nomatch = verify_image("docker.io/library/nginx:1.27", policy, client=_NoNetwork())
    assert not nomatch.allowed and "denied by default" in nomatch.reason
    bad = verify_image("Not A Reference", policy, client=_NoNetwork())
    assert not bad.allowed and bad.reason.startswith("invalid image reference")
    client.close()


@pytest.mark.registry
def test_verify_image_required_attestation(registry, tmp_path: Path) -> None:
    key = new_key()
    _write_keys(tmp_path, ci=key)
    client = registry.client(tmp_path / "cache")
    ref = registry.ref("policy/attested:1.0")
    push_test_image(client, ref, b"attested")
    sign_image(client, ref, key)
    policy = _policy(
        tmp_path,
        HEADER
        + f"""\
keys: {{ci: ci.pub}}
images:
  - glob: "{registry.host}/policy/attested"
    keys: [ci]
    attestations: [{{type: cyclonedx}}]
""",
    )
    first = verify_image(str(ref), policy, client=client)
    assert not first.allowed and "attestation https://cyclonedx.org/bom" in first.reason
    attest_image(client, ref, key, PREDICATE_TYPES["cyclonedx"], {"bomFormat": "CycloneDX"})
    policy.cache.clear()
    second = verify_image(str(ref), policy, client=client)
    assert second.allowed, second.reason
    client.close()


def test_an_unreachable_registry_denies_and_is_not_cached(tmp_path: Path) -> None:
    from skanse.oci.registry import RegistryOptions
    from tests._registry import free_port

    key = new_key()
    _write_keys(tmp_path, ci=key)
    policy = _policy(tmp_path, HEADER + "keys: {ci: ci.pub}\nimages: [{glob: '**', keys: [ci]}]\n")
    client = RegistryClient(RegistryOptions(timeout=2))
    ref = f"127.0.0.1:{free_port()}/app@sha256:" + "ab" * 32
    decision = verify_image(ref, policy, client=client)
    assert not decision.allowed
    # said as the webhook labels it: "could not check", not a failed check (docs/signing.md)
    assert decision.reason.startswith("could not check: referrers of")
    assert decision.could_not_check
    assert "cannot reach" in decision.reason
    assert not decision.final and len(policy.cache) == 0
    # a tag cannot even be resolved: denied as well, never an exception
    tag = verify_image(ref.split("@")[0] + ":1.0", policy, client=client)
    assert not tag.allowed and tag.reason.startswith("could not check: ")


def test_a_registry_too_slow_for_the_deadline_is_could_not_check_and_not_cached(
    tmp_path: Path,
) -> None:
    # each payload is answered inside its own request deadline; together they outlast the
    # verification's: denied as "could not check", never final, so the next call asks again
    import time

    from skanse.oci.registry import RegistryOptions
    from tests.oci.test_registry_errors import Server
    from tests.signing.helpers import dribbled_signatures

    key = new_key()
    _write_keys(tmp_path, ci=key)
    policy = _policy(tmp_path, HEADER + "keys: {ci: ci.pub}\nimages: [{glob: '**', keys: [ci]}]\n")
    digest = "sha256:" + "ab" * 32
    server = Server()
    try:
        dribbled_signatures(server, digest, 8)
        client = RegistryClient(RegistryOptions(timeout=5, request_deadline=0.5))
        ref = f"{server.host}/team/app@{digest}"
        start = time.monotonic()
        decision = verify_image(ref, policy, client=client, deadline=1.0)
        elapsed = time.monotonic() - start
        asked = len(server.seen)
        again = verify_image(ref, policy, client=client, deadline=1.0)
        asked_again = len(server.seen) - asked
    finally:
        server.close()
    assert not decision.allowed and not decision.final
    assert decision.reason.startswith(
        "could not check: the registry did not answer within the 1 s the whole verification "
        "may take"
    )
    assert decision.digest == digest
    assert elapsed < 3 * 1.0  # a bound on a timeout, generous for a loaded machine
    assert len(policy.cache) == 0
    assert not again.allowed and not again.cached and asked_again > 0


@pytest.mark.registry
def test_a_verification_within_its_deadline_is_unaffected(registry, tmp_path: Path) -> None:
    key = new_key()
    _write_keys(tmp_path, ci=key)
    client = registry.client(tmp_path / "cache")
    ref = registry.ref("policy/timely:1.0")
    digest = push_test_image(client, ref, b"timely")
    sign_image(client, ref, key)
    policy = _policy(tmp_path, HEADER + "keys: {ci: ci.pub}\nimages: [{glob: '**', keys: [ci]}]\n")
    decision = verify_image(str(ref), policy, client=client, deadline=10.0)
    assert decision.allowed and decision.final and decision.digest == digest
    # final, so cached: the digest is then decided with no request at all
    hit = verify_image(str(ref.with_digest(digest)), policy, client=_NoNetwork(), deadline=10.0)
    assert hit.allowed and hit.cached
    client.close()


# -- a registry that stalls: the breaker and the cap per host ------------------------------


def _stalled_policy(tmp_path: Path, registries: str = "") -> Policy:
    _write_keys(tmp_path, ci=new_key())
    return _policy(
        tmp_path,
        HEADER + "keys: {ci: ci.pub}\nimages: [{glob: '**', keys: [ci]}]\n" + registries,
    )


def test_a_registry_that_never_answers_opens_its_circuit(tmp_path: Path) -> None:
    # reported: each image on a registry that accepts and never answers held a verifier
    # thread for the whole deadline, every time. After `failures` such verifications in a
    # row the circuit opens: the registry is not asked again until the cool-down has passed
    from skanse.oci.registry import RegistryOptions
    from tests.signing.helpers import StallingRegistry

    policy = _stalled_policy(tmp_path)  # defaults: 3 failures open it for 30 s
    stalling = StallingRegistry()
    try:
        client = RegistryClient(RegistryOptions(timeout=5))
        decisions = [
            verify_image(
                f"{stalling.host}/team/app@sha256:{i:064x}", policy, deadline=0.2, client=client
            )
            for i in range(6)
        ]
        connections = stalling.connections
    finally:
        stalling.close()
    assert all(not d.allowed and d.could_not_check for d in decisions)
    # the first three waited for the registry (one connection each), the last three did not
    assert connections == 3
    for d in decisions[3:]:
        assert d.reason.startswith(
            f"could not check: registry {stalling.host} unreachable (circuit open: 3 "
            "verifications in a row got no answer"
        )
    assert len(policy.cache) == 0  # never final


def test_a_registry_that_answers_keeps_its_circuit_closed(tmp_path: Path) -> None:
    # silence counts, answers do not: a pod author naming missing tags (404s) on a registry
    # the cluster relies on cannot make it fail fast for everyone else
    from skanse.oci.registry import RegistryOptions
    from tests.oci.test_registry_errors import Server

    policy = _stalled_policy(tmp_path)  # 3 failures would open it
    server = Server()
    try:
        client = RegistryClient(RegistryOptions(timeout=5))
        decisions = [
            verify_image(f"{server.host}/team/app:missing{i}", policy, deadline=5, client=client)
            for i in range(4)
        ]
    finally:
        server.close()
    assert all(d.could_not_check and "not found (404)" in d.reason for d in decisions)
    assert len(server.seen) == 4  # each one asked: the circuit stayed closed
    assert not policy.breakers.is_open(server.host)


def test_one_registry_holds_at_most_per_host_verifications(tmp_path: Path) -> None:
    # the verifications past `perHost` for one registry fail at once instead of waiting on
    # it, so the verifier's other threads stay free for other registries
    import threading

    from skanse.oci.registry import RegistryOptions
    from tests.signing.helpers import StallingRegistry

    policy = _stalled_policy(tmp_path)  # default: 4 per registry
    stalling = StallingRegistry()
    start = threading.Barrier(8)
    decisions: list[Decision] = []

    def verify(i: int) -> None:
        client = RegistryClient(RegistryOptions(timeout=5))
        start.wait()
        image = f"{stalling.host}/team/app@sha256:{i:064x}"
        decisions.append(verify_image(image, policy, deadline=2.0, client=client))

    threads = [threading.Thread(target=verify, args=(i,)) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        connections = stalling.connections
    finally:
        stalling.close()
    assert connections == 4
    busy = [d for d in decisions if "busy" in d.reason]
    assert len(busy) == 4 and all(d.could_not_check for d in decisions)
    assert busy[0].reason.startswith(
        f"could not check: registry {stalling.host} busy: 4 verifications are already waiting"
    )


def test_the_registry_bounds_are_read_from_the_policy(tmp_path: Path) -> None:
    policy = _stalled_policy(
        tmp_path, "registries: {perHost: 2, failures: 5, window: 60, cooldown: 120}\n"
    )
    settings = policy.breakers.settings
    assert (settings.per_host, settings.failures, settings.window, settings.cooldown) == (
        2,
        5,
        60,
        120,
    )
    with pytest.raises(SignaturePolicyError, match="perHost"):
        _stalled_policy(tmp_path, "registries: {perHost: 0}\n")
