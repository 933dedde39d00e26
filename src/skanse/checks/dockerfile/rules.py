"""Dockerfile checks: where root containers, unpinned bases and unverified code are born."""

from __future__ import annotations

import re
from collections.abc import Iterator

from skanse.checks._registry import Violation
from skanse.checks.dockerfile.base import DockerfileCheckSet, DockerfileContext
from skanse.checks.dockerfile.shell import Command, pipelines
from skanse.checks.secrets import GPG_FINGERPRINT, SECRET_NAME, TOKEN_FORMATS
from skanse.controls import GDPR_SECURITY, NSA_IMAGES, NSA_NON_ROOT, NSA_SECRETS, cis, gdpr, nsa
from skanse.model import Severity
from skanse.oci.reference import split_reference
from skanse.sources.dockerfile import Dockerfile, Instruction, Stage

__all__ = ["DOCKERFILE_CHECKS", "effective_user"]

DOCKERFILE_CHECKS = DockerfileCheckSet(__name__)

_BEST_PRACTICES = "https://docs.docker.com/build/building/best-practices/"
_REFERENCE = "https://docs.docker.com/reference/dockerfile/"


def _instructions(df: Dockerfile, *keywords: str) -> Iterator[tuple[Stage, str, Instruction]]:
    """(stage, pointer, instruction) for every instruction with one of `keywords`, in stages."""
    for stage in df.stages:
        for position, index in enumerate(stage.instructions):
            ins = df.instructions[index]
            if ins.keyword in keywords:
                yield stage, f"/stages/{stage.index}/instructions/{position}", ins


def _runs(df: Dockerfile) -> Iterator[tuple[str, Instruction]]:
    """(pointer, instruction) for every RUN, in stages."""
    for _, pointer, ins in _instructions(df, "RUN"):
        yield pointer, ins


def _commands(df: Dockerfile) -> Iterator[tuple[str, Instruction, Command]]:
    """(pointer, RUN instruction, simple command) for every command of every RUN."""
    for pointer, ins in _runs(df):
        for pipeline in pipelines(ins.shell):
            for cmd in pipeline:
                yield pointer, ins, cmd


# ---------------------------------------------------------------------------------------------
# USER


# What the runtimes read as UID 0: runc (moby/sys/user) and containerd's WithUser take a user
# that strconv.Atoi parses as a UID, and Atoi takes a sign and leading zeros (`00`, `+0`).
_UID_ZERO = re.compile(r"[-+]?0+\Z")


def is_root_user(user: str) -> bool:
    """Whether `USER <user>` runs as root: `root`, a UID that reads as 0, or no user (`:0`)."""
    name = user.split(":", 1)[0].strip()
    return name in ("root", "") or _UID_ZERO.match(name) is not None


_is_root = is_root_user


def effective_user(df: Dockerfile, stage: Stage) -> tuple[str | None, str]:
    """The user the stage's image runs as: (user or None when unknown, pointer of its USER).

    A USER later in the stage undoes an earlier one; `FROM <stage>` inherits that stage's
    user; an external base image's user is unknown (None) unless its tag says `nonroot`.
    """
    for position in range(len(stage.instructions) - 1, -1, -1):
        ins = df.instructions[stage.instructions[position]]
        if ins.keyword == "USER":
            return ins.args.split()[0] if ins.args.split() else "", (
                f"/stages/{stage.index}/instructions/{position}"
            )
    if stage.base_stage is not None and stage.base_stage < stage.index:
        return effective_user(df, df.stages[stage.base_stage])
    if "nonroot" in stage.base.rsplit("/", 1)[-1].lower():  # distroless :nonroot, etc.
        return "nonroot", f"/stages/{stage.index}"
    return None, f"/stages/{stage.index}"


