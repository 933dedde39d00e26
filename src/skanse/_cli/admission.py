"""`skanse admission serve | audit | certs`: the webhook, its audit of what runs, its TLS."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from skanse._cli import shown
from skanse._cli._common import number as _number

__all__ = ["add_arguments", "run"]

FORMATS = ("text", "json", "sarif", "junit", "policyreport")
# Upper bounds of the numeric options: far past any sensible setting, low enough that no
# date, timer or byte count computed from them overflows.
_MAX_SECONDS = 86400.0
_MAX_MIB = 4096.0
_MAX_DAYS = 36500  # skanse.admission.certs.MAX_DAYS, without importing cryptography to parse
# The API server waits at most 30 s for a webhook (timeoutSeconds' maximum): a review's image
# verification allowed longer could only ever be answered to nobody.
_MAX_IMAGE_DEADLINE = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "The admission webhook: the checks of `skanse scan` at the API server's front door.\n\n"
        "  skanse admission certs --namespace skanse-system --out tls/\n"
        "  skanse admission serve --policy policy.yaml --cert tls/tls.crt --key tls/tls.key\n"
        "  kubectl get pods,deployments -A -o json | skanse admission audit -"
    )
    sub = parser.add_subparsers(dest="admission_command", metavar="SUBCOMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the validating and mutating webhook over HTTPS",
        description="Serve /validate, /mutate, /healthz, /readyz and /metrics over HTTPS "
        "(TLS 1.2+). The certificate and key are reloaded when they change on disk. Logs are "
        "JSON lines on standard error.",
    )
    _policy_flags(serve)
    serve.add_argument(
        "--vap",
        metavar="DIR",
        action="append",
        default=None,
        help="also enforce these ValidatingAdmissionPolicies with their bindings' "
        "validationActions (files or directories; repeatable); see docs/policies.md",
    )
    serve.add_argument(
        "--cert",
        metavar="FILE",
        default="/etc/skanse/tls/tls.crt",
        help="serving certificate (PEM; default: %(default)s)",
    )
    serve.add_argument(
        "--key",
        metavar="FILE",
        default="/etc/skanse/tls/tls.key",
        help="its private key (PEM; default: %(default)s)",
    )
    serve.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 - reached via its Service
        help="address to listen on (default: %(default)s)",
    )
    serve.add_argument(
        "--port",
        type=_number(0, 65535, "a port number", integer=True),
        default=8443,
        help="port; 0 picks a free one (default: %(default)s)",
    )
    serve.add_argument(
        "--namespace",
        metavar="NS",
        default=None,
        help="the webhook's own namespace, always exempt (default: $POD_NAMESPACE)",
    )
    serve.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="allowed and skipped requests log at debug",
    )
    serve.add_argument(
        "--max-body",
        metavar="MIB",
        type=_number(0.001, _MAX_MIB, "a number of MiB"),
        default=3.0,
        help="largest AdmissionReview accepted, in MiB (default: %(default)s)",
    )
    serve.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_number(0.001, _MAX_SECONDS, "a number of seconds"),
        default=10.0,
        help="time a client has for the TLS handshake, each request's "
        "headers, and its body (default: %(default)s)",
    )
    serve.add_argument(
        "--image-deadline",
        metavar="SECONDS",
        type=_number(0.001, _MAX_IMAGE_DEADLINE, "a number of seconds"),
        default=3.0,  # skanse.admission.images.DEADLINE, without importing it to parse
        help="time the image signature checks of one review may take, every registry "
        "request together; past it the images are 'could not check' (denied in enforce "
        "mode). Keep it below the webhooks' timeoutSeconds (default: %(default)s)",
    )
    serve.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=1,
        help="worker processes sharing the port; one uses one CPU core (default: %(default)s)",
    )
    serve.add_argument(
        "--max-inflight",
        metavar="MIB",
        type=_number(0.001, _MAX_MIB, "a number of MiB"),
        default=8.0,
        help="bytes of reviews read or decided at once, in MiB; set the memory limit from "
        "it (docs/admission.md) (default: %(default)s)",
    )
    serve.add_argument(
        "--max-connections",
        metavar="N",
        type=int,
        default=2000,
        help="open connections per worker; past it the longest idle one is closed, so idle "
        "connections never push out a review (default: %(default)s)",
    )
    serve.add_argument(
        "--idle-timeout",
        metavar="SECONDS",
        type=_number(0.001, _MAX_SECONDS, "a number of seconds"),
        default=5.0,
        help="keep-alive of a connection that has sent no review; the API server's "
        "connections keep --keep-alive (default: %(default)s)",
    )
    serve.add_argument(
        "--keep-alive",
        metavar="SECONDS",
        type=_number(0, _MAX_SECONDS, "a whole number of seconds", integer=True),
        default=75,
        help="keep-alive of a connection once it has sent a review (default: %(default)s)",
    )
    serve.add_argument(
        "--drain",
        metavar="SECONDS",
        type=_number(0, _MAX_SECONDS, "a number of seconds"),
        default=10.0,
        help="after SIGTERM, keep answering this long with readiness off, while the API "
        "server stops routing here; a second signal stops at once (default: %(default)s)",
    )
    serve.add_argument(
        "--reload-interval",
        metavar="SECONDS",
        # a zero interval made the reload loop spin without yielding any time
        type=_number(0.1, _MAX_SECONDS, "a number of seconds"),
        default=10.0,
        help="how often the certificate files are checked for changes (default: %(default)s)",
    )

    audit = sub.add_parser(
        "audit",
        help="what the webhook would deny among objects that already run",
        description="Evaluate `kubectl get pods,deployments,... -A -o json` output (or YAML) "
        "as the webhook would with the same policy. Exit 1 if any object would be denied; "
        "exit 2 if an object could not be checked (no pod spec, past the webhook's caps, a "
        "check that failed) unless --allow-unchecked.",
    )
    audit.add_argument("file", metavar="FILE", help="the kubectl output; - reads standard input")
    _policy_flags(audit)
    audit.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        default="text",
        help="report format; policyreport prints wgpolicyk8s.io/v1alpha2 "
        "PolicyReports as a List (default: text)",
    )
    audit.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="write the report to FILE (atomically) instead of standard output",
    )
    audit.add_argument(
        "--allow-unchecked",
        action="store_true",
        help="an object that could not be checked is a warning instead of exit 2 (the "
        "webhook would still deny it in enforce mode)",
    )

    certs = sub.add_parser(
        "certs",
        help="generate a CA and a serving certificate, print the caBundle",
        description="Write ca.crt, ca.key, tls.crt and tls.key for the webhook Service "
        "into DIR (keys mode 0600; an existing CA there is reused) and print the base64 "
        "caBundle for the webhook configurations on standard output.",
    )
    certs.add_argument(
        "--service",
        default="skanse-admission",
        help="the webhook Service's name (default: %(default)s)",
    )
    certs.add_argument(
        "--namespace", default="skanse-system", help="its namespace (default: %(default)s)"
    )
    certs.add_argument("--out", metavar="DIR", default="tls", help="output directory")
    certs.add_argument(
        "--days",
        type=_number(1, _MAX_DAYS, "a whole number of days", integer=True),
        default=365,
        help="serving certificate lifetime (default: %(default)s)",
    )
    certs.add_argument(
        "--ca-days",
        type=_number(1, _MAX_DAYS, "a whole number of days", integer=True),
        default=3650,
        help="CA lifetime, new CA only (default: %(default)s)",
    )
    certs.add_argument(
        "--name",
        metavar="DNS_OR_IP",
        action="append",
        default=[],
        help="another name for the certificate (repeatable): 127.0.0.1 for "
        "a webhook run outside the cluster",
    )


def _policy_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        metavar="FILE",
        default=None,
        help="admission policy file (default: zero-trust, enforce everywhere)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=".skanse.yaml whose suppressions (with expiry) apply",
    )


def run(args: argparse.Namespace) -> int:
    command: str = args.admission_command
    if command == "serve":
        return _serve(args)
    if command == "audit":
        return _audit(args)
    return _certs(args)


def _policy(args: argparse.Namespace) -> Any:
    from skanse.admission.policy import Policy, load_policy

    policy = load_policy(Path(args.policy)) if args.policy else Policy()
    return policy


def _vap(args: argparse.Namespace) -> Any:
    """The ValidatingAdmissionPolicies of --vap, enforced with their bindings' actions."""
    from skanse._cli._common import load_policy_dirs

    policies = load_policy_dirs(getattr(args, "vap", None))
    if policies is None:
        return None
    from skanse.admission.vap import PolicyEnforcer

    return PolicyEnforcer(policies)


