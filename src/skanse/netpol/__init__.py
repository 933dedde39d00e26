"""Kubernetes NetworkPolicy analysis: what is really allowed, why, and policies that make
the zero-trust intent true.

The pipeline: `load` reads manifests into a `NetworkModel` (namespaces, workloads, services,
policies; invalid policies become problems), `engine` computes every allowed connection,
`explain` says which policies and rules decide one connection, `diff` compares two results,
`render` writes them, and `generate` writes policies from a declared service graph and proves
them with the engine before anything is written.
"""
