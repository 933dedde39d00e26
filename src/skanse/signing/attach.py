"""Where signatures live in a registry: the legacy `.sig` tag and OCI 1.1 referrers.

Legacy layout (Cosign <= 2, and v3 with `--new-bundle-format=false`): an OCI image manifest at
tag `sha256-<hex>.sig` in the image's repository, one layer per signature. Each layer is a
simple-signing payload blob (`application/vnd.dev.cosign.simplesigning.v1+json`) whose base64
signature sits in the layer annotation `dev.cosignproject.cosign/signature`; the config is an
empty image config whose diff_ids are the layer digests. Signing again appends a layer (a
read-modify-write: two signers racing can lose one signature, as with Cosign).

Bundle layout (Cosign v3's default): a manifest with `artifactType` = the bundle media type,
the empty config `{}`, one layer holding the bundle, and `subject` = the image; pushed by
digest. A registry with the referrers API lists it at `/v2/<repo>/referrers/<digest>`; for one
without (distribution 2.8 answers 404), the image index at tag `sha256-<hex>` (the referrers
fallback tag) lists it, with `artifactType` and annotations on the descriptor.

Reading is bounded: at most `Limits.max_signatures` layers or index entries (Cosign: 1000), a
payload's or bundle's declared size is checked before anything is downloaded, bodies are read
up to that size and must match their digest, and each referrer manifest is fetched and checked
(its subject must be the image) rather than trusting the index's `artifactType`. The place (the
`.sig` manifest, the referrers index) is read at once; the signatures in it are fetched one at
a time as the caller iterates, so a caller that drops each after checking it holds one payload
at a time (1,000 payloads of 1 MiB, or bundles of 64 MiB, are not all in memory together).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from skanse.errors import ImageError, NotFoundError, RegistryClientError, SigningError
from skanse.oci.manifest import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    compute_digest,
    parse_index,
    parse_manifest,
)
from skanse.oci.reference import Reference
from skanse.oci.registry import RegistryClient
from skanse.signing import simplesigning
from skanse.signing.bundle import BUNDLE_MEDIA_TYPE
from skanse.signing.keys import PublicKey

__all__ = [
    "SIGNATURE_ANNOTATION",
    "Attached",
    "Limits",
    "append_legacy_signature",
    "fallback_tag",
    "find_bundles",
    "find_legacy_signatures",
    "resolve",
    "signature_tag",
    "write_referrer",
]

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
_MAX_SIGNATURE_CHARS = 8192  # base64 of a DER ECDSA (or RSA-4096) signature is far shorter


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on what a registry can make a verifier read (Cosign's advisories as numbers)."""

    max_signatures: int = 1000  # layers of a .sig manifest; entries of a referrers index
    max_payload_bytes: int = 1024 * 1024  # one simple-signing payload
    max_bundle_bytes: int = 64 * 1024 * 1024  # one bundle (attestations carry SBOMs)


@dataclass(frozen=True, slots=True)
class Attached:
    """One signature or bundle found next to an image, or why it could not be read."""

    format: str  # "simple-signing" or "bundle"
    where: str  # for people: the tag or manifest and the position
    payload: bytes = b""  # the simple-signing payload, or the bundle JSON
    signature: bytes = b""  # simple-signing only: the decoded annotation
    error: str | None = None
    # the registry could not be read (a network error, an HTTP error, the deadline): a
    # signature that may verify on the next try, so a denial over it is not final
    unread: bool = False


def signature_tag(digest: str) -> str:
    """`sha256-<hex>.sig`: where Cosign's legacy signatures of `digest` live."""
    return digest.replace(":", "-", 1) + ".sig"


def fallback_tag(digest: str) -> str:
    """`sha256-<hex>`: the OCI 1.1 referrers fallback tag of `digest`."""
    return digest.replace(":", "-", 1)


