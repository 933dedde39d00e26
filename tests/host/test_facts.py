"""How host facts are read: flags, config precedence, sysctl files, paths, isolation signals."""

from __future__ import annotations

from pathlib import Path

import pytest

from skanse.errors import FactNotApplicable, FactUnavailable, HostError
from skanse.host.isolation import detect_isolation
from skanse.host.kubelet import find_kubelet, parse_flags
from skanse.host.root import HostRoot
from skanse.host.sysctl import Sysctls, parse_sysctl_conf

from .trees import materialize

KC = "kind: KubeletConfiguration\n"


def test_pflag_forms() -> None:
    flags = parse_flags(
        [
            "--config=/a.yaml",
            "--pod-max-pids",
            "100",
            "--seccomp-default",  # a boolean: the next token is not its value
            "positional",
            "--feature-gates=A=true",
            "--feature-gates",
            "B=false",
            "-v=2",
            "--read-only-port=1",
            "--read-only-port=0",  # the last one wins
        ]
    )
    assert flags["--config"] == "/a.yaml"
    assert flags["--pod-max-pids"] == "100"
    assert flags["--seccomp-default"] == "true"
    assert flags["--feature-gates"] == "A=true,B=false"
    assert flags["-v"] == "2"
    assert flags["--read-only-port"] == "0"


def _kubelet(tmp_path: Path, argv: list[str], files: dict[str, str], **extra: object):
    materialize(
        {"processes": {"31": ["/usr/bin/kubelet", *argv]}, "files": files, **extra}, tmp_path
    )
    return find_kubelet(HostRoot(tmp_path))


def test_flag_over_file_over_default(tmp_path: Path) -> None:
    kc = _kubelet(
        tmp_path,
        ["--config=/k.yaml", "--read-only-port=10255"],
        {"/k.yaml": KC + "readOnlyPort: 0\npodPidsLimit: 512\n"},
    )
    assert (kc.get("readOnlyPort").value, kc.get("readOnlyPort").source) == (10255, "flag")
    assert kc.get("podPidsLimit").value == 512 and kc.get("podPidsLimit").line == 3
    anonymous = kc.get("authentication.anonymous.enabled")
    assert (anonymous.value, anonymous.source) == (False, "file-default")


def test_flags_only_kubelet_uses_the_legacy_defaults(tmp_path: Path) -> None:
    kc = _kubelet(tmp_path, ["--kubeconfig=/etc/kubernetes/kubelet.conf"], {})
    assert kc.get("authentication.anonymous.enabled").value is True
    assert kc.get("authorization.mode").value == "AlwaysAllow"
    assert kc.get("readOnlyPort").value == 10255
    assert kc.get("readOnlyPort").source == "flag-default"


def test_config_dir_drop_ins_merge_in_name_order(tmp_path: Path) -> None:
    kc = _kubelet(
        tmp_path,
        ["--config=/k.yaml", "--config-dir=/k.d"],
        {
            "/k.yaml": KC + "authentication:\n  x509:\n    clientCAFile: /ca.crt\n",
            "/k.d/20-b.conf": KC + "podPidsLimit: 2048\n",
            "/k.d/10-a.conf": KC + "podPidsLimit: 1024\nauthentication:\n  anonymous:\n"
            "    enabled: false\n",
            "/k.d/ignored.yaml": KC + "readOnlyPort: 10255\n",
        },
    )
    assert kc.get("podPidsLimit").value == 2048 and kc.get("podPidsLimit").file == "/k.d/20-b.conf"
    assert kc.get("authentication.x509.clientCAFile").value == "/ca.crt"  # maps merge
    assert kc.get("readOnlyPort").value == 0
    assert kc.drop_ins == ("/k.d/10-a.conf", "/k.d/20-b.conf")


def test_relative_config_is_resolved_against_the_kubelet_cwd(tmp_path: Path) -> None:
    kc = _kubelet(
        tmp_path,
        ["--config", "kubelet.yaml"],
        {"/srv/kube/kubelet.yaml": KC + "readOnlyPort: 0\n"},
        links={"/proc/31/cwd": "/srv/kube"},
    )
    assert kc.config_file == "/srv/kube/kubelet.yaml"


