"""Apache Cassandra with the DataStax (Apache) cassandra-driver: one Cluster per side.

Tables in keyspace CASSANDRA_KEYSPACE (names prefixed by TABLE_PREFIX):
  <prefix>_orders        (order_id text PRIMARY KEY, customer_id bigint, total_cents bigint,
                          payload text, created_at timestamp)
  <prefix>_order_events  (event_id text PRIMARY KEY, order_id text, customer_id bigint,
                          total_cents bigint, event_type text, occurred_at timestamp)
  <prefix>_outbox        (order_id text PRIMARY KEY, customer_id bigint, total_cents bigint,
                          event_type text, status text, created_at timestamp, published_at timestamp)
                         + a storage-attached index on status (Cassandra 5)

The outbox service writes the order row and its outbox row in one LOGGED BATCH.
Both rows have the same partition key (order_id) in the same keyspace, so the
batch is a single mutation: applied all or nothing.

Through a proxy: the driver learns node addresses from system.local and
system.peers and would open pools to them, bypassing the proxy. Each side's
Cluster therefore uses `ProxyOnlyPolicy`, which ignores every host whose endpoint
(address AND port) is not the configured one; the host the driver connected to
first keeps the contact point's endpoint, so all traffic stays on the proxy.
(The driver's WhiteListRoundRobinPolicy compares addresses only, not ports: with
the proxy and the node both on 127.0.0.1 it would let the real node in.)
"""

from __future__ import annotations

from cassandra import (ConsistencyLevel, OperationTimedOut, Unavailable, WriteTimeout)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.connection import ConnectionBusy, ConnectionShutdown
from cassandra.pool import NoConnectionsAvailable
from cassandra.policies import (ExponentialReconnectionPolicy, FallthroughRetryPolicy, HostDistance,
                                RetryPolicy, RoundRobinPolicy)
from cassandra.query import BatchStatement, BatchType

from .errors import StoreError, StoreUnavailable
from .model import EVENT_TYPE, Event, Order, now


class ProxyOnlyPolicy(RoundRobinPolicy):
    """Round robin over the hosts whose endpoint is exactly (address, port)."""

    def __init__(self, address: str, port: int):
        super().__init__()
        self.endpoint = (address, port)

    def _ours(self, host) -> bool:
        return (host.endpoint.address, host.endpoint.port) == self.endpoint

    def populate(self, cluster, hosts):
        super().populate(cluster, [h for h in hosts if self._ours(h)])

    def distance(self, host):
        return HostDistance.LOCAL if self._ours(host) else HostDistance.IGNORED

    def on_up(self, host):
        if self._ours(host):
            super().on_up(host)

    def on_add(self, host):
        if self._ours(host):
            super().on_add(host)


def _never_sent(err) -> bool:
    """An error the driver records for a host it did not send the request to."""
    if isinstance(err, (NoConnectionsAvailable, ConnectionBusy, ConnectionRefusedError)):
        return True
    if isinstance(err, ConnectionShutdown):
        return False  # the connection closed with the request in flight
    text = str(err)
    return any(m in text for m in ("Host has been marked down or removed", "Pool is shutdown",
                                   "Tried connecting", "Connection refused"))


def _classify(e: Exception, what: str) -> Exception:
    if isinstance(e, NoHostAvailable):
        # No host in the query plan at all (the only one is marked down), or no
        # attempt got as far as sending: nothing was written. A connection that
        # broke with the request in flight (retried with DRIVER_RETRIES=true, then
        # reported here) is an unknown outcome.
        if all(_never_sent(err) for err in e.errors.values()):
            return StoreUnavailable(f"{what}: no host reachable: {e}")
        return StoreError(f"{what}: {e}")
    if isinstance(e, Unavailable):
        return StoreUnavailable(f"{what}: {e}")  # refused before any replica wrote
    if isinstance(e, (OperationTimedOut, WriteTimeout)):
        return StoreError(f"{what}: timed out: {e}")
    return StoreError(f"{what}: {e.__class__.__name__}: {e}")