def resolve(client: RegistryClient, ref: Reference) -> Descriptor:
    """What `ref` names now: media type, digest and size of its manifest or index.

    The digest is that of the top-level document, so a multi-arch image is signed and
    verified by its index digest, as Cosign does.
    """
    data, media_type, digest = client.get_manifest(ref)
    return Descriptor(media_type or OCI_MANIFEST, digest, len(data))


# --- reading ----------------------------------------------------------------------------


def find_legacy_signatures(
    client: RegistryClient, ref: Reference, digest: str, limits: Limits
) -> tuple[Iterator[Attached], list[str]]:
    """The layers of the `.sig` manifest of `digest`: (signatures, each payload fetched when
    the iterator reaches it; problems of the place)."""
    tag = signature_tag(digest)
    try:
        data, media_type, _ = client.get_manifest(ref, tag)
        manifest = parse_manifest(data, media_type, reference=f"{ref.repository}:{tag}")
    except NotFoundError:
        return iter(()), []
    except ImageError as exc:
        return iter(()), [f"tag {tag}: {exc.message}"]
    if len(manifest.layers) > limits.max_signatures:
        return iter(()), [
            f"tag {tag} has {len(manifest.layers)} signature layers, over the cap of "
            f"{limits.max_signatures}; none were read"
        ]
    return _legacy_layers(client, ref, tag, manifest.layers, limits), []


def _legacy_layers(
    client: RegistryClient,
    ref: Reference,
    tag: str,
    layers: Sequence[Descriptor],
    limits: Limits,
) -> Iterator[Attached]:
    for i, layer in enumerate(layers):
        yield _legacy_layer(client, ref, layer, f"tag {tag}, layer {i}", limits)


def _legacy_layer(
    client: RegistryClient, ref: Reference, layer: Descriptor, where: str, limits: Limits
) -> Attached:
    def failed(reason: str) -> Attached:
        return Attached("simple-signing", where, error=reason)

    if layer.media_type != simplesigning.MEDIA_TYPE:
        return failed(f"media type {layer.media_type!r} is not a simple-signing payload")
    encoded = layer.annotations.get(SIGNATURE_ANNOTATION)
    if not encoded:
        return failed(f"no {SIGNATURE_ANNOTATION} annotation")
    if len(encoded) > _MAX_SIGNATURE_CHARS:
        return failed("the signature annotation is implausibly long")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except ValueError:
        return failed("the signature annotation is not valid base64")
    if layer.size > limits.max_payload_bytes:
        return failed(
            f"the payload declares {layer.size} bytes, over the {limits.max_payload_bytes}-byte "
            "cap; not downloaded"
        )
    try:
        payload = client.get_blob_bytes(ref, layer, cap=layer.size)
    except ImageError as exc:
        return Attached(
            "simple-signing",
            where,
            error=f"payload {layer.digest}: {exc.message}",
            unread=isinstance(exc, RegistryClientError),
        )
    return Attached("simple-signing", where, payload, signature)


def _referrers(client: RegistryClient, ref: Reference, digest: str) -> tuple[Index | None, str]:
    index = client.get_referrers(ref, digest)
    if index is not None:
        return index, "referrers API"
    tag = fallback_tag(digest)
    try:
        data, media_type, _ = client.get_manifest(ref, tag)
    except NotFoundError:
        return None, f"tag {tag}"
    return parse_index(data, media_type, reference=f"{ref.repository}:{tag}"), f"tag {tag}"


def find_bundles(
    client: RegistryClient,
    ref: Reference,
    digest: str,
    limits: Limits,
    *,
    predicate_type: str | None = None,
) -> tuple[Iterator[Attached], list[str]]:
    """Sigstore bundles that refer to `digest`: (bundles, each manifest and bundle fetched when
    the iterator reaches it; problems of the place).

    With `predicate_type`, entries whose index annotation names another predicate type are
    skipped unread (a wrong label can only hide a bundle, never admit one: what is read is
    checked in full).
    """
    try:
        index, source = _referrers(client, ref, digest)
    except ImageError as exc:
        return iter(()), [f"referrers of {digest}: {exc.message}"]
    if index is None:
        return iter(()), []
    if len(index.manifests) > limits.max_signatures:
        return iter(()), [
            f"{source} lists {len(index.manifests)} referrers, over the cap of "
            f"{limits.max_signatures}; none were read"
        ]
    return _bundles(client, ref, digest, index, source, limits, predicate_type), []


