"""Settings, read once from the environment (the only source of configuration).

Every variable is listed in examples/apps/README.md. A bad value stops the
process at start with exit code 2 and one line on stderr naming the variable.
Secrets (AWS keys, Cassandra password, credentials inside a MongoDB URL) are
kept out of every log line: see `redact_url` and `Settings.describe`.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

STORES = ("dynamodb", "mongodb", "cassandra")
# Cassandra allows [A-Za-z0-9_] up to 48 characters in a table or index name; the
# longest name made from the prefix is "<prefix>_outbox_status" (14 more characters).
PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,32}$")
KEYSPACE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


class ConfigError(Exception):
    """A missing or malformed environment variable."""


def _get(env: Mapping[str, str], name: str, default: Optional[str] = None) -> Optional[str]:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _required(env, name: str, why: str) -> str:
    value = _get(env, name)
    if value is None:
        raise ConfigError(f"{name} is required ({why})")
    return value


def _int(env, name: str, default: int, minimum: int = 0) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}")
    return value


def _bool(env, name: str, default: bool) -> bool:
    raw = _get(env, name)
    if raw is None:
        return default
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (true or false)")


def _choice(env, name: str, default: str, choices) -> str:
    raw = (_get(env, name) or default).lower()
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
    return raw


def _host_port(env, name: str, why: str) -> tuple[str, int]:
    raw = _required(env, name, why)
    host, sep, port = raw.rpartition(":")
    if not sep:
        return raw, 9042
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not HOST:PORT") from None


def redact_url(url: str) -> str:
    """The URL without its password (mongodb://user:***@host/...)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Settings:
    role: str  # order_service | outbox_service | outbox_relay
    store: str
    host: str
    port: Optional[int]  # None: the relay without RELAY_PORT serves no HTTP
    table_prefix: str
    create_tables: bool
    store_timeout_ms: int
    driver_retries: bool
    shutdown_grace_ms: int
    log_level: str
    # naive writer
    on_secondary_failure: str
    primary_retries: int
    secondary_retries: int
    retry_backoff_ms: int
    event_id: str
    # relay
    relay_idempotent: bool
    relay_batch_size: int
    relay_poll_interval_ms: int
    relay_backoff_ms: int
    relay_backoff_max_ms: int
    relay_mark_delay_ms: int
    # dynamodb
    orders_endpoint: Optional[str] = None
    events_endpoint: Optional[str] = None
    aws_region: str = "us-east-1"
    aws_access_key_id: Optional[str] = None
    aws_secret_access_key: Optional[str] = None
    aws_session_token: Optional[str] = None
    dynamodb_outbox: str = "attribute"
    # mongodb
    mongodb_orders_url: Optional[str] = None
    mongodb_events_url: Optional[str] = None
    mongodb_database: str = "shop"
    # cassandra
    cassandra_orders_host: Optional[tuple] = None
    cassandra_events_host: Optional[tuple] = None
    cassandra_keyspace: str = "shop"
    cassandra_replication_factor: int = 1
    cassandra_consistency: str = "LOCAL_QUORUM"
    cassandra_username: Optional[str] = None
    cassandra_password: Optional[str] = None
    cassandra_protocol_version: int = 5

    # Which connections a role opens: the outbox service never touches the events store.
    @property
    def sides(self) -> tuple[str, ...]:
        return ("orders",) if self.role == "outbox_service" else ("orders", "events")

    @property
    def orders_table(self) -> str:
        return f"{self.table_prefix}_orders"

    @property
    def events_table(self) -> str:
        return f"{self.table_prefix}_order_events"

    @property
    def outbox_table(self) -> str:
        return f"{self.table_prefix}_outbox"

    def describe(self) -> str:
        """One log line of the effective configuration, without any secret."""
        parts = [f"store={self.store}", f"prefix={self.table_prefix}",
                 f"create_tables={str(self.create_tables).lower()}",
                 f"store_timeout_ms={self.store_timeout_ms}",
                 f"driver_retries={str(self.driver_retries).lower()}"]
        if self.port is not None:
            parts.insert(0, f"listen={self.host}:{self.port}")
        if self.store == "dynamodb":
            parts += [f"orders_endpoint={redact_url(self.orders_endpoint or '')}",
                      f"region={self.aws_region}", "aws_credentials=<from environment>"]
            if self.role != "order_service":
                parts.append(f"outbox={self.dynamodb_outbox}")
            if "events" in self.sides:
                parts.append(f"events_endpoint={redact_url(self.events_endpoint or '')}")
        elif self.store == "mongodb":
            parts += [f"orders_url={redact_url(self.mongodb_orders_url or '')}",
                      f"database={self.mongodb_database}"]
            if "events" in self.sides:
                parts.append(f"events_url={redact_url(self.mongodb_events_url or '')}")
        else:
            h, p = self.cassandra_orders_host
            parts += [f"orders_host={h}:{p}", f"keyspace={self.cassandra_keyspace}",
                      f"consistency={self.cassandra_consistency}",
                      "auth=" + ("<from environment>" if self.cassandra_username else "none")]
            if "events" in self.sides:
                h, p = self.cassandra_events_host
                parts.append(f"events_host={h}:{p}")
        if self.role == "order_service":
            parts += [f"on_secondary_failure={self.on_secondary_failure}",
                      f"primary_retries={self.primary_retries}",
                      f"secondary_retries={self.secondary_retries}",
                      f"retry_backoff_ms={self.retry_backoff_ms}", f"event_id={self.event_id}"]
        elif self.role == "outbox_service":
            parts += [f"primary_retries={self.primary_retries}", f"retry_backoff_ms={self.retry_backoff_ms}"]
        else:
            parts += [f"idempotent={str(self.relay_idempotent).lower()}",
                      f"batch_size={self.relay_batch_size}",
                      f"poll_interval_ms={self.relay_poll_interval_ms}",
                      f"backoff_ms={self.relay_backoff_ms}..{self.relay_backoff_max_ms}"]
            if self.relay_mark_delay_ms:
                parts.append(f"mark_delay_ms={self.relay_mark_delay_ms}")
        return " ".join(parts)


def load(role: str, argv: list[str], env: Mapping[str, str] = os.environ) -> Settings:
    """Reads the settings of one process; `--create-tables` in argv = CREATE_TABLES=true."""
    unknown = [a for a in argv if a not in ("--create-tables",)]
    if unknown:
        raise ConfigError(f"unknown argument {unknown[0]!r} (the only flag is --create-tables; "
                          "everything else is configured by environment variables)")
    store = _choice(env, "STORE", "", STORES) if _get(env, "STORE") else None
    if store is None:
        raise ConfigError("STORE is required: dynamodb, mongodb or cassandra")
    prefix = _get(env, "TABLE_PREFIX", "shop")
    if not PREFIX_RE.match(prefix):
        raise ConfigError(f"TABLE_PREFIX={prefix!r}: a letter then up to 32 letters, digits or underscores")

    if role == "outbox_relay":
        port = _int(env, "RELAY_PORT", 0, minimum=0) or None
    else:
        port = _int(env, "PORT", 8080, minimum=1)
    if port is not None and port > 65535:
        raise ConfigError(f"port {port} is above 65535")

    kw = dict(
        role=role,
        store=store,
        host=_get(env, "HOST", "127.0.0.1"),
        port=port,
        table_prefix=prefix,
        create_tables=_bool(env, "CREATE_TABLES", False) or "--create-tables" in argv,
        store_timeout_ms=_int(env, "STORE_TIMEOUT_MS", 2000, minimum=1),
        driver_retries=_bool(env, "DRIVER_RETRIES", False),
        shutdown_grace_ms=_int(env, "SHUTDOWN_GRACE_MS", 10000),
        log_level=_choice(env, "LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper(),
        on_secondary_failure=_choice(env, "ON_SECONDARY_FAILURE", "fail", ("fail", "log-and-continue")),
        primary_retries=_int(env, "PRIMARY_RETRIES", 0),
        secondary_retries=_int(env, "SECONDARY_RETRIES", 0),
        retry_backoff_ms=_int(env, "RETRY_BACKOFF_MS", 100),
        event_id=_choice(env, "EVENT_ID", "order-id", ("order-id", "random")),
        relay_idempotent=_bool(env, "RELAY_IDEMPOTENT", True),
        relay_batch_size=_int(env, "RELAY_BATCH_SIZE", 50, minimum=1),
        relay_poll_interval_ms=_int(env, "RELAY_POLL_INTERVAL_MS", 200, minimum=1),
        relay_backoff_ms=_int(env, "RELAY_BACKOFF_MS", 200, minimum=1),
        relay_backoff_max_ms=_int(env, "RELAY_BACKOFF_MAX_MS", 5000, minimum=1),
        relay_mark_delay_ms=_int(env, "RELAY_MARK_DELAY_MS", 0),
    )
    needs_events = role != "outbox_service"
    if store == "dynamodb":
        key = _get(env, "AWS_ACCESS_KEY_ID")
        secret = _get(env, "AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            # Never fall back to the SDK's credential chain: it would ask the EC2
            # instance metadata service, a network call outside the test machine.
            raise ConfigError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required with STORE=dynamodb "
                              "(any values work against the local moto server)")
        kw.update(
            orders_endpoint=_required(env, "ORDERS_ENDPOINT", "the DynamoDB endpoint URL of the orders table"),
            events_endpoint=(_required(env, "EVENTS_ENDPOINT", "the DynamoDB endpoint URL of the events table")
                             if needs_events else _get(env, "EVENTS_ENDPOINT")),
            aws_region=_get(env, "AWS_REGION") or _get(env, "AWS_DEFAULT_REGION") or "us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=_get(env, "AWS_SESSION_TOKEN"),
            dynamodb_outbox=_choice(env, "DYNAMODB_OUTBOX", "attribute", ("attribute", "transaction")),
        )
        for name in ("orders_endpoint", "events_endpoint"):
            url = kw[name]
            if url is not None and urlsplit(url).scheme not in ("http", "https"):
                raise ConfigError(f"{name.upper()}={redact_url(url)!r} is not an http(s) URL")
    elif store == "mongodb":
        kw.update(
            mongodb_orders_url=_required(env, "MONGODB_ORDERS_URL", "the MongoDB URL of the orders collection"),
            mongodb_events_url=(_required(env, "MONGODB_EVENTS_URL", "the MongoDB URL of the events collection")
                                if needs_events else _get(env, "MONGODB_EVENTS_URL")),
            mongodb_database=_get(env, "MONGODB_DATABASE", "shop"),
        )
        for name in ("mongodb_orders_url", "mongodb_events_url"):
            url = kw[name]
            if url is not None and not url.startswith(("mongodb://", "mongodb+srv://")):
                raise ConfigError(f"{name.upper()} must start with mongodb:// (got {redact_url(url)!r})")
    else:
        keyspace = _get(env, "CASSANDRA_KEYSPACE", "shop")
        if not KEYSPACE_RE.match(keyspace):
            raise ConfigError(f"CASSANDRA_KEYSPACE={keyspace!r}: a letter then up to 47 letters, digits or underscores")
        consistency = _get(env, "CASSANDRA_CONSISTENCY", "LOCAL_QUORUM").upper()
        from cassandra import ConsistencyLevel  # noqa: PLC0415 - only this store needs the driver
        if consistency not in ConsistencyLevel.name_to_value:
            raise ConfigError(f"CASSANDRA_CONSISTENCY={consistency!r} is not a consistency level")
        kw.update(
            cassandra_orders_host=_host_port(env, "CASSANDRA_ORDERS_HOST", "HOST:PORT of the orders side"),
            cassandra_events_host=(_host_port(env, "CASSANDRA_EVENTS_HOST", "HOST:PORT of the events side")
                                   if needs_events else None),
            cassandra_keyspace=keyspace,
            cassandra_replication_factor=_int(env, "CASSANDRA_REPLICATION_FACTOR", 1, minimum=1),
            cassandra_consistency=consistency,
            cassandra_username=_get(env, "CASSANDRA_USERNAME"),
            cassandra_password=_get(env, "CASSANDRA_PASSWORD"),
            cassandra_protocol_version=_int(env, "CASSANDRA_PROTOCOL_VERSION", 5, minimum=3),
        )
    return Settings(**kw)


def load_or_exit(role: str) -> Settings:
    try:
        return load(role, sys.argv[1:])
    except ConfigError as e:
        print(f"{role}: configuration error: {e}", file=sys.stderr)
        sys.exit(2)