def test_usual_path_when_no_kubelet_runs_and_none_at_all(tmp_path: Path) -> None:
    materialize({"files": {"/var/lib/kubelet/config.yaml": KC + "readOnlyPort: 0\n"}}, tmp_path)
    kc = find_kubelet(HostRoot(tmp_path))
    assert kc.pid is None and kc.config_file == "/var/lib/kubelet/config.yaml"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FactNotApplicable, match="no kubelet runs here"):
        find_kubelet(HostRoot(tmp_path / "empty"))


def test_a_bad_flag_value_blocks_only_its_field(tmp_path: Path) -> None:
    kc = _kubelet(tmp_path, ["--read-only-port=abc", "--anonymous-auth=false"], {})
    with pytest.raises(FactUnavailable, match="--read-only-port"):
        kc.get("readOnlyPort")
    assert kc.get("authentication.anonymous.enabled").value is False


def test_sysctl_conf_syntax() -> None:
    text = (
        "# c\n; c\n-kernel.sysrq = 0\nnet/ipv4/ip_forward=1\n  vm.swappiness =  10 \nnot a line\n"
    )
    settings = parse_sysctl_conf(text, "/etc/sysctl.d/a.conf")
    assert [(s.key, s.value, s.line) for s in settings] == [
        ("kernel.sysrq", "0", 3),
        ("net.ipv4.ip_forward", "1", 4),
        ("vm.swappiness", "10", 5),
    ]


def test_sysctl_boot_order_follows_systemd(tmp_path: Path) -> None:
    materialize(
        {
            "files": {
                "/proc/sys/kernel/sysrq": "0",
                "/usr/lib/sysctl.d/50-default.conf": (
                    "kernel.sysrq = 16\nnet.ipv4.conf.*.rp_filter = 2\n"
                ),
                "/etc/sysctl.d/50-default.conf": "kernel.sysrq = 1\n",  # masks the /usr/lib one
                "/run/sysctl.d/60-x.conf": "kernel.sysrq = 176\n",
                "/etc/sysctl.conf": "kernel.kptr_restrict = 2\n",
            }
        },
        tmp_path,
    )
    sysctls = Sysctls(HostRoot(tmp_path))
    assert sysctls.config_files() == [
        "/etc/sysctl.d/50-default.conf",
        "/run/sysctl.d/60-x.conf",
        "/etc/sysctl.conf",
    ]
    boot = sysctls.configured("kernel.sysrq")
    assert boot is not None and (boot.value, boot.file) == ("176", "/run/sysctl.d/60-x.conf")
    assert sysctls.configured("net.ipv4.conf.all.rp_filter") is None  # its file is masked


def test_absent_ipv6_key_says_ipv6_is_disabled(tmp_path: Path) -> None:
    materialize(
        {"files": {"/proc/sys/kernel/sysrq": "0", "/proc/cmdline": "quiet ipv6.disable=1\n"}},
        tmp_path,
    )
    with pytest.raises(FactNotApplicable, match=r"ipv6\.disable=1"):
        Sysctls(HostRoot(tmp_path)).running("net.ipv6.conf.all.accept_ra")


def test_links_resolve_inside_the_root(tmp_path: Path) -> None:
    materialize(
        {
            "files": {"/etc/real.conf": "inside\n"},
            "links": {"/etc/abs.conf": "/etc/real.conf", "/etc/up.conf": "../../../etc/real.conf"},
        },
        tmp_path,
    )
    root = HostRoot(tmp_path)
    assert root.read_text("/etc/abs.conf") == "inside\n"
    assert root.read_text("/etc/up.conf") == "inside\n"
    assert root.resolve("/../../etc/real.conf") == tmp_path / "etc" / "real.conf"
    with pytest.raises(FileNotFoundError):
        root.read_text("/etc/real.conf/child")
    with pytest.raises(HostError, match="not a directory"):
        HostRoot(tmp_path / "etc" / "real.conf")