def _bundles(
    client: RegistryClient,
    ref: Reference,
    digest: str,
    index: Index,
    source: str,
    limits: Limits,
    predicate_type: str | None,
) -> Iterator[Attached]:
    for entry in index.manifests:
        if entry.artifact_type and not entry.artifact_type.startswith(BUNDLE_PREFIX):
            continue  # an SBOM or another artifact; a bundle mislabelled here is only missed
        labelled = entry.annotations.get(PREDICATE_ANNOTATION)
        if predicate_type and labelled and labelled != predicate_type:
            continue
        where = f"referrer {entry.digest} ({source})"
        yield _bundle_manifest(client, ref, digest, entry, where, limits)


def _bundle_manifest(
    client: RegistryClient,
    ref: Reference,
    digest: str,
    entry: Descriptor,
    where: str,
    limits: Limits,
) -> Attached:
    def failed(reason: str, exc: ImageError | None = None) -> Attached:
        unread = isinstance(exc, RegistryClientError)
        return Attached("bundle", where, error=reason, unread=unread)

    try:
        data, media_type, _ = client.get_manifest(ref, entry.digest)
        manifest = parse_manifest(data, media_type or entry.media_type, reference=where)
    except ImageError as exc:
        return failed(exc.message, exc)
    if manifest.subject is None or manifest.subject.digest != digest:
        return failed("its subject is not this image")
    bundles = [m for m in manifest.layers if m.media_type.startswith(BUNDLE_PREFIX)]
    if len(manifest.layers) != 1 or len(bundles) != 1:
        return failed("a bundle manifest has exactly one layer, a Sigstore bundle")
    layer = bundles[0]
    if layer.size > limits.max_bundle_bytes:
        return failed(
            f"the bundle declares {layer.size} bytes, over the {limits.max_bundle_bytes}-byte "
            "cap; not downloaded"
        )
    try:
        payload = client.get_blob_bytes(ref, layer, cap=layer.size)
    except ImageError as exc:
        return failed(f"bundle {layer.digest}: {exc.message}", exc)
    return Attached("bundle", where, payload)


# --- writing ----------------------------------------------------------------------------


