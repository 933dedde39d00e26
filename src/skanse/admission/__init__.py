"""The admission webhook: AdmissionReview in, decision and JSON Patch out.

The same checks `skanse scan` runs on files run here on every Pod and workload the API
server sends, with the same suppressions (the `ignore.skanse.io/<ID>` annotation and
`.skanse.yaml` entries with expiry). The pipeline, one module per stage:

    review      the AdmissionReview v1 wire format: parse a request, render a response
    policy      the webhook's policy file: profile, mode per namespace, exemptions, images
    evaluate    run the selected checks on one object (shared with `skanse admission audit`)
    images      image signature rules and the verifier interface the signing layer plugs into
    mutate      RFC 6902 patches that add secure defaults (values in `defaults`)
    handler     request bytes -> response bytes, the pure core the server and tests call
    app         the ASGI application (Starlette): endpoints, body limits, metrics, logs
    server      HTTPS only under uvicorn: TLS 1.2+, certificate reload, slow-client limits
    certs       a CA and a serving certificate for the webhook Service
    audit       what the webhook would deny among objects that already run
"""