def test_a_directory_swapped_for_a_link_during_a_read_cannot_leave_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of a hostile tree, made deterministic: the link appears after the path was
    resolved, just before the file is opened; what is read is still the file inside."""
    import os

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.yaml").write_text("TOP-SECRET\n")
    materialize({"files": {"/var/lib/kubelet/config.yaml": "readOnlyPort: 0\n"}}, tmp_path)
    kubelet = tmp_path / "var" / "lib" / "kubelet"
    real_open = os.open

    def swapping_open(
        path: str | os.PathLike[str], flags: int, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> int:
        if str(path).endswith("config.yaml") and kubelet.is_dir() and not kubelet.is_symlink():
            kubelet.rename(kubelet.with_name("real"))
            kubelet.symlink_to(outside)  # the directory is now a link out of the root
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", swapping_open)
    assert HostRoot(tmp_path).read_text("/var/lib/kubelet/config.yaml") == "readOnlyPort: 0\n"
    assert kubelet.is_symlink()  # the swap did happen


def test_apply_writes_inside_the_root_even_if_a_directory_is_swapped_for_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from skanse.host.remediation import apply_sysctls

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kptr_restrict").write_text("outside\n")
    root = tmp_path / "root"
    materialize({"files": {"/proc/sys/kernel/kptr_restrict": "0"}}, root)
    conf = tmp_path / "fix.conf"
    conf.write_text("kernel.kptr_restrict = 2\n")
    kernel = root / "proc" / "sys" / "kernel"
    real_open = os.open

    def swapping_open(
        path: str | os.PathLike[str], flags: int, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> int:
        if flags & os.O_WRONLY and str(path).endswith("kptr_restrict") and not kernel.is_symlink():
            kernel.rename(kernel.with_name("kernel.real"))
            kernel.symlink_to(outside)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", swapping_open)
    result = apply_sysctls(HostRoot(root), conf, backup_dir=tmp_path)
    assert result.applied == ("kernel.kptr_restrict",)
    assert (outside / "kptr_restrict").read_text() == "outside\n"  # untouched
    assert (root / "proc/sys/kernel.real/kptr_restrict").read_text() == "2\n"


@pytest.mark.parametrize(
    ("spec", "summary"),
    [
        (
            {
                "files": {
                    "/sys/class/dmi/id/sys_vendor": "Amazon EC2",
                    "/proc/cpuinfo": "flags: fpu hypervisor\n",
                }
            },
            "a KVM/Amazon EC2 (Nitro) virtual machine (dedicated kernel)",
        ),
        (
            {
                "files": {
                    "/sys/class/dmi/id/sys_vendor": "Amazon EC2",
                    "/sys/class/dmi/id/product_name": "c5.metal",
                    "/proc/cpuinfo": "flags: fpu\n",
                }
            },
            "bare metal (dedicated kernel, no hypervisor found)",
        ),
        (
            {
                "files": {
                    "/sys/class/dmi/id/sys_vendor": "Microsoft Corporation",
                    "/sys/class/dmi/id/product_name": "Virtual Machine",
                }
            },
            "a Hyper-V virtual machine (dedicated kernel)",
        ),
        (
            {"files": {"/sys/class/dmi/id/sys_vendor": "VMware, Inc.", "/.dockerenv": ""}},
            # a marker, and no namespace signal to confirm or refute it
            "a VMware virtual machine; whether a container runs inside it is unknown",
        ),
        (
            {
                "files": {
                    "/run/.containerenv": 'engine="podman-4.9"\n',
                    "/proc/cpuinfo": "flags: fpu\n",
                }
            },
            "a Podman container (shared kernel)",
        ),
        (
            {"files": {"/proc/sys/kernel/osrelease": "5.15.153.1-microsoft-standard-WSL2\n"}},
            "a WSL container (shared kernel)",
        ),
        (
            {"files": {"/proc/cpuinfo": "flags: fpu hypervisor\n"}},
            "a virtual machine (hypervisor unidentified) (dedicated kernel)",
        ),
        (
            {
                "files": {"/proc/cpuinfo": "flags: fpu\n"},
                "links": {"/proc/1/ns/pid": "pid:[4026532999]"},
            },
            "an unidentified container (shared kernel)",
        ),
    ],
)
def test_isolation_signals(spec: dict, summary: str, tmp_path: Path) -> None:
    materialize(spec, tmp_path)
    assert detect_isolation(HostRoot(tmp_path)).summary() == summary


KUBEADM_DROP_IN = """\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap.conf \\
 --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS \\
  $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""