def _evaluator(args: argparse.Namespace, policy: Any) -> Any:
    from skanse.admission.evaluate import Evaluator
    from skanse.config import load_config

    suppressions = load_config(Path(args.config)).suppressions if args.config else ()
    return Evaluator(policy, suppressions=suppressions)


def _serve(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from skanse.errors import UsageError

    if args.workers < 1:
        raise UsageError("--workers must be 1 or more")
    if args.max_connections < 1 or args.max_inflight < args.max_body:
        raise UsageError(
            "--max-connections must be 1 or more, and --max-inflight at least --max-body"
        )
    metrics_dir = None
    if args.workers > 1:
        # before prometheus-client is imported: it picks its value store at import time
        metrics_dir = tempfile.mkdtemp(prefix="skanse-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        return _serve_with(args, metrics_dir)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve_with(args: argparse.Namespace, metrics_dir: str | None) -> int:
    from skanse.admission import logs

    logs.configure(args.log_level)
    import logging

    from skanse.admission.app import AppSettings, create_app
    from skanse.admission.handler import Webhook
    from skanse.admission.metrics import Metrics
    from skanse.admission.server import ServeOptions, run

    policy = _policy(args).with_own_namespace(args.namespace or os.environ.get("POD_NAMESPACE"))
    webhook = Webhook(
        policy,
        _evaluator(args, policy),
        policies=_vap(args),
        image_deadline=args.image_deadline,
    )
    metrics = Metrics()
    settings = AppSettings(
        max_body_bytes=int(args.max_body * 1024 * 1024),
        body_timeout=args.timeout,
        max_inflight_bytes=int(args.max_inflight * 1024 * 1024),
    )
    options = ServeOptions(
        cert_file=Path(args.cert),
        key_file=Path(args.key),
        host=args.host,
        port=args.port,
        reload_interval=args.reload_interval,
        handshake_timeout=args.timeout,
        header_timeout=args.timeout,
        workers=args.workers,
        keep_alive=args.keep_alive,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
        drain=args.drain,
    )
    logging.getLogger("skanse.admission").info(
        "policy loaded",
        extra={
            logs.FIELDS_KEY: {
                "policy": policy.source,
                "profile": policy.profile.value,
                "pss": str(policy.pss),
                "mode": policy.default_mode.value,
                "checks": len(webhook.evaluator.checks),
                "exempt_namespaces": sorted(policy.exempt_namespaces),
            }
        },
    )
    on_worker_exit = None
    if metrics_dir is not None:
        from prometheus_client import multiprocess

        def on_worker_exit(pid: int) -> None:
            multiprocess.mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]

    run(
        lambda ready: create_app(webhook, metrics, settings=settings, ready=ready),
        options,
        on_worker_exit=on_worker_exit,
    )
    return 0


def _audit(args: argparse.Namespace) -> int:
    from rich.console import Console

    from skanse._cli._common import emit, report_info
    from skanse.admission.audit import audit, policy_reports, summary_line
    from skanse.errors import InputError
    from skanse.model import ProblemKind
    from skanse.report import Format, render
    from skanse.sources.manifests import ReadLimits

    limits = ReadLimits()
    if args.file == "-":
        data = sys.stdin.buffer.read(limits.max_file_bytes + 1)
        name = "<stdin>"
    else:
        try:
            data = Path(args.file).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        name = args.file
    policy = _policy(args)
    evaluator = _evaluator(args, policy)
    audited = audit(name, data, evaluator, limits=limits)
    result = audited.result
    exit_code = 1 if audited.count("deny") else 0
    # as `skanse scan`: what could not be checked fails closed; an internal error and an
    # input with nothing checkable always do
    internal = any(p.kind is ProblemKind.INTERNAL for p in result.problems)
    if result.problems and (internal or result.objects_scanned == 0 or not args.allow_unchecked):
        exit_code = 2
    if args.format == "policyreport":
        import json

        document = json.dumps(policy_reports(audited, evaluator), indent=2) + "\n"
    else:
        document = render(Format(args.format), result, report_info(exit_code, args.output))
    emit(document, args.output)
    err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    for warning in result.warnings:
        err.print(f"warning: {shown(warning)}", markup=False, style="yellow")
    err.print(summary_line(audited), markup=False)
    for item in audited.objects:
        if item.decision == "deny":
            ids = (
                sorted({f.check_id for f in item.verdict.failing(policy.fail_on)})
                if (item.verdict)
                else []
            )
            reason = ", ".join(ids) or item.reason
            err.print(f"would deny {shown(str(item.resource))}: {shown(reason)}", markup=False)
        elif item.decision == "error":
            err.print(
                f"could not check {shown(str(item.resource))}: {shown(item.reason)}",
                markup=False,
            )
    if exit_code == 2:
        if result.objects_scanned == 0:
            message = "nothing could be checked"
        else:
            message = f"{len(result.problems)} input(s) could not be checked" + (
                "" if internal else " (--allow-unchecked reports them as a warning instead)"
            )
        err.print(f"error: {message}", markup=False, style="red")
    elif result.problems:
        err.print(
            f"warning: {len(result.problems)} input(s) could not be checked (allowed by "
            "--allow-unchecked); the report lists them",
            markup=False,
            style="yellow",
        )
    return exit_code


def _certs(args: argparse.Namespace) -> int:
    from skanse.admission.certs import issue

    issued = issue(
        Path(args.out),
        service=args.service,
        namespace=args.namespace,
        days=args.days,
        ca_days=args.ca_days,
        extra_names=tuple(args.name),
    )
    print(issued.ca_bundle)
    ca = "reused the CA in" if issued.reused_ca else "wrote a new CA to"
    print(
        f"{ca} {issued.ca_cert}; serving certificate {issued.tls_cert} (key {issued.tls_key}) "
        f"valid until {issued.not_after:%Y-%m-%d}. Put the line above into caBundle of both "
        "webhook configurations.",
        file=sys.stderr,
    )
    return 0
