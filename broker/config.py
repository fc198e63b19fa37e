"""The hub's settings: each field of `Config` can come from a command-line flag, a `CROSSROADS_<FIELD>`
environment variable, or the same key in a TOML file's `[hub]` table, in that order of precedence.
"""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from broker.base.store import database_url_for


@dataclass(frozen=True)
class Config:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # the scheme://host:port agencies sign as @target-uri; derived from host:port if empty
    database_url: str = ""  # SQLite in state_dir if empty
    hub_key_path: Path | None = None  # state_dir/hub.pem if None, for every command and the demo (`crossroads keygen`)
    hub_key_id: str = "crossroads-hub"
    max_body_bytes: int = 64 * 1024
    max_import_bytes: int = 4 * 1024**3  # a bulk import of references, streamed to STATE_DIR/imports as it comes
    import_batch: int = 0  # lines of an import applied in one transaction; 0: by store (broker/hub.py IMPORT_BATCH)
    max_header_bytes: int = 16 * 1024  # the whole header section; more is answered 431 headers-too-large
    holder_timeout_s: float = 5.0
    holder_connections: int = 100
    holder_connections_each: int = 20  # open connections to any one holder: a hung adapter ties up no more
    rate_per_s: float = 200.0
    rate_burst: float = 400.0
    in_flight_per_principal: int = 32  # requests one principal may have inside the hub at once; more get 429
    # Requests refused before their caller was authenticated (bad signatures, unknown keys, unparseable HTTP), per
    # peer address (an IPv6 one by its /64): a burst, then this many a second; beyond them the address gets 429
    # too-many-failures before its requests are read, and only the first of each such run is audited.
    unauthenticated_rate_per_s: float = 1.0
    unauthenticated_burst: float = 100.0
    # Load balancers whose X-Forwarded-For names the peer: comma-separated addresses or networks (CIDR).
    trusted_proxies: str = ""
    policy_poll_s: float = 1.0
    cache_ttl_s: float = 1.0  # how long a subject's holdings and relationships, once read, are trusted
    # Keys, agencies, operators, categories and purposes, once read: every directory write moves the directory
    # version, and seeing it move (cache_follow_s) drops them at once; this only bounds how long they stay.
    cache_principals_ttl_s: float = 300.0
    cache_max_entries: int = 65_536  # per cache of directory reads and policy decisions (least recently used go)
    # How long a read of the directory version (moved by every directory write) is reused. 0: read for every
    # request, so that a key revocation or a suspension committed by any process refuses the very next request
    # on every process (issue 9); a positive value trades that for fewer reads.
    cache_follow_s: float = 0.0
    audit_batch_max: int = 256  # records one group-commit transaction holds at most
    audit_batch_wait_s: float = 0.0  # how long a batch waits for more; 0: commit once the last commit is done
    audit_link_interval_s: float = 0.5  # how often committed audit records are linked into the chain
    audit_checkpoint_every: int = 1000  # records between signed audit checkpoints...
    audit_checkpoint_interval_s: float = 60.0  # ...or seconds, whichever comes first
    # A reserved exchange's lease: it may be completed until this long past the holder's timeout (counted from its
    # arrival); then any hub process closes it as abandoned (its process died mid-exchange).
    audit_abandon_after_s: float = 25.0
    # Room the store keeps for completing the exchanges in flight (broker/audit/reserve.py): an exchange is forwarded
    # only while it is kept, 1 KiB for each exchange in flight in a hub process.
    audit_reserve_bytes: int = 1024**2
    notification_poll_s: float = 0.5  # how often the outbox is checked for due deliveries
    notification_backoff_s: float = 1.0  # first retry delay; doubles per attempt, with jitter
    notification_backoff_cap_s: float = 300.0
    notification_max_attempts: int = 10  # then the delivery is dead-lettered
    notification_max_age_s: float = 86_400.0  # a delivery older than this is dead-lettered too
    notification_lease_s: float = 60.0  # a claimed delivery whose worker stopped is tried again after this
    # Batches (broker/batches/runner.py): files of exchange requests, streamed to STATE_DIR/batches as they come.
    max_batch_bytes: int = 1024**3
    max_batch_lines: int = 1_000_000
    batch_lines_per_day: int = 5_000_000  # lines of batches each agency may submit per UTC day, on all hub processes
    batch_window: int = 2_000  # lines decided together: one read of each table for all of them
    batch_chunk: int = 250  # lines of one chunk to a holder
    batch_chunks_at_once: int = 2  # chunks in flight to holders, in a hub process (apart from single exchanges)
    batch_at_once: int = 2  # batches running at once in a hub process; the others wait their turn
    batch_attempts: int = 3  # tries of a chunk whose holder fails or times out, with doubling waits
    batch_backoff_s: float = 0.5
    batch_lease_s: float = 60.0  # a running batch whose process stopped is taken up after this
    batch_keep_s: float = 7 * 86_400.0  # an ended batch's answers are forgotten this long after, read or not
    shutdown_timeout_s: float = 30.0  # on SIGTERM, how long in-flight requests may take to finish
    emergency_per_day: int = 3  # break-the-glass accesses each agency may make per UTC day, on all hub processes
    # Administrators an edit of the sharing rules needs: 1, or 2 (four eyes: another administrator approves it).
    policy_approvals: int = 1
    # Alerts to privacy officers (broker/notifications/alerts.py): reviews that became pending and anomalies, sent
    # once by whichever serving hub process finds them, to each channel set below (none set: no alerts). They name
    # ids and names only, never a subject.
    alert_interval_s: float = 60.0
    alert_max_attempts: int = 5  # tries of an alert on a channel, one a round; then it is recorded as failed
    alert_webhook_url: str = ""  # POSTed JSON, signed by the hub as its requests to adapters are
    alert_smtp_host: str = ""  # e-mail: one plain-text digest a round
    alert_smtp_port: int = 25
    alert_smtp_starttls: int = 0  # 1: STARTTLS, the server's certificate checked
    alert_smtp_username: str = ""  # no login when empty
    alert_smtp_password: str = ""  # from CROSSROADS_ALERT_SMTP_PASSWORD in practice; masked by `crossroads config`
    alert_email_from: str = ""
    alert_email_to: str = ""  # comma-separated addresses

    def __post_init__(self) -> None:
        if self.policy_approvals not in (1, 2):
            raise ConfigError(
                f"policy_approvals must be 1 (an administrator edits the rules alone) or 2 (another approves each "
                f"edit), not {self.policy_approvals!r}"
            )
        if self.alert_smtp_starttls not in (0, 1):
            raise ConfigError(f"alert_smtp_starttls must be 0 or 1 (STARTTLS), not {self.alert_smtp_starttls!r}")
        if self.alert_smtp_host and not (self.alert_email_from and self.alert_email_to.strip(" ,")):
            raise ConfigError("alert_smtp_host needs alert_email_from and alert_email_to")

    @property
    def url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def database(self) -> str:
        return self.database_url or database_url_for(self.state_dir)

    @property
    def key_path(self) -> Path:
        return self.hub_key_path or self.state_dir / "hub.pem"


