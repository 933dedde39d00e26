"""Container images: references, registries, layouts, archives and safe layer reading.

The modules, left to right: `reference` (parse names), `registry` (distribution API client,
pull and push), `auth` and `cache` (credentials, verified blob cache), `manifest` (strict
parsing with caps), `image` (the four kinds of source), `layers` and `vfs` (apply layers to
an in-memory view, never to the host), `writer` (build images for tests and tools).
"""
