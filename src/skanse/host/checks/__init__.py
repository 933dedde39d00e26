"""Host checks: each takes the facts of a host root, not a manifest, so they live in their own
registry (`HOST_REGISTRY`, in `skanse.host.checks._all`) with fixture-tree examples."""
