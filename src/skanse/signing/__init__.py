"""Cosign-compatible image signatures and attestations, with keys, against a registry.

The modules, left to right: `keys` (Cosign key files, public keys, hints), `gojson` and
`simplesigning` (the legacy payload, byte for byte as Cosign writes it), `bundle` (DSSE,
in-toto statements, Sigstore bundles v0.3), `attach` (the `.sig` tag, OCI 1.1 referrers and
the fallback tag; caps on what a registry can make us read), `sign` and `verify` (the
operations), `policy` (image globs -> keys, threshold and attestations; `verify_image` for
the admission webhook, cached by digest).
"""