def test_stopped_kubelet_is_read_from_its_systemd_unit(tmp_path: Path) -> None:
    """A mounted node image: no process, but kubeadm's unit says what would run."""
    materialize(
        {
            "files": {
                "/usr/lib/systemd/system/kubelet.service": (
                    "[Service]\nExecStart=/usr/bin/kubelet --read-only-port=0\n"
                ),
                "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": KUBEADM_DROP_IN,
                "/var/lib/kubelet/kubeadm-flags.env": (
                    'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/'
                    'containerd/containerd.sock --pod-infra-container-image=pause:3.9"\n'
                ),
                "/etc/default/kubelet": "# extra\nKUBELET_EXTRA_ARGS=--read-only-port=10255\n",
                "/var/lib/kubelet/config.yaml": KC + "podPidsLimit: 100\n",
            }
        },
        tmp_path,
    )
    kc = find_kubelet(HostRoot(tmp_path))
    assert kc.pid is None
    assert kc.how_found == (
        "no kubelet running; command line from /usr/lib/systemd/system/kubelet.service"
    )
    assert kc.config_file == "/var/lib/kubelet/config.yaml"  # from KUBELET_CONFIG_ARGS
    port = kc.get("readOnlyPort")  # the reset ExecStart's --read-only-port=0 is gone
    assert (port.value, port.source, port.file, port.line) == (
        10255,
        "flag",
        "/etc/default/kubelet",
        2,
    )
    assert kc.flags["--kubeconfig"] == "/etc/kubernetes/kubelet.conf"  # continuation line
    assert kc.get("podPidsLimit").value == 100


def test_unit_without_config_flag_gets_the_legacy_defaults(tmp_path: Path) -> None:
    materialize(
        {
            "files": {
                "/etc/systemd/system/kubelet.service": (
                    "[Service]\nExecStart=/usr/local/bin/kubelet --kubeconfig=/k.conf \\\n"
                    "  --anonymous-auth=false\n"
                ),
                "/var/lib/kubelet/config.yaml": KC + "readOnlyPort: 0\n",  # not used by it
            }
        },
        tmp_path,
    )
    kc = find_kubelet(HostRoot(tmp_path))
    assert kc.config_file is None
    assert kc.get("readOnlyPort").value == 10255
    assert kc.get("readOnlyPort").file == "/etc/systemd/system/kubelet.service"
    anonymous = kc.get("authentication.anonymous.enabled")
    assert (anonymous.value, anonymous.line) == (False, 2)


@pytest.mark.parametrize(
    ("init", "uid", "rootless"),
    [
        ("/usr/bin/rootlesskit", 0, True),  # root in rootlesskit's user namespace
        ("/sbin/init", 1000, True),  # a user's own daemon
        ("/sbin/init", 0, False),
    ],
)
def test_rootless_docker_is_told_by_its_user_or_its_parent(
    init: str, uid: int, rootless: bool, tmp_path: Path
) -> None:
    from skanse.host.runtime import find_docker

    spec = {
        "processes": {"1": [init, "--flag"], "40": ["/usr/bin/dockerd", "-H", "fd://"]},
        "uids": {"40": uid},
    }
    materialize(spec, tmp_path)
    docker = find_docker(HostRoot(tmp_path))
    assert docker.process is not None and docker.process.pid == 40
    assert docker.process.parent == init.rsplit("/", 1)[1]
    assert docker.rootless is rootless