def _canonical(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _legacy_config(diff_ids: list[str]) -> bytes:
    """go-containerregistry's empty image config, with one history entry per layer."""
    epoch = "0001-01-01T00:00:00Z"
    return _canonical(
        {
            "architecture": "",
            "created": epoch,
            "history": [{"created": epoch} for _ in diff_ids],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        }
    )


def _existing_signatures(client: RegistryClient, ref: Reference, tag: str) -> Manifest | None:
    try:
        data, media_type, _ = client.get_manifest(ref, tag)
    except NotFoundError:
        return None
    try:
        return parse_manifest(data, media_type, reference=f"{ref.repository}:{tag}")
    except ImageError as exc:
        raise SigningError(
            f"{ref.repository}:{tag} holds something that is not a signature manifest "
            f"({exc.message}); refusing to overwrite it"
        ) from None


def append_legacy_signature(
    client: RegistryClient,
    ref: Reference,
    digest: str,
    payload: bytes,
    signature: bytes,
    *,
    verifier: PublicKey | None = None,
    limits: Limits | None = None,
) -> tuple[str, int, bool]:
    """Add a signature layer to `sha256-<hex>.sig`: (tag, layers now, whether one was added).

    Like Cosign's duplicate detection, nothing is added when a layer with the same payload
    already carries a signature that `verifier` (the signer's public key) accepts.
    """
    limits = limits or Limits()
    tag = signature_tag(digest)
    existing = _existing_signatures(client, ref, tag)
    layers = list(existing.layers) if existing is not None else []
    payload_digest = compute_digest(payload)
    if verifier is not None:
        for layer in layers:
            if layer.digest != payload_digest:
                continue
            try:
                old = base64.b64decode(
                    layer.annotations.get(SIGNATURE_ANNOTATION, ""), validate=True
                )
            except ValueError:
                continue
            if verifier.verify(old, payload):
                return tag, len(layers), False
    if len(layers) >= limits.max_signatures:
        raise SigningError(
            f"{ref.repository}:{tag} already has {len(layers)} signatures; verifiers stop "
            f"reading at {limits.max_signatures}"
        )
    client.push_blob(ref, payload, payload_digest)
    layers.append(
        Descriptor(
            simplesigning.MEDIA_TYPE,
            payload_digest,
            len(payload),
            annotations={SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()},
        )
    )
    config = _legacy_config([layer.digest for layer in layers])
    config_digest = client.push_blob(ref, config)
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": Descriptor(OCI_CONFIG, config_digest, len(config)).to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
    )
    client.push_manifest(ref.with_tag(tag), manifest, OCI_MANIFEST)
    return tag, len(layers), True


def write_referrer(
    client: RegistryClient,
    ref: Reference,
    subject: Descriptor,
    bundle: bytes,
    predicate_type: str,
    *,
    now: dt.datetime | None = None,
) -> tuple[str, str]:
    """Attach `bundle` to `subject` as an OCI 1.1 referrer: (its manifest digest, how listed).

    "referrers API" when the registry lists it by itself, else "tag sha256-<hex>" after
    adding it to the fallback index there.
    """
    created = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    annotations: Mapping[str, str] = {
        "org.opencontainers.image.created": created,
        CONTENT_ANNOTATION: "dsse-envelope",
        PREDICATE_ANNOTATION: predicate_type,
    }
    empty_digest = client.push_blob(ref, EMPTY_BLOB)
    bundle_digest = client.push_blob(ref, bundle)
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_MEDIA_TYPE,
            "config": Descriptor(EMPTY_MEDIA_TYPE, empty_digest, len(EMPTY_BLOB)).to_json(),
            "layers": [Descriptor(BUNDLE_MEDIA_TYPE, bundle_digest, len(bundle)).to_json()],
            "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
            "annotations": dict(annotations),
        }
    )
    manifest_digest = compute_digest(manifest)
    client.push_manifest(ref.with_digest(manifest_digest), manifest, OCI_MANIFEST)
    if client.get_referrers(ref, subject.digest) is not None:
        return manifest_digest, "referrers API"
    tag = fallback_tag(subject.digest)
    entry = Descriptor(
        OCI_MANIFEST,
        manifest_digest,
        len(manifest),
        annotations=annotations,
        artifact_type=BUNDLE_MEDIA_TYPE,
    )
    _add_to_fallback_index(client, ref, tag, entry)
    return manifest_digest, f"tag {tag}"


def _add_to_fallback_index(
    client: RegistryClient, ref: Reference, tag: str, entry: Descriptor
) -> None:
    manifests: list[Descriptor] = []
    try:
        data, media_type, _ = client.get_manifest(ref, tag)
    except NotFoundError:
        pass
    else:
        try:
            manifests = list(parse_index(data, media_type, reference=tag).manifests)
        except ImageError as exc:
            raise SigningError(
                f"{ref.repository}:{tag} holds something that is not a referrers index "
                f"({exc.message}); refusing to overwrite it"
            ) from None
    if any(m.digest == entry.digest for m in manifests):
        return
    manifests.append(entry)
    index = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [m.to_json() for m in manifests],
        }
    )
    client.push_manifest(ref.with_tag(tag), index, OCI_INDEX)
