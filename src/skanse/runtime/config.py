"""The sensor's configuration file (`skanse runtime run --config sensor.yaml`).

Pydantic at the edge; everything the sensor uses afterwards is plain. Command-line flags
override the file. Example (deploy/sensor/configmap.yaml carries a complete one):

    rules: [/etc/skanse/rules/falco_rules.yaml]
    append_output: "container_id=%container.id container_name=%container.name"
    outputs:
      stdout: true
      file: /var/log/skanse/alerts.jsonl
      webhook: {url: "https://falcosidekick.falco:2801/", ca_file: /etc/skanse/ca.crt}
      syslog: {address: /dev/log}
    metrics: {port: 9376, address: 127.0.0.1}
    responses:
      - rule: Terminal shell in container
        actions: [kill]
      - priority: critical            # this priority and more severe
        actions: [freeze, isolate, quarantine]
    kubernetes: {api: in-cluster}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from skanse.config import read_settings_file
from skanse.rules.loader import Priority
from skanse.rules.output import OutputError, compile_output
from skanse.runtime.responses import Action, Policy, parse_actions

__all__ = ["SensorConfig", "load_sensor_config"]

DEFAULT_APPEND_OUTPUT = "container_id=%container.id container_name=%container.name"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookConfig(_Model):
    url: str
    ca_file: str | None = None
    insecure: bool = False
    timeout: float = Field(default=5.0, gt=0, le=60)
    headers: dict[str, str] = Field(default_factory=dict)


class SyslogConfig(_Model):
    address: str = "/dev/log"
    facility: int = Field(default=1, ge=0, le=23)


class OutputsConfig(_Model):
    stdout: bool = True
    format: Literal["jsonl", "text"] = "jsonl"
    file: str | None = None
    webhook: WebhookConfig | None = None
    syslog: SyslogConfig | None = None


class MetricsConfig(_Model):
    port: int = Field(ge=1, le=65535)
    address: str = "127.0.0.1"


class ResponseRule(_Model):
    rule: str | None = None
    priority: str | None = None
    actions: list[str]

    @model_validator(mode="after")
    def _one_selector(self) -> ResponseRule:
        if (self.rule is None) == (self.priority is None):
            raise ValueError("a response names either a rule or a priority")
        if self.priority is not None and Priority.parse(self.priority) is None:
            raise ValueError(f"unknown priority {self.priority!r}")
        for action in self.actions:
            if action.lower() not in {a.value for a in Action}:
                raise ValueError(f"unknown action {action!r} (kill, freeze, isolate, quarantine)")
        return self


class KubernetesConfig(_Model):
    api: str = "in-cluster"  # or an https:// URL
    token_file: str | None = None
    ca_file: str | None = None


DropActionName = Literal["ignore", "log", "alert", "exit"]


def _default_drop_actions() -> list[DropActionName]:
    return ["log", "alert"]


class DropsConfig(_Model):
    """Falco's `syscall_event_drops`: when lost records are an alert (skanse.runtime.drops)."""

    threshold: float = Field(default=0.1, ge=0.0, le=1.0)
    actions: list[DropActionName] = Field(default_factory=_default_drop_actions)
    rate: float = Field(default=0.03333, gt=0.0)
    max_burst: int = Field(default=1, ge=1)


class SensorConfig(_Model):
    rules: list[str] = Field(default_factory=list)
    sensor: Literal["ebpf", "audit"] = "ebpf"
    rule_matching: Literal["first", "all"] = "first"
    append_output: str = DEFAULT_APPEND_OUTPUT
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    metrics: MetricsConfig | None = None
    responses: list[ResponseRule] = Field(default_factory=list)
    allow_host_kill: bool = False
    kubernetes: KubernetesConfig | None = None
    state_dir: str = "/var/lib/skanse"
    ring_buffer_mib: int = Field(default=16, ge=1, le=1024)  # per CPU
    host_root: str = "/"
    syscall_event_drops: DropsConfig = Field(default_factory=DropsConfig)

    @field_validator("append_output")
    @classmethod
    def _output_compiles(cls, value: str) -> str:
        # checked here, where a bad value is a ConfigError naming its line: compiled only
        # when the sensor starts or reloads, an OutputError (a ValueError, not a SkanseError)
        # escaped the reload that must keep the old configuration running
        if value:
            try:
                compile_output(value, "syscall")
            except OutputError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("ring_buffer_mib")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError("ring_buffer_mib must be a power of two")
        return value

    def policy(self) -> Policy:
        by_rule: dict[str, frozenset[Action]] = {}
        by_priority: list[tuple[Priority, frozenset[Action]]] = []
        for item in self.responses:
            actions = parse_actions(",".join(item.actions))
            if item.rule is not None:
                by_rule[item.rule] = by_rule.get(item.rule, frozenset()) | actions
            else:
                assert item.priority is not None
                priority = Priority.parse(item.priority)
                assert priority is not None
                by_priority.append((priority, actions))
        return Policy(by_rule, tuple(by_priority), allow_host=self.allow_host_kill)


def load_sensor_config(path: str | Path) -> SensorConfig:
    """Read and validate a sensor configuration; any problem is a ConfigError naming the
    file and, for a bad value, its line."""
    config, _ = read_settings_file(Path(path), SensorConfig, what="sensor configuration")
    return config