# Environment variable of each setting; `hub_key_path` keeps the shorter name the CLI has always used.
ENV_NAMES = {field.name: f"CROSSROADS_{field.name.upper()}" for field in fields(Config)}
ENV_NAMES["hub_key_path"] = "CROSSROADS_HUB_KEY"


class ConfigError(ValueError):
    pass


def load_config(
    explicit: Mapping[str, object], environ: Mapping[str, str], toml_path: Path | None
) -> tuple[Config, dict[str, str]]:
    """The effective configuration and where each setting came from (flag, environment, file or default)."""
    table: dict[str, object] = {}
    if toml_path is not None:
        try:
            document = tomllib.loads(toml_path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"{toml_path}: {error}") from error
        table = document.get("hub", document)
        unknown = sorted(set(table) - set(ENV_NAMES))
        if unknown:
            raise ConfigError(f"{toml_path}: unknown settings {', '.join(unknown)}")
    hints = typing.get_type_hints(Config)
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for name, env_name in ENV_NAMES.items():
        if name in explicit:
            values[name], sources[name] = explicit[name], "flag"
        elif env_name in environ:
            values[name], sources[name] = _convert(name, hints[name], environ[env_name]), env_name
        elif name in table:
            values[name], sources[name] = _convert(name, hints[name], table[name]), str(toml_path)
        else:
            sources[name] = "default"
    values.setdefault("state_dir", Path("state"))
    return Config(**values), sources  # type: ignore[arg-type]


def _convert(name: str, hint: object, value: object) -> object:
    """A setting's value in its field's type (str, int, float, Path, or Path | None)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    target = next(option for option in options if option is not type(None))
    if value in ("", None) and type(None) in options:
        return None
    try:
        if target is int and isinstance(value, str | int) and not isinstance(value, bool):
            return int(value)
        if target is float and isinstance(value, str | int | float) and not isinstance(value, bool):
            return float(value)
        if target in (str, Path) and isinstance(value, str):
            return target(value)
    except ValueError:
        pass
    raise ConfigError(f"{name} must be of type {getattr(target, '__name__', target)}, not {value!r}")


def shown(config: Config, sources: Mapping[str, str]) -> list[str]:
    """`name = value  # source` lines, with the passwords (the database URL's, the SMTP server's) masked."""
    lines = []
    for field in fields(Config):
        value = getattr(config, field.name)
        if field.name == "database_url" and value:
            value = _masked(value)
        if field.name == "alert_smtp_password" and value:
            value = "****"
        source = sources.get(field.name, "default")
        if value is None:
            lines.append(f"# {field.name} is not set  ({source})")
        else:
            rendered = f'"{value}"' if isinstance(value, str | Path) else str(value)
            lines.append(f"{field.name} = {rendered}  # {source}")
    return lines


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@")
    return urlunsplit(parts._replace(netloc=netloc))