def _dotnet_app_uid(df: Dockerfile, stage: Stage, user: str) -> bool:
    """`USER $APP_UID` on a .NET base: the image sets APP_UID to its non-root user."""
    if user.split(":", 1)[0] not in ("$APP_UID", "${APP_UID}"):
        return False
    seen = set()
    while stage.base_stage is not None and stage.base_stage not in seen:
        seen.add(stage.base_stage)
        stage = df.stages[stage.base_stage]
    return "/dotnet/" in stage.base.lower()


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-001",
    controls=(
        nsa(NSA_NON_ROOT),
        cis("5.2.7", approximate=True, note="the image default; a pod may still override it"),
        GDPR_SECURITY,
    ),
    title="Final stage runs as root",
    severity=Severity.HIGH,
    remediation="Create a non-root user with a UID of 10000 or above and end the final stage "
    "with `USER 10001` (skanse fix adds both, matched to the base image family).",
    references=(f"{_REFERENCE}#user", f"{_BEST_PRACTICES}#user"),
    aliases=("DS-0002", "DL3002", "CKV_DOCKER_3", "CKV_DOCKER_8"),
    fixable=True,
)
def final_user_not_root(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """The image that ships (the last stage) runs as a non-root user: a USER that is not root
    or 0 after the last FROM. A USER in an earlier stage does not count, unless the final
    stage is built FROM that stage; a later `USER root` undoes it."""
    if not df.stages:
        return
    final = df.stages[-1]
    if final.base.lower() == "scratch" and not final.instructions:
        return
    user, pointer = effective_user(df, final)
    if user is None:
        yield Violation(
            f"the final stage (FROM {final.base_raw}) has no USER: it runs as the base image's "
            "user, which is root unless the image says otherwise",
            pointer,
        )
    elif "$" in user and not _dotnet_app_uid(df, final, user):
        # anywhere in the word, not only first: `ro${EMPTY}ot` is root once BuildKit expands it
        yield Violation(
            f"USER {user} comes from a variable; skanse cannot tell it is not root", pointer
        )
    elif _is_root(user):
        yield Violation(f"the final stage runs as USER {user}", pointer)


# ---------------------------------------------------------------------------------------------
# Base images

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _external_bases(df: Dockerfile) -> Iterator[Stage]:
    for stage in df.stages:
        if stage.base_stage is None and stage.base.lower() != "scratch":
            yield stage


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-002",
    controls=(
        nsa(NSA_IMAGES, approximate=True, note="a moving base defeats image review"),
        GDPR_SECURITY,
    ),
    title="Base image uses the latest tag or no tag",
    severity=Severity.HIGH,
    remediation="Name a version tag and, better, the digest: "
    "FROM python:3.12-slim@sha256:<digest>.",
    references=(f"{_REFERENCE}#from", f"{_BEST_PRACTICES}#pin-base-image-versions"),
    aliases=("DS-0001", "DL3006", "DL3007", "CKV_DOCKER_7"),
)
def base_image_tagged(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """A base image without a tag, or `:latest`, changes under the build: what is built today
    is not what was reviewed. ARG defaults are applied before judging (`FROM node:${V}`)."""
    for stage in _external_bases(df):
        pointer = f"/stages/{stage.index}"
        if stage.unresolved:
            yield Violation(
                f"FROM {stage.base_raw} depends on a build argument without a default; the base "
                "image cannot be verified",
                pointer,
                Severity.MEDIUM,
            )
            continue
        _, tag, digest = split_reference(stage.base)
        if digest is None and (tag is None or tag == "latest"):
            what = "the latest tag" if tag else "no tag (implicitly latest)"
            yield Violation(f"FROM {stage.base} uses {what}", pointer)


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-003",
    controls=(nsa(NSA_IMAGES, approximate=True), GDPR_SECURITY),
    title="Base image is not pinned by digest",
    severity=Severity.LOW,
    remediation="Append the digest to the FROM image (docker buildx imagetools inspect prints it) "
    "and let a bot such as Renovate update it.",
    references=(f"{_BEST_PRACTICES}#pin-base-image-versions",),
)
def base_image_digest(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """Tags can be moved; a digest names exactly one image. Pinning the base by digest makes
    builds reproducible and a compromised tag harmless."""
    for stage in _external_bases(df):
        if stage.unresolved:
            continue  # SKN-DF-002 says it cannot be verified
        _, tag, digest = split_reference(stage.base)
        if digest is None and tag not in (None, "latest"):
            yield Violation(f"FROM {stage.base} is not pinned by digest", f"/stages/{stage.index}")


# ---------------------------------------------------------------------------------------------
# ADD and COPY

_URL = re.compile(r"^(https?|ftp)://|^git@|\.git(#.*)?$", re.IGNORECASE)
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz|tar\.zst|gz|bz2|xz)$", re.I)


