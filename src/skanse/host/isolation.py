"""Is this a dedicated kernel or a shared one? Virtualization and container detection.

Signals are collected independently and all reported, then weighed; no single marker file
decides. The trap this is built around: systemd-detect-virt says "docker" on a Firecracker
microVM whose root file system was built from a Docker image and still holds an empty
`/.dockerenv`. Here `/.dockerenv` alone is a *weak* signal that counts only when a namespace,
cgroup or root-filesystem signal agrees.

Sources of the signal tables: systemd src/basic/virt.c (DMI vendor prefixes, CPUID leaf
0x40000000 signatures, container detection order) and linux include/linux/proc_ns.h (the
inode numbers of the initial namespaces).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from skanse.errors import FactUnavailable
from skanse.host.root import HostRoot

__all__ = ["Evidence", "Isolation", "detect_isolation"]

# CPUID leaf 0x40000000 vendor signatures (EBX, ECX, EDX as 12 bytes).
_CPUID_VENDORS = {
    b"KVMKVMKVM\0\0\0": "kvm",
    b"Linux KVM Hv": "kvm",
    b"TCGTCGTCGTCG": "qemu",
    b"XenVMMXenVMM": "xen",
    b"VMwareVMware": "vmware",
    b"Microsoft Hv": "microsoft",
    b"bhyve bhyve ": "bhyve",
    b"QNXQVMBSQG\0\0": "qnx",
    b"ACRNACRNACRN": "acrn",
    b"SRESRESRESRE": "sre",
}
# DMI vendor/product prefixes -> hypervisor (systemd virt.c dmi_vendor_table, plus Cloud
# Hypervisor, which names itself in DMI).
_DMI_PREFIXES = (
    ("KVM", "kvm"),
    ("OpenStack", "kvm"),
    ("KubeVirt", "kvm"),
    ("Amazon EC2", "amazon"),
    ("QEMU", "qemu"),
    ("VMware", "vmware"),
    ("VMW", "vmware"),
    ("innotek GmbH", "oracle"),
    ("VirtualBox", "oracle"),
    ("Oracle Corporation", "oracle"),
    ("Xen", "xen"),
    ("Bochs", "bochs"),
    ("Parallels", "parallels"),
    ("BHYVE", "bhyve"),
    ("Hyper-V", "microsoft"),
    ("Apple Virtualization", "apple"),
    ("Google Compute Engine", "google"),
    ("Cloud Hypervisor", "kvm"),
)
_DMI_FILES = ("sys_vendor", "product_name", "board_vendor", "bios_vendor", "product_version")
# include/linux/proc_ns.h: the initial namespaces have fixed inode numbers.
_INITIAL_NS = {"pid": 0xEFFFFFFC, "user": 0xEFFFFFFD, "cgroup": 0xEFFFFFFB}
_VIRTIO_VENDOR = "0x1af4"
_CGROUP_HINTS = (
    ("/docker/", "docker"),
    ("docker-", "docker"),
    ("/lxc/", "lxc"),
    ("lxc.payload", "lxc"),
    ("/libpod", "podman"),
    ("libpod-", "podman"),
    ("/kubepods", "kubernetes pod"),
    ("machine.slice", "systemd-nspawn or libvirt"),
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One observation: what was read where, and what it points to."""

    signal: str
    source: str
    value: str
    points_to: str  # "vm:kvm", "container:lxc", "no container", "hint:docker", ...

    def __str__(self) -> str:
        return f"{self.signal} ({self.source}) = {self.value} -> {self.points_to}"


@dataclass(frozen=True, slots=True)
class Isolation:
    vm: str | None  # hypervisor family: kvm, xen, vmware, microsoft, qemu, ... or vm-other
    vmm: str | None  # the product, when the signals tell: Firecracker, Amazon EC2, ...
    container: str | None  # lxc, openvz, docker, podman, wsl, systemd-nspawn, container-other
    kernel: str  # "dedicated", "shared" or "unknown"
    evidence: tuple[Evidence, ...]
    notes: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()  # signals that could not be read, with the reason

    def summary(self) -> str:
        if self.container:
            name = _CONTAINER_NAMES.get(self.container, self.container)
            layer = f"{_article(name)} {name} container (shared kernel)"
            return f"{layer} inside {self.vm_phrase()}" if self.vm else layer
        if self.vm and self.kernel == "unknown":
            return f"{self.vm_phrase()}; whether a container runs inside it is unknown"
        if self.vm:
            return f"{self.vm_phrase()} (dedicated kernel)"
        if self.kernel == "dedicated":
            return "bare metal (dedicated kernel, no hypervisor found)"
        return "unknown (the signals that tell could not be read)"

    def vm_phrase(self) -> str:
        """'a KVM/Firecracker virtual machine', 'a virtual machine (hypervisor unidentified)'."""
        assert self.vm
        if self.vm == "vm-other":
            return "a virtual machine (hypervisor unidentified)"
        name = _VM_NAMES.get(self.vm, self.vm)
        if self.vmm:
            name = f"{name}/{self.vmm}"
        return f"{_article(name)} {name} virtual machine"


