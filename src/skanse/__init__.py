"""skanse: zero-trust container security in one tool, from the Dockerfile to the kernel."""

__version__ = "0.1.0"
