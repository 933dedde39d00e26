"""Alert outputs: JSON lines, a Falcosidekick-compatible HTTPS webhook, syslog."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from skanse.errors import UsageError
from skanse.rules.engine import Alert
from skanse.rules.loader import Priority
from skanse.runtime.outputs import JsonLinesOutput, SyslogOutput, TextOutput, WebhookOutput
from tests.runtime.tlsserver import https_server


def _alert(
    rule: str = "Terminal shell in container",
    priority: Priority = Priority.NOTICE,
    *,
    output: str = "A shell was spawned in a container with an attached terminal | process=bash",
    output_fields: dict[str, object] | None = None,
    tags: tuple[str, ...] = ("container", "shell"),
) -> dict:
    return Alert(
        time_ns=1_700_000_000_123_456_789,
        rule=rule,
        priority=priority,
        source="syscall",
        hostname="node-1",
        output=output,
        output_fields=output_fields
        if output_fields is not None
        else {"proc.name": "bash", "container.id": "3f2a9c1b7d4e", "proc.tty": 34816},
        tags=tags,
    ).to_json()


# The fields Falcosidekick reads from Falco's JSON output (falcosidekick types.FalcoPayload)
FALCOSIDEKICK_KEYS = {
    "output",
    "priority",
    "rule",
    "time",
    "output_fields",
    "source",
    "tags",
    "hostname",
}


def test_json_lines_file_gets_one_falco_alert_per_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    output = JsonLinesOutput(str(path))
    output.emit(_alert())
    output.emit(_alert("Read sensitive file untrusted", Priority.WARNING))
    output.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["rule"] for line in lines] == [
        "Terminal shell in container",
        "Read sensitive file untrusted",
    ]
    assert set(lines[0]) == FALCOSIDEKICK_KEYS
    assert lines[0]["time"] == "2023-11-14T22:13:20.123456789Z"
    assert lines[1]["priority"] == "Warning"


def test_webhook_posts_falcosidekick_json_over_verified_https(tmp_path: Path) -> None:
    with https_server(tmp_path, lambda request: (200, {})) as server:
        hook = WebhookOutput(server.url + "/", ca_file=server.ca_file)
        hook.emit(_alert())
        hook.close()
    assert hook.stats.sent == 1 and hook.stats.failed == 0
    request = server.requests[0]
    assert (request.method, request.path) == ("POST", "/")
    assert request.headers["Content-Type"] == "application/json"
    body = request.json()
    assert set(body) == FALCOSIDEKICK_KEYS
    assert body["output_fields"]["container.id"] == "3f2a9c1b7d4e"


def test_webhook_refuses_an_unverified_certificate_and_counts_it(tmp_path: Path) -> None:
    with https_server(tmp_path, lambda request: (200, {})) as server:
        hook = WebhookOutput(server.url + "/")  # the system CAs do not know this certificate
        hook.emit(_alert())
        hook.close()
    assert hook.stats.failed == 1 and hook.stats.sent == 0
    assert "CERTIFICATE_VERIFY_FAILED" in (hook.last_error or "")
    assert server.requests == []


def test_webhook_http_errors_are_counted_not_raised(tmp_path: Path) -> None:
    with https_server(tmp_path, lambda request: (503, {"error": "busy"})) as server:
        hook = WebhookOutput(server.url + "/", ca_file=server.ca_file)
        for _ in range(3):
            hook.emit(_alert())
        hook.close()
    assert hook.stats.failed == 3


def test_webhook_never_blocks_the_sensor_when_the_queue_is_full() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection and never answers
    port = listener.getsockname()[1]
    hook = WebhookOutput(f"http://127.0.0.1:{port}/", timeout=2, queue_size=5)
    started = time.monotonic()
    for _ in range(50):
        hook.emit(_alert())
    assert time.monotonic() - started < 0.5
    assert hook.stats.dropped >= 40
    listener.close()


def test_webhook_url_must_be_http() -> None:
    with pytest.raises(UsageError):
        WebhookOutput("file:///etc/passwd")


def test_syslog_over_udp_uses_the_falco_priority_as_severity() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    output = SyslogOutput(f"udp://127.0.0.1:{port}", hostname="node-1")
    output.emit(_alert(priority=Priority.CRITICAL))
    output.close()
    message = receiver.recv(65536).decode()
    receiver.close()
    assert message.startswith("<10>")  # facility user (1) * 8 + critical (2)
    assert " node-1 skanse[" in message
    assert message.endswith(
        "A shell was spawned in a container with an attached terminal | process=bash"
    )


def test_syslog_to_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(5)
    output = SyslogOutput(path)
    output.emit(_alert(priority=Priority.WARNING))
    output.close()
    assert receiver.recv(65536).startswith(b"<12>")
    receiver.close()


def test_syslog_failure_is_counted(tmp_path: Path) -> None:
    output = SyslogOutput(str(tmp_path / "nobody-listens"))
    output.emit(_alert())
    assert output.stats.failed == 1


def test_syslog_address_forms() -> None:
    with pytest.raises(UsageError):
        SyslogOutput("syslog.example:514")


def test_text_output_writes_the_alert_line_and_counts_a_closed_stream_as_failed() -> None:
    import io

    stream = io.StringIO()
    output = TextOutput(stream)
    output.emit(_alert())
    assert stream.getvalue() == (
        "22:13:20.123456789: Notice A shell was spawned in a container with an attached "
        "terminal | process=bash\n"
    )
    stream.close()
    output.emit(_alert())  # a closed stdout must not stop the sensor
    assert (output.stats.sent, output.stats.failed) == (1, 1)


def _hostile_alert() -> dict:
    """An alert whose output carries a process's argv with a newline and an ESC sequence, as
    `sh -c 'x' $'\\n22:13:21.0: Notice forged\\e[2J'` in a container gives it."""
    argv = "sh -c x \n22:13:21.000000000: Notice forged\x1b[2J"
    return _alert(output=f"shell | command={argv}", output_fields={"proc.cmdline": argv}, tags=())


def test_text_output_escapes_control_characters_a_process_put_in_the_line() -> None:
    import io

    stream = io.StringIO()
    TextOutput(stream).emit(_hostile_alert())
    assert stream.getvalue() == (
        "22:13:20.123456789: Notice shell | command=sh -c x "
        "\\n22:13:21.000000000: Notice forged\\x1b[2J\n"
    )


def test_syslog_over_tcp_sends_one_message_per_alert_whatever_the_argv_holds() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)
    output = SyslogOutput(f"tcp://127.0.0.1:{listener.getsockname()[1]}", hostname="node-1")
    output.emit(_hostile_alert())
    output.close()
    connection, _ = listener.accept()
    connection.settimeout(5)
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    connection.close()
    listener.close()
    messages = received.decode().split("\n")  # newline-framed, as rsyslog reads TCP
    assert messages[-1] == ""
    assert len(messages[:-1]) == 1, messages
    assert messages[0].endswith(
        "Notice shell | command=sh -c x \\n22:13:21.000000000: Notice forged\\x1b[2J"
    )


# what a terminal or a line reader acts on, beyond C0 (which the JSON encoder escapes): DEL,
# every C1 control (U+009B CSI, U+009D OSC, U+0085 NEL), bidirectional overrides
_RAW_UNSAFE = {chr(c) for c in range(0x7F, 0xA0)} | {chr(c) for c in range(0x202A, 0x202F)}
_C1_NAME = "ev\u009b2J\u009d0;owned\u009c\u0085\x7f\u202e"


def _c1_alert(name: str = _C1_NAME) -> dict:
    return _alert(
        output=f"shell | process={name} file=/tmp/{name}",
        output_fields={"proc.name": name, "fd.name": f"/tmp/{name}"},
        tags=(),
    )


def test_json_lines_output_writes_no_c1_or_other_control_character_raw(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    output = JsonLinesOutput(str(path))
    output.emit(_c1_alert())
    output.close()
    text = path.read_text(encoding="utf-8")
    assert not _RAW_UNSAFE & set(text)
    assert "ev\\u009b2J\\u009d0;owned\\u009c\\u0085\\u007f\\u202e" in text
    (line,) = text.splitlines()  # NEL is a line break to str.splitlines: escaped, one line
    # the escapes are JSON's own: a reader gets the process's name back exactly
    assert json.loads(line)["output_fields"]["proc.name"] == _C1_NAME


def test_json_lines_output_keeps_an_alert_holding_a_lone_surrogate(tmp_path: Path) -> None:
    # replayed JSON events can carry "\ud800"; written raw it cannot be UTF-8 and the alert
    # was counted failed and lost
    path = tmp_path / "alerts.jsonl"
    output = JsonLinesOutput(str(path))
    output.emit(_c1_alert("x\ud800y"))
    output.close()
    assert (output.stats.sent, output.stats.failed) == (1, 0)
    assert json.loads(path.read_text(encoding="utf-8"))["output_fields"]["proc.name"] == "x\ud800y"


def test_webhook_body_carries_no_raw_c1_control(tmp_path: Path) -> None:
    with https_server(tmp_path, lambda request: (200, {})) as server:
        hook = WebhookOutput(server.url + "/", ca_file=server.ca_file)
        hook.emit(_c1_alert())
        hook.close()
    assert hook.stats.sent == 1
    body = server.requests[0].body
    assert not _RAW_UNSAFE & set(body.decode("utf-8"))
    assert json.loads(body)["output_fields"]["proc.name"] == _C1_NAME


def test_sensor_log_lines_carry_no_raw_c1_control(capsys: pytest.CaptureFixture[str]) -> None:
    from skanse._cli.runtime import _log_writer

    _log_writer(False)({"level": "error", "msg": f"reload failed: rules.yaml: {_C1_NAME}"})
    err = capsys.readouterr().err
    assert not _RAW_UNSAFE & set(err)
    assert json.loads(err)["msg"] == f"reload failed: rules.yaml: {_C1_NAME}"