def _article(word: str) -> str:
    return "an" if word[:1].upper() in "AEIOU" or word.startswith(("LXC", "OpenVZ")) else "a"


_CONTAINER_NAMES = {
    "lxc": "LXC",
    "lxc-libvirt": "LXC (libvirt)",
    "openvz": "OpenVZ/Virtuozzo",
    "docker": "Docker",
    "podman": "Podman",
    "wsl": "WSL",
    "container-other": "unidentified",  # namespaced, but no manager names itself
}
_VM_NAMES = {
    "kvm": "KVM",
    "qemu": "QEMU",
    "xen": "Xen",
    "vmware": "VMware",
    "microsoft": "Hyper-V",
    "oracle": "VirtualBox",
}


def _read(root: HostRoot, path: str, unreadable: list[str]) -> str | None:
    try:
        return root.read_text(path, limit=1024 * 1024)
    except FileNotFoundError:
        return None
    except FactUnavailable as exc:
        unreadable.append(exc.diagnostics())
        return None


def _cpuid_signature(root: HostRoot, unreadable: list[str]) -> bytes | None:
    """Leaf 0x40000000 through the cpuid driver (/dev/cpu/0/cpuid), only on the live host.

    The driver answers a 16-byte read at offset = leaf with EAX, EBX, ECX, EDX; it needs root
    and the cpuid module. Executing CPUID ourselves would need machine code: not worth it.
    """
    if not root.is_live:
        return None
    try:
        fd = os.open("/dev/cpu/0/cpuid", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        unreadable.append(f"/dev/cpu/0/cpuid: {exc.strerror} (CPUID needs root)")
        return None
    try:
        leaf1 = os.pread(fd, 16, 1)
        if len(leaf1) != 16 or not struct.unpack("<4I", leaf1)[2] >> 31:
            return b""  # no hypervisor-present bit: the leaf would be garbage
        leaf = os.pread(fd, 16, 0x40000000)
        if len(leaf) != 16:
            return None
        _eax, ebx, ecx, edx = struct.unpack("<4I", leaf)
        return struct.pack("<3I", ebx, ecx, edx)
    except OSError as exc:
        unreadable.append(f"/dev/cpu/0/cpuid: {exc.strerror}")
        return None
    finally:
        os.close(fd)


def _namespace_inode(text: str) -> int | None:
    # "pid:[4026531836]"
    start, end = text.find("["), text.find("]")
    if start < 0 or end < start:
        return None
    try:
        return int(text[start + 1 : end])
    except ValueError:
        return None


def _vm_signals(root: HostRoot, ev: list[Evidence], unreadable: list[str]) -> list[str]:
    found: list[str] = []
    cpuinfo = _read(root, "/proc/cpuinfo", unreadable)
    if cpuinfo is not None:
        flags = next(
            (ln for ln in cpuinfo.splitlines() if ln.startswith(("flags", "Features"))), ""
        )
        has_flag = "hypervisor" in flags.split(":", 1)[-1].split()
        ev.append(
            Evidence(
                "CPU hypervisor flag",
                "/proc/cpuinfo",
                "present" if has_flag else "absent",
                "vm" if has_flag else "no hypervisor",
            )
        )
        if has_flag:
            found.append("vm-other")
        vendor = next((ln for ln in cpuinfo.splitlines() if ln.startswith("vendor_id")), "")
        if "User Mode Linux" in vendor:
            ev.append(Evidence("CPU vendor", "/proc/cpuinfo", "User Mode Linux", "vm:uml"))
            found.append("uml")
    signature = _cpuid_signature(root, unreadable)
    if signature:
        name = _CPUID_VENDORS.get(signature, "vm-other")
        text = signature.rstrip(b"\0").decode("ascii", errors="replace")
        ev.append(Evidence("CPUID leaf 0x40000000", "/dev/cpu/0/cpuid", text, f"vm:{name}"))
        found.append(name)
    dmi = {}
    for name in _DMI_FILES:
        value = _read(root, f"/sys/class/dmi/id/{name}", unreadable)
        if value is not None and value.strip():
            dmi[name] = value.strip()
    for name, value in dmi.items():
        if name == "sys_vendor" and value.startswith("Microsoft Corporation"):
            if dmi.get("product_name", "").startswith("Virtual Machine"):
                ev.append(Evidence("DMI sys_vendor", "/sys/class/dmi/id", value, "vm:microsoft"))
                found.append("microsoft")
            continue
        for prefix, vm in _DMI_PREFIXES:
            if value.startswith(prefix):
                if vm == "amazon" and dmi.get("product_name", "").endswith(".metal"):
                    ev.append(Evidence(f"DMI {name}", "/sys/class/dmi/id", value, "bare metal"))
                    break
                ev.append(Evidence(f"DMI {name}", "/sys/class/dmi/id", value, f"vm:{vm}"))
                found.append(vm)
                break
    hypervisor_type = _read(root, "/sys/hypervisor/type", unreadable)
    if hypervisor_type and hypervisor_type.strip():
        vm = hypervisor_type.strip()
        ev.append(Evidence("hypervisor type", "/sys/hypervisor/type", vm, f"vm:{vm}"))
        found.append(vm)
    if root.exists("/proc/xen"):
        ev.append(Evidence("Xen interface", "/proc/xen", "present", "vm:xen"))
        found.append("xen")
    return found


def _firecracker(root: HostRoot, ev: list[Evidence]) -> bool:
    """KVM without SMBIOS/DMI tables and with nothing but virtio devices: Firecracker.

    QEMU, Cloud Hypervisor and the clouds' VMMs all publish DMI tables; Firecracker does not
    (it boots the kernel directly) and exposes only virtio devices (MMIO, or PCI behind one
    host bridge on newer versions).
    """
    if root.exists("/sys/class/dmi/id") or root.exists("/sys/firmware/dmi"):
        return False
    pci = root.listdir("/sys/bus/pci/devices")
    vendors = []
    for device in pci:
        cls = root.read_optional(f"/sys/bus/pci/devices/{device}/class", limit=64) or ""
        if cls.strip().startswith("0x0600"):  # host bridge
            continue
        vendors.append((root.read_optional(f"/sys/bus/pci/devices/{device}/vendor") or "").strip())
    virtio = root.listdir("/sys/bus/virtio/devices")
    if not virtio or any(v != _VIRTIO_VENDOR for v in vendors):
        return False
    bus = "virtio-pci" if vendors else "virtio-mmio"
    ev.append(
        Evidence(
            "device model",
            "/sys/bus/virtio, /sys/bus/pci, no /sys/class/dmi",
            f"{len(virtio)} {bus} devices only, no SMBIOS/DMI tables",
            "vmm:Firecracker",
        )
    )
    return True


def _container_signals(
    root: HostRoot, ev: list[Evidence], unreadable: list[str], notes: list[str]
) -> str | None:
    strong: list[str] = []
    if root.exists("/proc/vz") and not root.exists("/proc/bc"):
        ev.append(Evidence("OpenVZ", "/proc/vz without /proc/bc", "present", "container:openvz"))
        strong.append("openvz")
    osrelease = _read(root, "/proc/sys/kernel/osrelease", unreadable) or ""
    if "microsoft" in osrelease.lower() or "wsl" in osrelease.lower():
        ev.append(
            Evidence(
                "kernel release", "/proc/sys/kernel/osrelease", osrelease.strip(), "container:wsl"
            )
        )
        strong.append("wsl")
    for path in ("/run/host/container-manager", "/run/systemd/container"):
        value = (_read(root, path, unreadable) or "").strip()
        if value:
            ev.append(Evidence("container manager", path, value, f"container:{value}"))
            strong.append(value)
    environ = _read(root, "/proc/1/environ", unreadable)
    if environ is not None:
        variables = dict(item.split("=", 1) for item in environ.split("\0") if "=" in item)
        value = variables.get("container", "")
        if value and value != "oci":
            ev.append(
                Evidence(
                    "PID 1 environment",
                    "/proc/1/environ",
                    f"container={value}",
                    f"container:{value}",
                )
            )
            strong.append(value)
        else:
            ev.append(
                Evidence("PID 1 environment", "/proc/1/environ", "no container=", "no container")
            )
    if root.exists("/run/.containerenv"):
        ev.append(Evidence("Podman marker", "/run/.containerenv", "present", "container:podman"))
        strong.append("podman")

    namespaced: list[str] = []
    for ns, initial in _INITIAL_NS.items():
        link = None
        for pid in ("1", "self"):
            try:
                link = root.readlink(f"/proc/{pid}/ns/{ns}")
                source = f"/proc/{pid}/ns/{ns}"
                break
            except FileNotFoundError:
                continue
            except FactUnavailable as exc:
                unreadable.append(exc.diagnostics())
        if link is None:
            continue
        inode = _namespace_inode(link)
        if inode is None:
            continue
        if inode == initial:
            ev.append(Evidence(f"{ns} namespace", source, link, "initial (host) namespace"))
        else:
            ev.append(Evidence(f"{ns} namespace", source, link, "container:namespaced"))
            namespaced.append(ns)
    for pid in ("1", "self"):
        uid_map = _read(root, f"/proc/{pid}/uid_map", unreadable)
        if uid_map is None:
            continue
        rows = [ln.split() for ln in uid_map.splitlines() if ln.strip()]
        identity = rows == [["0", "0", "4294967295"]]
        ev.append(
            Evidence(
                "user ID map",
                f"/proc/{pid}/uid_map",
                " | ".join(" ".join(r) for r in rows),
                "initial user namespace" if identity else "container:namespaced",
            )
        )
        if not identity and "user" not in namespaced:
            namespaced.append("user")
        break

    hints: list[str] = []
    cgroup = _read(root, "/proc/1/cgroup", unreadable)
    if cgroup is not None:
        for needle, hint in _CGROUP_HINTS:
            if needle in cgroup:
                ev.append(
                    Evidence("cgroup path", "/proc/1/cgroup", needle.strip("/-"), f"hint:{hint}")
                )
                hints.append(hint)
                break
    mountinfo = _read(root, "/proc/1/mountinfo", unreadable)
    if mountinfo is None:
        mountinfo = _read(root, "/proc/self/mountinfo", unreadable)
    if mountinfo is not None:
        for line in mountinfo.splitlines():
            fields = line.split()
            if len(fields) > 4 and fields[4] == "/" and " - " in line:
                fstype = line.split(" - ", 1)[1].split()[0]
                layered = fstype in ("overlay", "aufs", "fuse-overlayfs")
                ev.append(
                    Evidence(
                        "root file system",
                        "/proc/1/mountinfo",
                        fstype,
                        "hint:container image" if layered else "no container layer",
                    )
                )
                if layered:
                    hints.append("container image")
    dockerenv = root.exists("/.dockerenv")
    if dockerenv:
        ev.append(Evidence("Docker marker", "/.dockerenv", "present", "weak:docker"))

    if strong:
        return strong[0]
    if namespaced or hints:
        if dockerenv or "docker" in hints:
            return "docker"
        named = [h for h in hints if h not in ("container image", "kubernetes pod")]
        if named:
            return named[0]
        if namespaced:
            return "container-other"
    if dockerenv:
        if any(e.points_to == "initial (host) namespace" for e in ev):
            notes.append(
                "/.dockerenv exists but PID 1 runs in the host's initial namespaces and no "
                "other signal agrees: a leftover from building this root file system from a "
                "Docker image, ignored (systemd-detect-virt would say 'docker' here)"
            )
            return None
        notes.append(
            "/.dockerenv exists and the namespace signals could not be read: whether this is "
            "a Docker container is unknown (run as root to tell)"
        )
        return "docker?"
    return None


def detect_isolation(root: HostRoot) -> Isolation:
    ev: list[Evidence] = []
    unreadable: list[str] = []
    notes: list[str] = []
    vms = _vm_signals(root, ev, unreadable)
    specific = [v for v in vms if v != "vm-other"]
    vm = specific[0] if specific else (vms[0] if vms else None)
    vmm = None
    if vm == "kvm" and _firecracker(root, ev):
        vmm = "Firecracker"
    elif vm == "vm-other" and _firecracker(root, ev):
        vm, vmm = "kvm", "Firecracker"
    elif vm == "amazon":
        vm, vmm = "kvm", "Amazon EC2 (Nitro)"
    elif vm == "google":
        vm, vmm = "kvm", "Google Compute Engine"
    container = _container_signals(root, ev, unreadable, notes)
    if container == "docker?":
        container = None
        kernel = "unknown"
    elif container:
        kernel = "shared"
    elif vm or any(e.points_to == "no hypervisor" for e in ev):
        kernel = "dedicated"
    else:
        kernel = "unknown"
    return Isolation(vm, vmm, container, kernel, tuple(ev), tuple(notes), tuple(unreadable))