class CassandraStore:
    name = "cassandra"

    def __init__(self, s):
        self.s = s
        self.ks = s.cassandra_keyspace
        self.clusters: dict[str, Cluster] = {}
        self.sessions = {}
        self.ready = False

    # -------------------------------------------------------------- connection --
    def _connect(self, side: str):
        host, port = self.s.cassandra_orders_host if side == "orders" else self.s.cassandra_events_host
        timeout = self.s.store_timeout_ms / 1000
        profile = ExecutionProfile(
            load_balancing_policy=ProxyOnlyPolicy(host, port),
            # DRIVER_RETRIES=false: the driver never retries on its own.
            retry_policy=RetryPolicy() if self.s.driver_retries else FallthroughRetryPolicy(),
            consistency_level=ConsistencyLevel.name_to_value[self.s.cassandra_consistency],
            request_timeout=timeout,
        )
        auth = None
        if self.s.cassandra_username:
            auth = PlainTextAuthProvider(username=self.s.cassandra_username, password=self.s.cassandra_password or "")
        cluster = Cluster(
            contact_points=[host],
            port=port,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            auth_provider=auth,
            # Cassandra 4.0 and later speak v5; pinning it spares a downgrade dance (and its warnings).
            protocol_version=self.s.cassandra_protocol_version,
            connect_timeout=timeout,
            control_connection_timeout=timeout,
            # Reconnect within 2 s of a store coming back (the default backs off to 10 minutes).
            reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.2, max_delay=2.0),
        )
        try:
            session = cluster.connect()
        except Exception:
            cluster.shutdown()
            raise
        self.clusters[side] = cluster
        self.sessions[side] = session

    def _ensure_connected(self):
        for side in self.s.sides:
            if side not in self.sessions:
                try:
                    self._connect(side)
                except Exception as e:  # noqa: BLE001 - reported by the caller, retried at start
                    raise _classify(e, f"connect {side}") from e

    def _t(self, table: str) -> str:
        return f"{self.ks}.{table}"

    # ------------------------------------------------------------------ schema --
    def create_schema(self) -> list[str]:
        self._ensure_connected()
        s = self.s
        ddl = {
            s.orders_table: "order_id text PRIMARY KEY, customer_id bigint, total_cents bigint, "
                            "payload text, created_at timestamp",
            s.events_table: "event_id text PRIMARY KEY, order_id text, customer_id bigint, "
                            "total_cents bigint, event_type text, occurred_at timestamp",
            s.outbox_table: "order_id text PRIMARY KEY, customer_id bigint, total_cents bigint, "
                            "event_type text, status text, created_at timestamp, published_at timestamp",
        }
        wanted = {"order_service": [("orders", s.orders_table), ("events", s.events_table)],
                  "outbox_service": [("orders", s.orders_table), ("orders", s.outbox_table)],
                  "outbox_relay": [("events", s.events_table)]}[s.role]
        made = []
        for side, table in wanted:
            session = self.sessions[side]
            session.execute(
                f"CREATE KEYSPACE IF NOT EXISTS {self.ks} WITH replication = "
                f"{{'class': 'SimpleStrategy', 'replication_factor': {s.cassandra_replication_factor}}}",
                timeout=30)
            session.execute(f"CREATE TABLE IF NOT EXISTS {self._t(table)} ({ddl[table]})", timeout=30)
            if table == s.outbox_table:
                session.execute(f"CREATE INDEX IF NOT EXISTS {table}_status ON {self._t(table)} (status) "
                                "USING 'sai'", timeout=30)
            made.append(table)
        return made

    def check_ready(self) -> None:
        """Connects and prepares every statement (fails until the tables exist)."""
        self._ensure_connected()
        s, o = self.s, self.sessions["orders"]
        try:
            if s.role == "order_service":
                self.ins_order = o.prepare(
                    f"INSERT INTO {self._t(s.orders_table)} (order_id, customer_id, total_cents, payload, created_at) "
                    "VALUES (?, ?, ?, ?, ?)")
            if s.role == "outbox_service":
                self.ins_order = o.prepare(
                    f"INSERT INTO {self._t(s.orders_table)} (order_id, customer_id, total_cents, payload, created_at) "
                    "VALUES (?, ?, ?, ?, ?)")
                self.ins_outbox = o.prepare(
                    f"INSERT INTO {self._t(s.outbox_table)} (order_id, customer_id, total_cents, event_type, status, "
                    "created_at) VALUES (?, ?, ?, ?, 'pending', ?)")
            if s.role == "outbox_relay":
                self.sel_pending = o.prepare(
                    f"SELECT order_id, customer_id, total_cents FROM {self._t(s.outbox_table)} "
                    "WHERE status = 'pending' LIMIT ?")
                self.upd_published = o.prepare(
                    f"UPDATE {self._t(s.outbox_table)} SET status = 'published', published_at = ? "
                    "WHERE order_id = ?")
            if "events" in s.sides:
                self.ins_event = self.sessions["events"].prepare(
                    f"INSERT INTO {self._t(s.events_table)} (event_id, order_id, customer_id, total_cents, "
                    "event_type, occurred_at) VALUES (?, ?, ?, ?, ?, ?)")
        except Exception as e:  # noqa: BLE001
            raise _classify(e, "prepare") from e
        self.ready = True

    def ping(self) -> dict[str, str]:
        out = {}
        for side in self.s.sides:
            try:
                self._ensure_connected()
                self.sessions[side].execute("SELECT release_version FROM system.local",
                                            timeout=self.s.store_timeout_ms / 1000)
                out[side] = "ok"
            except Exception as e:  # noqa: BLE001
                out[side] = str(_classify(e, "ping"))
        return out

    # ------------------------------------------------------------------ writes --
    def _run(self, side: str, stmt, params, what: str):
        try:
            return self.sessions[side].execute(stmt, params)
        except Exception as e:  # noqa: BLE001 - every driver error is classified
            raise _classify(e, what) from e

    def put_order(self, o: Order) -> None:
        """INSERT is an upsert in Cassandra: an existing order id is overwritten."""
        self._run("orders", self.ins_order, (o.order_id, o.customer_id, o.amount_cents, o.payload, o.created_at),
                  f"INSERT {self.s.orders_table}")

    def put_event(self, ev: Event) -> None:
        self._run("events", self.ins_event,
                  (ev.event_id, ev.order_id, ev.customer_id, ev.amount_cents, ev.event_type, ev.occurred_at),
                  f"INSERT {self.s.events_table}")

    def put_order_with_outbox(self, o: Order) -> None:
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(self.ins_order, (o.order_id, o.customer_id, o.amount_cents, o.payload, o.created_at))
        batch.add(self.ins_outbox, (o.order_id, o.customer_id, o.amount_cents, EVENT_TYPE, o.created_at))
        self._run("orders", batch, None, f"LOGGED BATCH {self.s.orders_table}+{self.s.outbox_table}")

    # ------------------------------------------------------------------- relay --
    def pending_outbox(self, limit: int) -> list[dict]:
        rows = self._run("orders", self.sel_pending, (limit,), f"SELECT pending {self.s.outbox_table}")
        return [{"order_id": r.order_id, "customer_id": r.customer_id, "amount_cents": r.total_cents}
                for r in rows]

    def mark_published(self, order_id: str) -> None:
        self._run("orders", self.upd_published, (now(), order_id), f"UPDATE {self.s.outbox_table}")

    def close(self) -> None:
        for c in self.clusters.values():
            c.shutdown()
