"""Host hardening audit: kernel parameters, kubelet, container runtime and kernel isolation,
all read through a root path (`skanse.host.root.HostRoot`) so that fixture trees, a mounted
node file system and the live machine are audited by the same code."""
