"""One settings object, read once.

Sources, highest priority first: ``SOAR_*`` environment variables, then the
config file (``SOAR_CONFIG``, else ``soar.yml`` / ``soar.yaml`` / ``soar.toml``
in the working directory), then defaults. Everything else in soar receives a
:class:`Settings`; nothing reads the environment on its own.
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from soar import _yaml
from soar._config_file import ENV_PREFIX
from soar._config_file import config_file_path as config_file_path  # re-exported: soar config show
from soar.errors import ConfigError
from soar.urls import mask_url, mask_values

MASK = "********"
INTEGRATION_KEY = re.compile(r"[a-z][a-z0-9_]{0,62}")
INTEGRATION_ENV = re.compile(
    ENV_PREFIX.upper() + r"INTEGRATION__(?P<name>[A-Za-z][A-Za-z0-9_]*?)__(?P<key>[A-Za-z][A-Za-z0-9_]*)"
)


CYCLE_TIMEOUT_INTERVALS = 3.0  # a cycle's request may take this many detection intervals ...
CYCLE_TIMEOUT_FLOOR = 3.0  # ... but never less than this many seconds (a 1 s interval still gets 3 s)


class Settings(BaseSettings):
    """Every setting soar has. Paths are relative to the working directory unless noted."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # -- content and local state
    content_root: Path = Field(Path(), description="Folder holding rules/, playbooks/, responders/, integrations/")
    state_dir: Path = Field(Path(".soar"), description="Where the embedded store, caches and reports live")
    store: Literal["sqlite", "elasticsearch"] = Field("sqlite", description="State store backend")
    inventory_file: Path = Field(Path("inventory.yml"), description="Hosts, relative to content_root")
    policy_file: Path = Field(Path("policy.yml"), description="Safety policy, relative to content_root")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # -- Elasticsearch
    elasticsearch_url: str = "http://127.0.0.1:9200"
    elasticsearch_username: str | None = None
    elasticsearch_password: SecretStr | None = None
    elasticsearch_api_key: SecretStr | None = None
    elasticsearch_ca_certs: Path | None = None
    elasticsearch_verify_certs: bool = True
    elasticsearch_timeout: float = Field(10.0, gt=0)
    events_index: str = Field("logs-*", description="Index pattern the rules search")
    index_prefix: str = Field("soar", pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Prefix of soar's own indices")

    # -- Redis and Celery
    redis_url: str = "redis://127.0.0.1:6379/0"
    celery_eager: bool = Field(False, description="Run Celery tasks in-process (the embedded default)")
    response_queue: str = "response"
    detection_queue: str = "detection"
    response_dry_run: bool = Field(
        False, description="Actions only plan: each step records the exact commands it would run, nothing is touched"
    )
    playbook_max_parallel: int = Field(
        10, ge=1, le=100, description="Instances of one for_each step that run at once (a step's max_parallel wins)"
    )
    notify_queue: str = Field("notify", description="Slack and run-event notifications, apart from containment steps")
    containment_watch_interval: float = Field(
        60.0, ge=5, description="Seconds between two re-verifications of a containment in force (jittered)"
    )
    containment_watch_intervals: dict[str, float] = Field(
        default_factory=dict, description="Per action (e.g. hosts.lock_account: 300): its own watch interval"
    )
    containment_watch_jitter: float = Field(
        0.1, ge=0, le=0.5, description="Each next check moves by up to this fraction of its interval, either way"
    )

    # -- continuous detection (soar scheduler); a rule's `soar:` block overrides interval and look-back
    detection_interval: float = Field(60.0, ge=1, description="Seconds between runs of a rule")
    detection_lookback: float = Field(60.0, ge=0, description="Seconds each window reaches back before its checkpoint")
    detection_ingest_delay: float = Field(0.5, ge=0, description="Seconds a window stops short of now (refresh lag)")
    detection_time_field: Literal["@timestamp", "event.ingested"] = Field(
        "@timestamp",
        description="What rule windows are on: event time, or arrival in Elasticsearch (ECS event.ingested, set by the"
        " shipper or ingest pipeline; an event without it is windowed by @timestamp): an event arriving later than the"
        " look-back is still searched once. A rule's soar.time_field overrides it",
    )
    detection_min_gap: float = Field(
        60.0,
        ge=0,
        description="Seconds a checkpoint must be behind (besides 3 intervals) for the missed time to be recorded as a"
        " gap; less, and the late cycle's window just covers it",
    )
    detection_max_alerts: int = Field(1000, ge=1, description="Cap on alerts one rule creates in one run")
    detection_page_size: int = Field(1000, ge=1, le=10_000, description="Hits per search page")
    detection_batch_size: int = Field(100, ge=1, description="Rule searches per _msearch request")
    detection_path: Literal["auto", "search", "fetch"] = Field(
        "auto",
        description="How a cycle reads an index: search (each rule a clause of a combined search), fetch (the"
        " cycle's events read once, every rule matched in process) or auto (fetch when many rules are due and"
        " the measured events of the window are few enough; see docs/scaling.md)",
    )
    detection_search_timeout: float | None = Field(
        None,
        gt=0,
        description="Seconds Elasticsearch gives one rule's search before reporting that rule timed out"
        " (default: half of elasticsearch_timeout; must be below it)",
    )
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Serve Prometheus metrics on this port")

    # -- incidents (docs/incidents.md)
    incident_window: float = Field(
        1800.0,
        gt=0,
        le=7 * 86400,
        description="Seconds: an alert joins an incident when its time is within this of an alert already in it",
    )
    incident_group_by: list[str] = Field(
        default_factory=lambda: ["host.name", "host.hostname", "user.name", "source.ip"],
        min_length=1,
        max_length=10,
        description="Alert fields an incident is keyed by: the first one an alert has (none: an incident of its own)",
    )

    # -- SSH
    ssh_known_hosts: Path | None = Field(None, description="known_hosts file pinning host keys")
    ssh_connect_timeout: float = Field(10.0, gt=0)
    ssh_command_timeout: float = Field(60.0, gt=0)

    # -- Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_default_channel: str = "#soc-alerts"
    slack_webhook_url: SecretStr | None = Field(None, description="Incoming webhook (lighter option, no threads)")
    notify_routes_file: Path = Field(Path("notify.yml"), description="Slack routing by severity/rule/team")
    slack_channel_interval: float = Field(1.0, ge=0, description="Seconds between messages to one Slack channel")
    slack_storm_threshold: int = Field(20, ge=1, description="Pending alert cards in a channel that become a summary")

    # -- API and audit
    rules_check_exclude: list[str] = Field(
        default_factory=list, description="Validators `soar rules check` leaves out (names as for --exclude)"
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=1, le=65535)
    api_tokens_file: Path | None = Field(None, description="YAML of API tokens with roles and attributes")
    ingest_max_request_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest body POST /ingest/alerts accepts (413 above it)"
    )
    ingest_max_field_bytes: int = Field(
        64 * 1024, ge=64, description="Largest string (value or key) in an ingested alert, UTF-8 bytes (413 above it)"
    )
    token: SecretStr | None = Field(
        None,
        description="The command line's own API token (SOAR_TOKEN): the principal `soar runs approve` and other "
        "decisions act as; without it, the principal whose os_user is your login",
    )
    audit_hmac_key: SecretStr | None = Field(
        None,
        description="Key of the audit chain's HMAC (default: generated once into <state_dir>/audit/hmac.key)",
    )
    audit_checkpoint_file: Path | None = Field(
        None,
        description="Append-only file of the audit chain's keyed head, outside the store"
        " (default: <state_dir>/audit/checkpoint.log)",
    )
    audit_checkpoint_syslog: str | None = Field(
        None,
        description="Also send every audit checkpoint to syslog (a copy a collector keeps off this host): "
        "a Unix datagram socket such as /dev/log, or host:port for UDP",
    )
    integration: dict[str, dict[str, SecretStr]] = Field(
        default_factory=dict,
        description="Settings and secrets of integrations, by integration then key (SOAR_INTEGRATION__<NAME>__<KEY>,"
        " or `integration: {name: {key: value}}` in the config file); an action receives only the keys its"
        " integration declares",
    )
    audit_checkpoint_every: int = Field(32, ge=1, description="Audit appends between two checkpoints")
    audit_checkpoint_interval: float = Field(
        5.0, gt=0, description="Seconds after an audit append before its checkpoint is written at the latest"
    )

    @field_validator("audit_checkpoint_syslog")
    @classmethod
    def _syslog_address(cls, value: str | None) -> str | None:
        if not value:
            return None
        if value.startswith("/"):
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected a Unix socket path such as /dev/log, or host:port")
        return value

    @field_validator("elasticsearch_url", "slack_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"must be an http(s):// URL with a host, got {mask_url(value)!r}")
        return value

    @field_validator("detection_search_timeout")
    @classmethod
    def _below_request_timeout(cls, value: float | None, info: ValidationInfo) -> float | None:
        request = info.data.get("elasticsearch_timeout")
        if value is not None and isinstance(request, float) and value >= request:
            raise ValueError(
                f"must be below elasticsearch_timeout ({request:g} s), so a slow rule times out alone"
                " instead of the whole request"
            )
        return value

    @property
    def search_timeout(self) -> float:
        """Seconds Elasticsearch spends on one search of a detection cycle (then it reports ``timed_out``)."""
        return self.detection_search_timeout or self.elasticsearch_timeout / 2

    @property
    def cycle_request_timeout(self) -> float:
        """Seconds one request of a scheduler tick or detection cycle may wait (store, events, Redis):
        ``min(elasticsearch_timeout, max(CYCLE_TIMEOUT_FLOOR, CYCLE_TIMEOUT_INTERVALS × detection_interval))``.

        A dependency that accepts connections and never answers (a black hole) then costs a tick at most this,
        not the ``elasticsearch_timeout`` sized for interactive commands: the tick fails, says so once, and the
        next one tries again while the checkpoint stays put (the window becomes a gap, filled when it is back).
        """
        budget = max(CYCLE_TIMEOUT_FLOOR, CYCLE_TIMEOUT_INTERVALS * self.detection_interval)
        return min(self.elasticsearch_timeout, budget)

    def for_cycles(self) -> Settings:
        """These settings with request timeouts sized to the cycle (what scheduler and detection clients use)."""
        timeout = self.cycle_request_timeout
        if timeout >= self.elasticsearch_timeout:
            return self
        search = self.detection_search_timeout
        update: dict[str, Any] = {"elasticsearch_timeout": timeout}
        if search is not None and search >= timeout:  # still below the request's, so a slow rule times out alone
            update["detection_search_timeout"] = timeout / 2
        return self.model_copy(update=update)

    @field_validator("incident_group_by")
    @classmethod
    def _group_fields(cls, value: list[str]) -> list[str]:
        bad = [f for f in value if not re.fullmatch(r"[A-Za-z_@][A-Za-z0-9_.@-]{0,120}", f)]
        if bad:
            raise ValueError(f"not an alert field name: {bad[0]!r} (e.g. host.name, user.name)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL, got {mask_url(value)!r}")
        return value

    @field_validator("integration")
    @classmethod
    def _integration_names(cls, value: dict[str, dict[str, SecretStr]]) -> dict[str, dict[str, SecretStr]]:
        for name, keys in value.items():
            for part in (name, *keys):
                if not INTEGRATION_KEY.fullmatch(part):
                    raise ValueError(f"{part!r}: integration names and keys are [a-z][a-z0-9_]* (lower case)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _IntegrationEnvSource(settings_cls), _FileSource(settings_cls))

    # -- derived paths
    def content_path(self, relative: Path) -> Path:
        return relative if relative.is_absolute() else self.content_root / relative

    @property
    def inventory_path(self) -> Path:
        return self.content_path(self.inventory_file)

    @property
    def policy_path(self) -> Path:
        return self.content_path(self.policy_file)

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain values, every secret replaced by a mask, every URL's password too."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = MASK
            elif name == "integration":
                out[name] = {n: dict.fromkeys(keys, MASK) for n, keys in value.items()}
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return mask_values(out)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = _yaml.read_text(path)  # over 1 MiB: refused before reading
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else _yaml.load(text)  # an alias is refused
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: config file is not valid TOML: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: config file is not valid YAML: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config file must be a mapping of setting names to values")
    return data


class _FileSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = config_file_path()
        self._values = _read_config_file(path) if path else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


class _IntegrationEnvSource(PydanticBaseSettingsSource):
    """``SOAR_INTEGRATION__<NAME>__<KEY>`` variables as ``integration: {name: {key: value}}`` (names lower-cased);
    they replace the config file's keys of the same name, the rest of its ``integration`` section stays."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        found: dict[str, dict[str, str]] = {}
        for key, value in os.environ.items():
            match = INTEGRATION_ENV.fullmatch(key)
            if match:
                found.setdefault(match["name"].lower(), {})[match["key"].lower()] = value
        self._values = found

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (self._values or None) if field_name == "integration" else None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self._values:
            return {}
        from_file = _FileSource(self.settings_cls)().get("integration")
        merged = {k: dict(v) for k, v in from_file.items()} if isinstance(from_file, dict) else {}
        for name, keys in self._values.items():
            merged.setdefault(name, {}).update(keys)
        return {"integration": merged}


def _unknown_env_settings() -> list[str]:
    known = {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields} | {f"{ENV_PREFIX}CONFIG"}
    return sorted(
        key
        for key in os.environ
        if key.startswith(ENV_PREFIX) and key not in known and not INTEGRATION_ENV.fullmatch(key)
    )


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment and the config file; raise ConfigError naming the setting."""
    unknown = _unknown_env_settings()
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting (see 'soar config show' for the valid names)")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(part) for part in err["loc"]) or "settings"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{name}: unknown setting in the config file") from None
        # not chained: pydantic's error repeats the input, a URL's password with it (shown by --debug)
        raise ConfigError(f"{name} ({ENV_PREFIX}{name.upper()}): {mask_url(msg)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