def _sources(ins: Instruction) -> list[str]:
    return ins.words[:-1]


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-004",
    controls=(nsa(NSA_IMAGES), GDPR_SECURITY),
    title="ADD downloads from a URL",
    severity=Severity.MEDIUM,
    remediation="Download with curl or wget in a RUN that verifies a checksum or signature, or "
    "use ADD --checksum=sha256:<digest> so BuildKit verifies it.",
    references=(f"{_REFERENCE}#add", f"{_REFERENCE}#add---checksum"),
    aliases=("CKV_DOCKER_4", "DS-0005"),
)
def add_url(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """`ADD <url>` fetches whatever the server returns at build time, unverified, unless it
    carries `--checksum`."""
    for _, pointer, ins in _instructions(df, "ADD"):
        if ins.flags.get("checksum"):
            continue
        urls = [s for s in _sources(ins) if _URL.search(s)]
        if urls:
            yield Violation(f"ADD {urls[0]} downloads without verifying a checksum", pointer)


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-005",
    controls=(nsa(NSA_IMAGES, approximate=True),),
    title="ADD used where COPY serves",
    severity=Severity.LOW,
    remediation="Use COPY for local files and directories; keep ADD for local tar archives that "
    "must be extracted.",
    references=(f"{_BEST_PRACTICES}#add-or-copy",),
    aliases=("DL3020",),
    fixable=True,
)
def add_local_file(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """ADD also extracts archives and fetches URLs; for a plain local file that magic is a
    surprise waiting to happen. COPY does exactly one thing."""
    # An archive is known by its name or, in the build context the scan read, its content.
    for _, pointer, ins in _instructions(df, "ADD"):
        if ins.heredocs:
            continue
        sources = _sources(ins)
        if sources and not any(
            _URL.search(s) or _ARCHIVE.search(s) or "$" in s or s in ctx.archives for s in sources
        ):
            yield Violation(f"ADD {' '.join(sources)} copies local files: use COPY", pointer)


_HOME = re.compile(r"^/home/[^/]+")


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-006",
    controls=(nsa(NSA_NON_ROOT, approximate=True, note="files the non-root user cannot own"),),
    title="COPY into the user's home without --chown",
    severity=Severity.LOW,
    remediation="Add --chown=<user>:<group> to COPY and ADD into the home of the non-root user "
    "the stage runs as, or copy to a root-owned path the program only reads.",
    references=(f"{_REFERENCE}#copy---chown---chmod",),
    fixable=True,
)
def copy_chown_home(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """Once a stage switches to a non-root USER, files it COPYs into that user's home are
    still owned by root, so the program cannot write where it expects to (and teams then
    reach for chmod 777 or go back to root)."""
    for stage in df.stages:
        user: str | None = None
        workdir = "/"
        for position, index in enumerate(stage.instructions):
            ins = df.instructions[index]
            if ins.keyword == "USER":
                user = ins.args.split()[0] if ins.args.split() else None
            elif ins.keyword == "WORKDIR" and ins.args:
                path = ins.args.strip().strip("\"'")
                workdir = path if path.startswith("/") else f"{workdir.rstrip('/')}/{path}"
            elif ins.keyword in ("COPY", "ADD") and user and not _is_root(user):
                if ins.flags.get("chown"):
                    continue
                words = ins.words
                if not words:
                    continue
                destination = words[-1]
                absolute = (
                    destination
                    if destination.startswith("/")
                    else f"{workdir.rstrip('/')}/{destination}"
                )
                if _HOME.match(absolute):
                    yield Violation(
                        f"{ins.keyword} to {absolute} after USER {user} leaves the files owned by "
                        "root",
                        f"/stages/{stage.index}/instructions/{position}",
                    )


# ---------------------------------------------------------------------------------------------
# Remote code and downloads

_INTERPRETERS = frozenset(
    {"sh", "bash", "zsh", "dash", "ash", "ksh", "fish", "python", "python2", "python3", "perl",
     "ruby", "node", "php", "pwsh"}
)  # fmt: skip
_FETCHERS = frozenset({"curl", "wget", "fetch"})


def _writes_stdout(cmd: Command) -> bool:
    if cmd.program == "curl":
        return not cmd.has_option("-o", "-O", "--output", "--remote-name", "--remote-name-all")
    if cmd.program == "wget":
        words = cmd.words
        for i, word in enumerate(words):
            if word in ("-O", "--output-document") and i + 1 < len(words) and words[i + 1] == "-":
                return True
            if word in ("-O-", "-qO-", "-qO", "--output-document=-") or (
                word.startswith("-") and not word.startswith("--") and word.endswith("O-")
            ):
                return True
            if word == "-qO" and i + 1 < len(words) and words[i + 1] == "-":
                return True
        return False
    return cmd.program == "fetch"


_SUBSTITUTION = re.compile(r"(\$\(|`|<\()\s*(curl|wget)\b")
_PROCESS_SUBSTITUTION = re.compile(r"\b(ba|z|k|da|a)?sh\s+<\(\s*(curl|wget)\b")


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-007",
    controls=(nsa(NSA_IMAGES), GDPR_SECURITY),
    title="Remote script piped into a shell",
    severity=Severity.HIGH,
    remediation="Download the script to a file, verify its checksum or signature, read it, then "
    "run it; better, install a pinned package.",
    references=("https://docs.docker.com/build/building/best-practices/#run",),
)
def remote_code_piped(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """`curl ... | sh`, `wget -O- ... | bash`, `sh -c "$(curl ...)"` and `bash <(curl ...)` run
    whatever the server sends at build time, with the build's privileges, leaving no copy to
    inspect. No peer scanner flags this today."""
    for pointer, ins in _runs(df):
        text = ins.shell
        if _PROCESS_SUBSTITUTION.search(text):
            yield Violation("a shell runs a script fetched by process substitution", pointer)
            continue
        for pipeline in pipelines(text):
            fetched = False
            for cmd in pipeline:
                if cmd.program in _FETCHERS and _writes_stdout(cmd):
                    fetched = True
                elif fetched and cmd.program in _INTERPRETERS:
                    yield Violation(
                        f"{' '.join(pipeline[0].words[:4])} ... is piped into {cmd.program}",
                        pointer,
                    )
                    break
            else:
                for cmd in pipeline:
                    if cmd.program in _INTERPRETERS and _SUBSTITUTION.search(" ".join(cmd.words)):
                        yield Violation(
                            f"{cmd.program} runs a script fetched by a command substitution",
                            pointer,
                        )
                        break
                continue
            break


def _in_one_command(program: str, then: str) -> str:
    """A pattern for `program` followed by `then` within one command (no | ; & between).

    Anchored at the command's start, with the first `program` in it held atomically: a
    later one could match only where the first does too. `program[^|;&]*then` instead
    restarted its scan at every occurrence, quadratic in a RUN that repeats the program
    (a hostile Dockerfile of "gpg gpg gpg ..." took minutes)."""
    return rf"(?:^|[|;&])(?>[^|;&]*?{program})[^|;&]*{then}"


_VERIFIERS = re.compile(
    r"\b(sha(1|224|256|384|512)sum|shasum|md5sum|b2sum|cksum)\b|"
    + _in_one_command(r"\bgpg2?\b", "--verify")
    + r"|\bcosign\s+verify|"
    + _in_one_command(r"\bminisign\b", "-V")
    + r"|\bopenssl\s+dgst|"
    + _in_one_command(r"\bsignify\b", "-V")
    + r"|\bgpgv\b|--checksum",
)
_KEY_IMPORT = re.compile(
    _in_one_command(r"gpg2?\b", "--dearmou?r")
    + "|"
    + _in_one_command(r"apt-key\b", r"\badd\b")
    + "|"
    + _in_one_command(r"gpg2?\b", "--import")
)
# What a download piped into these ends up as: files on disk, unverified.
_STORING = frozenset(
    {"tar", "bsdtar", "unzip", "gunzip", "bunzip2", "xz", "unxz", "zstd", "tee", "dd", "install",
     "cpio", "funzip", "busybox"}
)  # fmt: skip


def _saves(cmd: Command) -> bool:
    """The fetcher writes what it downloads to a file (not to the build log)."""
    if ">" in cmd.words or ">>" in cmd.words:
        return True
    return not _writes_stdout(cmd)


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-008",
    controls=(nsa(NSA_IMAGES), GDPR_SECURITY),
    title="Download without checksum or signature verification",
    severity=Severity.MEDIUM,
    remediation='Verify what you download in the same RUN: `echo "<sha256>  file" | sha256sum '
    "-c -`, or `gpg --verify` against a pinned key fingerprint.",
    references=("https://docs.docker.com/build/building/best-practices/#run",),
)
def unverified_download(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """A RUN that downloads with curl or wget (to a file, or straight into tar) must also
    verify what it got: a checksum or a signature in the same RUN. Key imports piped into
    gpg are not downloads of code and are not flagged."""
    for pointer, ins in _runs(df):
        text = ins.shell
        if _VERIFIERS.search(text):
            continue
        for pipeline in pipelines(text):
            fetchers = [c for c in pipeline if c.program in ("curl", "wget")]
            if not fetchers or not any(
                re.match(r"^(https?|ftp)://", w) for c in fetchers for w in c.words
            ):
                continue
            consumers = [c for c in pipeline if c.program not in ("curl", "wget")]
            if any(c.program in _INTERPRETERS for c in consumers):
                continue  # SKN-DF-007 reports that one
            if consumers and _KEY_IMPORT.search(" ".join(" ".join(c.words) for c in consumers)):
                continue
            stored = any(_saves(c) for c in fetchers) or any(
                c.program in _STORING or ">" in c.words for c in consumers
            )
            if not stored:
                continue  # printed to the build log or filtered by grep: nothing is kept
            url = next(w for c in fetchers for w in c.words if re.match(r"^(https?|ftp)://", w))
            yield Violation(f"downloads {url} without verifying a checksum or signature", pointer)
            break


# ---------------------------------------------------------------------------------------------
# Secrets


def _assignments(ins: Instruction) -> list[tuple[str, str | None]]:
    """(name, value) pairs of ENV and ARG, both syntaxes (`K=V ...` and legacy `K V`)."""
    text = ins.args.strip()
    if ins.keyword == "ENV" and "=" not in text.split(" ", 1)[0]:
        name, _, value = text.partition(" ")
        return [(name, value.strip())]
    pairs: list[tuple[str, str | None]] = []
    for match in re.finditer(
        r"([A-Za-z_][A-Za-z0-9_.-]*)(?:=(\"(?:[^\"\\]|\\.)*\"|'[^']*'|\S*))?", text
    ):
        value = match.group(2)
        if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        pairs.append((match.group(1), value))
    return pairs


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-009",
    controls=(
        nsa(NSA_SECRETS),
        cis("5.4.1", approximate=True, note="in the image, not the pod spec"),
        GDPR_SECURITY,
    ),
    title="Secret in ENV or ARG",
    severity=Severity.HIGH,
    remediation="Pass secrets at build time with RUN --mount=type=secret and at run time from a "
    "secret store; never bake them into ENV or ARG, which every image pull reveals.",
    references=("https://docs.docker.com/build/building/secrets/",),
    aliases=("DS-0031",),
)
def secret_in_env(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """Judged by name and value together. A known token format (AWS, GitHub, GitLab, Slack,
    Stripe, Google, npm, PyPI, private keys, credentials in URLs) is a secret whatever its name.
    A secret-like name (PASSWORD, TOKEN, API_KEY...) with a literal value is one; a GPG key
    fingerprint is public (the official images set GPG_KEY to one) and a value taken from
    another variable is not a literal. An ARG with a secret-like name and no value is recorded
    in the image history when a RUN uses it (LOW)."""
    for _, pointer, ins in _instructions(df, "ENV", "ARG"):
        for name, value in _assignments(ins):
            if value and TOKEN_FORMATS.search(value):
                yield Violation(f"{ins.keyword} {name} holds a credential", pointer)
                continue
            if not SECRET_NAME.search(name):
                continue
            if value is None or value == "":
                if ins.keyword == "ARG":
                    yield Violation(
                        f"ARG {name} passes a secret as a build argument; build arguments used by "
                        "RUN are recorded in the image history",
                        pointer,
                        Severity.LOW,
                    )
                continue
            if value.startswith(("$", "/")) or GPG_FINGERPRINT.match(value):
                continue
            yield Violation(f"{ins.keyword} {name} sets a literal secret value", pointer)


# ---------------------------------------------------------------------------------------------
# Privileges and permissions in RUN


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-010",
    controls=(nsa(NSA_NON_ROOT, approximate=True), GDPR_SECURITY),
    title="sudo in RUN",
    severity=Severity.MEDIUM,
    remediation="RUN already runs as root until a USER switches away; reorder the instructions "
    "instead of installing and using sudo, and never leave sudo in the final image.",
    references=(f"{_BEST_PRACTICES}#user",),
    aliases=("DL3004", "DS-0010"),
)
def sudo_in_run(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """sudo in a build means the image carries a privilege-escalation path (and usually a
    sudoers entry) for whoever gets a shell in the container."""
    for pointer, ins in _runs(df):
        if any(
            c.words and c.words[0].rsplit("/", 1)[-1] == "sudo"
            for p in pipelines(ins.shell)
            for c in p
        ):
            yield Violation("RUN uses sudo", pointer)


# Octal modes with the "other" write bit, unless the sticky bit makes it a /tmp-like shared
# directory (1777, 3777: the official images use these for runtime directories). The "who"
# part is letters with an a or an o among them, matched up to its first a or o so that no
# letter can go to two quantifiers (`[ugoa]*[ao][ugoa]*` tried every split, quadratic in a
# long mode word of a hostile Dockerfile). The permissions hold a w anywhere: `a+rwx` is as
# world-writable as `a+w`.
_WORLD_WRITABLE = re.compile(
    r"^(0?[02-7]?[0-7][0-7][2367]|[ug]*+[ao][ugoa]*+[+=][rxXst]*+w[rwxXst]*+)$"
)


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-011",
    controls=(nsa(NSA_IMAGES), GDPR_SECURITY),
    title="World-writable permissions",
    severity=Severity.MEDIUM,
    remediation="Give the files to the runtime user with chown (or COPY --chown) and keep the "
    "mode at 0755/0644 or tighter.",
    references=("https://man7.org/linux/man-pages/man1/chmod.1.html",),
)
def world_writable(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """`chmod 777` (or o+w, a+w) lets any process in the container, including one that broke
    in, rewrite the files: a common shortcut once a non-root user cannot write."""
    for pointer, _, cmd in _commands(df):
        if cmd.program != "chmod":
            continue
        modes = [w for w in cmd.words[1:] if not w.startswith("-")]
        if modes and _WORLD_WRITABLE.match(modes[0]):
            yield Violation(f"chmod {modes[0]} makes files world-writable", pointer)
    for _, pointer, ins in _instructions(df, "COPY", "ADD"):
        mode = ins.flags.get("chmod")
        if mode and _WORLD_WRITABLE.match(mode):
            yield Violation(f"{ins.keyword} --chmod={mode} makes files world-writable", pointer)


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-012",
    controls=(nsa(NSA_IMAGES), GDPR_SECURITY),
    title="RUN with --security=insecure",
    severity=Severity.HIGH,
    remediation="Remove --security=insecure; a build step that needs privileged mode should run "
    "outside the image build.",
    references=(f"{_REFERENCE}#run---security",),
)
def insecure_run(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """`RUN --security=insecure` runs the step as a privileged container (the build-time
    `--privileged`), with full access to the build host's kernel."""
    for pointer, ins in _runs(df):
        if (ins.flags.get("security") or "").lower() == "insecure":
            yield Violation("RUN --security=insecure runs the step privileged", pointer)


# ---------------------------------------------------------------------------------------------
# Package managers


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-013",
    controls=(nsa(NSA_IMAGES, approximate=True, note="minimal images"),),
    title="apt-get install without --no-install-recommends",
    severity=Severity.LOW,
    remediation="Use apt-get install -y --no-install-recommends <packages>.",
    references=(f"{_BEST_PRACTICES}#apt-get",),
    aliases=("DL3015", "DS-0029"),
)
def apt_recommends(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """Recommended packages bring software nobody asked for: more attack surface and more
    vulnerabilities to patch."""
    for pointer, ins, cmd in _commands(df):
        if (
            cmd.program in ("apt-get", "apt")
            and "install" in cmd.words
            and not cmd.has_option("--no-install-recommends")
            and "APT::Install-Recommends" not in ins.shell
        ):
            yield Violation(f"{cmd.program} install without --no-install-recommends", pointer)


def _cache_mounted(ins: Instruction, path: str) -> bool:
    return any(path in (v or "") for k, v in ins.flags.items() if k == "mount")


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-014",
    controls=(nsa(NSA_IMAGES, approximate=True, note="minimal images"),),
    title="Package manager cache left in the image",
    severity=Severity.LOW,
    remediation="Clean up in the same RUN (rm -rf /var/lib/apt/lists/*, apk add --no-cache, "
    "dnf clean all) or use RUN --mount=type=cache for the package cache.",
    references=(f"{_BEST_PRACTICES}#apt-get",),
    aliases=("DL3009", "DL3019", "DL3032", "DL3040"),
)
def package_cache(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """Package indexes and caches left in a layer bloat the image and record what was
    available at build time; they must be removed in the RUN that created them."""
    for pointer, ins in _runs(df):
        text = ins.shell
        for pipeline in pipelines(text):
            for cmd in pipeline:
                if cmd.program in ("apt-get", "apt") and "install" in cmd.words:
                    if "/var/lib/apt/lists" not in text and not _cache_mounted(ins, "/var/lib/apt"):
                        yield Violation("apt lists are not removed after install", pointer)
                elif cmd.program == "apk" and "add" in cmd.words:
                    if (
                        not cmd.has_option("--no-cache")
                        and "/var/cache/apk" not in text
                        and not _cache_mounted(ins, "/var/cache/apk")
                    ):
                        yield Violation("apk add without --no-cache", pointer)
                elif (
                    cmd.program in ("yum", "dnf", "microdnf", "tdnf", "zypper")
                    and "install" in cmd.words
                ):
                    if "clean" not in text and not _cache_mounted(ins, "/var/cache"):
                        yield Violation(
                            f"{cmd.program} install without {cmd.program} clean all", pointer
                        )
                else:
                    continue
                break


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-015",
    controls=(gdpr("32(1)(b)", note="availability: the runtime can tell a hung process"),),
    title="No HEALTHCHECK",
    severity=Severity.INFO,
    remediation="Add HEALTHCHECK CMD <probe> (Kubernetes ignores it and uses probes instead).",
    references=(f"{_REFERENCE}#healthcheck",),
    aliases=("DS-0026", "CKV_DOCKER_2"),
    opt_in=True,
)
def healthcheck(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """Opt-in and informational: Docker and Compose use HEALTHCHECK; Kubernetes does not, so
    for images that only run there this is noise (the reason peers' counts are dominated by
    it)."""
    if df.stages and not any(
        ins.keyword == "HEALTHCHECK" for _, ins in df.stage_instructions(df.stages[-1])
    ):
        yield Violation("the final stage has no HEALTHCHECK", f"/stages/{df.stages[-1].index}")


@DOCKERFILE_CHECKS.check(
    id="SKN-DF-016",
    controls=(nsa(NSA_IMAGES), GDPR_SECURITY),
    title="SSH server in the image",
    severity=Severity.MEDIUM,
    remediation="Remove sshd and EXPOSE 22; use kubectl exec or a debug container to get in.",
    references=(f"{_REFERENCE}#expose",),
    aliases=("DS-0004", "CKV_DOCKER_1"),
)
def ssh_server(df: Dockerfile, ctx: DockerfileContext) -> Iterator[Violation]:
    """A container with an SSH daemon is a second, unmanaged way in, with its own keys and
    passwords."""
    for _, pointer, ins in _instructions(df, "EXPOSE"):
        ports = [p.split("/")[0] for p in ins.args.split()]
        if "22" in ports:
            yield Violation("EXPOSE 22 publishes an SSH port", pointer)
    for pointer, ins in _runs(df):
        if re.search(r"\bopenssh-server\b|\bdropbear\b", ins.shell):
            yield Violation("RUN installs an SSH server", pointer)
    for _, pointer, ins in _instructions(df, "CMD", "ENTRYPOINT"):
        if re.search(r"\bsshd\b", ins.shell):
            yield Violation(f"{ins.keyword} starts sshd", pointer)
