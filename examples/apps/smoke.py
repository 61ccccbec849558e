#!/usr/bin/env python3
"""Smoke test of the example services against the real local stack, without dualwrite.

Run it with examples/apps/smoke.sh (which makes the venv first). For each store
(dynamodb = moto, mongoeco, ferretdb, cassandra) it creates its own Toxiproxy
proxies (orders, events, relay; unique names, random ports) in front of the
server's direct port, a fresh table prefix, and then:

  naive, ON_SECONDARY_FAILURE=fail
    20 orders -> 201 each, both tables hold the 20 with the right fields;
    events proxy down: 5 orders -> 500 each, and exactly those 5 are orphans;
    orders proxy down: 3 orders -> never 2xx, every 503 among them absent from the store;
    proxies back: /health 200 again, 5 orders -> 201, both sides present.
  naive, ON_SECONDARY_FAILURE=log-and-continue, SECONDARY_RETRIES=2
    10 orders -> 201; events proxy down: 5 orders -> 201 each (after 3 tries), 5 silent orphans.
  outbox, RELAY_IDEMPOTENT=true, then false (each with its own prefix; on DynamoDB
  with DYNAMODB_OUTBOX=attribute, then once more with transaction, not idempotent)
    20 orders -> 201, the relay publishes 20 events with the right fields;
    events proxy down with the relay running: 10 orders -> 201, the relay logs
    failures and keeps running, proxy back: all 30 delivered;
    SIGTERM relay (exit 0), 20 orders pending, relay restarted with a 1.5 s
    publish-to-mark delay, kill -9 once an entry is published but not marked
    (set U), relay restarted: all 50 orders have their event; total events =
    50 (idempotent) or 50 + |U| (not idempotent), the extra ones exactly U's.
  Every service stops on SIGTERM with exit 0; no secret from the environment
  appears in any log.

Processes it starts are stopped, proxies deleted, tables/collections/keyspaces
dropped (also on failure; --keep keeps data and logs). Polls with bounds, never
sleep-and-hope. Exit 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
TOXIPROXY = "http://127.0.0.1:8474"
HOST = "127.0.0.1"
SERVERS = {"dynamodb": 5000, "mongoeco": 27018, "ferretdb": 27017, "cassandra": 9042}
READY_BOUND_S = 90.0  # service start-up (Cassandra schema changes can be slow on a busy node)
CONVERGE_BOUND_S = 60.0
SECRET = "smoke-secret-" + secrets.token_hex(8)  # planted in the env; must never be logged


class CheckFailed(AssertionError):
    pass


# ------------------------------------------------------------------- helpers --
def http(method: str, url: str, body=None, timeout: float = 30.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, raw.decode(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(what: str, fn, bound: float, interval: float = 0.1):
    """Polls fn() until it returns a truthy value; CheckFailed after `bound` seconds."""
    deadline = time.monotonic() + bound
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - kept for the failure message
            last = e
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not reached within {bound:.0f}s (last: {last!r})")
        time.sleep(interval)


def store_peers(pid: int, own_port: int) -> set[int]:
    """Remote ports of the process's established TCP connections, except those
    accepted on its own HTTP port (read from /proc: no tool needed)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    peers = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
                if inode in inodes and state == "01" and int(local.rsplit(":", 1)[1], 16) != own_port:
                    peers.add(int(remote.rsplit(":", 1)[1], 16))
    return peers


def check(cond: bool, message: str):
    if not cond:
        raise CheckFailed(message)


class Toxiproxy:
    """Our own proxies on the shared Toxiproxy. Others may re-enable every
    disabled proxy meanwhile (`dualwrite reset` does), so a watchdog keeps ours
    down while we want them down and counts each such interference."""

    def __init__(self):
        self.created: list[str] = []
        self.want_down: set[str] = set()
        self.interference = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._watch, name="proxy-watchdog", daemon=True).start()

    def _watch(self):
        while True:
            with self.lock:
                names = list(self.want_down)
            for name in names:
                try:
                    status, body = http("GET", f"{TOXIPROXY}/proxies/{name}", timeout=2)
                    with self.lock:
                        if status == 200 and body["enabled"] and name in self.want_down:
                            http("POST", f"{TOXIPROXY}/proxies/{name}", {"enabled": False}, timeout=2)
                            self.interference += 1
                            print(f"note: proxy {name} was re-enabled by another process; disabled again", flush=True)
                except (OSError, ValueError, KeyError):
                    pass
            time.sleep(0.02)

    def create(self, name: str, upstream_port: int) -> str:
        status, body = http("POST", f"{TOXIPROXY}/proxies",
                            {"name": name, "listen": f"{HOST}:0", "upstream": f"{HOST}:{upstream_port}"})
        check(status == 201, f"creating proxy {name}: HTTP {status} {body}")
        self.created.append(name)
        return body["listen"]

    def set_enabled(self, name: str, enabled: bool):
        with self.lock:
            (self.want_down.discard if enabled else self.want_down.add)(name)
            status, body = http("POST", f"{TOXIPROXY}/proxies/{name}", {"enabled": enabled})
        check(status == 200 and body["enabled"] == enabled, f"toggling proxy {name}: HTTP {status} {body}")

    def delete_all(self):
        for name in self.created:
            http("DELETE", f"{TOXIPROXY}/proxies/{name}")
        self.created.clear()


class Proc:
    """A service started by the smoke test, its output in a log file."""

    def __init__(self, name: str, script: str, env: dict, logdir: str):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.log = open(self.log_path, "ab")
        self.p = subprocess.Popen([sys.executable, "-u", os.path.join(HERE, script)], env=env,
                                  stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self.p.poll() is None

    def text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def terminate(self, bound: float = 20.0) -> int:
        """SIGTERM and wait (bounded); the exit code."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise CheckFailed(f"{self.name} did not exit within {bound:.0f}s of SIGTERM") from None
        finally:
            self.log.close()

    def kill9(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(timeout=10)
        self.log.close()


# ----------------------------------------------------------- direct scanners --
# Read the stores on the servers' own ports (not through the proxies), with the
# same libraries, in the services' schema.
class DynamoScan:
    def __init__(self, port: int):
        import boto3
        self.c = boto3.client("dynamodb", endpoint_url=f"http://{HOST}:{port}", region_name="us-east-1",
                              aws_access_key_id="smoke", aws_secret_access_key="smoke")

    def _scan(self, table):
        items, kw = [], {"TableName": table, "ConsistentRead": True}
        while True:
            page = self.c.scan(**kw)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def orders(self, prefix):
        return {i["orderId"]["S"]: (int(i["customerId"]["N"]), int(i["totalCents"]["N"]), i["payload"]["S"])
                for i in self._scan(f"{prefix}_orders")}

    def events(self, prefix):
        return [(i["eventId"]["S"], i["orderId"]["S"], int(i["customerId"]["N"]), int(i["totalCents"]["N"]))
                for i in self._scan(f"{prefix}_order_events")]

    outbox_mode = "attribute"  # DYNAMODB_OUTBOX of the phase running

    def pending(self, prefix):
        if self.outbox_mode == "transaction":
            return {i["orderId"]["S"] for i in self._scan(f"{prefix}_outbox")}
        return {i["orderId"]["S"] for i in self._scan(f"{prefix}_orders") if i.get("outboxStatus", {}).get("S") == "PENDING"}

    def drop(self, prefixes):
        names = self.c.list_tables()["TableNames"]
        for t in names:
            if any(t.startswith(p + "_") for p in prefixes):
                self.c.delete_table(TableName=t)

    def close(self):
        self.c.close()


class MongoScan:
    def __init__(self, port: int, database: str):
        from pymongo import MongoClient
        self.c = MongoClient(f"mongodb://{HOST}:{port}/?directConnection=true", serverSelectionTimeoutMS=5000)
        self.db = self.c[database]

    def orders(self, prefix):
        return {d["_id"]: (d["customerId"], d["totalCents"], d["payload"]) for d in self.db[f"{prefix}_orders"].find()}

    def events(self, prefix):
        return [(d["_id"], d["orderId"], d["customerId"], d["totalCents"])
                for d in self.db[f"{prefix}_order_events"].find()]

    def pending(self, prefix):
        return {d["_id"] for d in self.db[f"{prefix}_orders"].find({"outbox.status": "pending"}, {"_id": 1})}

    def drop(self, _prefixes):
        self.c.drop_database(self.db.name)

    def close(self):
        self.c.close()


class CassandraScan:
    def __init__(self, port: int, keyspace: str):
        from cassandra.cluster import Cluster
        self.cluster = Cluster([HOST], port=port, protocol_version=5)
        self.s = self.cluster.connect()
        self.ks = keyspace

    def orders(self, prefix):
        rows = self.s.execute(f"SELECT order_id, customer_id, total_cents, payload FROM {self.ks}.{prefix}_orders")
        return {r.order_id: (r.customer_id, r.total_cents, r.payload) for r in rows}

    def events(self, prefix):
        rows = self.s.execute(f"SELECT event_id, order_id, customer_id, total_cents FROM {self.ks}.{prefix}_order_events")
        return [(r.event_id, r.order_id, r.customer_id, r.total_cents) for r in rows]

    def pending(self, prefix):
        rows = self.s.execute(f"SELECT order_id, status FROM {self.ks}.{prefix}_outbox")
        return {r.order_id for r in rows if r.status == "pending"}

    def drop(self, _prefixes):
        self.s.execute(f"DROP KEYSPACE IF EXISTS {self.ks}", timeout=60)

    def close(self):
        self.cluster.shutdown()


# ------------------------------------------------------------------ the test --
class StoreSmoke:
    def __init__(self, target: str, logdir: str, tox: Toxiproxy, n_initial: int):
        self.target = target
        self.store = "mongodb" if target in ("mongoeco", "ferretdb") else target
        self.port = SERVERS[target]
        self.tag = secrets.token_hex(3)
        self.logdir = logdir
        self.tox = tox
        self.n = n_initial
        self.container = f"apps_smoke_{self.tag}"  # Mongo database / Cassandra keyspace
        self.prefixes: list[str] = []
        self.attempt = 0
        self.procs: list[Proc] = []
        self.results: list[tuple[str, bool, float, str]] = []
        base = f"apps_smoke_{self.tag}_{target}"
        self.proxy = {side: f"{base}_{side}" for side in ("orders", "events", "relay")}
        self.addr = {side: tox.create(name, self.port) for side, name in self.proxy.items()}
        if self.store == "dynamodb":
            self.scan = DynamoScan(self.port)
        elif self.store == "mongodb":
            self.scan = MongoScan(self.port, self.container)
        else:
            self.scan = CassandraScan(self.port, self.container)

    # ---- plumbing
    def env(self, prefix: str, orders_side: str = "orders", **extra) -> dict:
        o, e = self.addr[orders_side], self.addr["events"]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
        env.update(STORE=self.store, TABLE_PREFIX=prefix, CREATE_TABLES="true", STORE_TIMEOUT_MS="1000")
        if self.store == "dynamodb":
            env.update(ORDERS_ENDPOINT=f"http://{o}", EVENTS_ENDPOINT=f"http://{e}",
                       AWS_ACCESS_KEY_ID="smoke-key-id", AWS_SECRET_ACCESS_KEY=SECRET)
        elif self.store == "mongodb":
            env.update(MONGODB_ORDERS_URL=f"mongodb://{o}/?directConnection=true",
                       MONGODB_EVENTS_URL=f"mongodb://{e}/?directConnection=true",
                       MONGODB_DATABASE=self.container)
        else:
            env.update(CASSANDRA_ORDERS_HOST=o, CASSANDRA_EVENTS_HOST=e, CASSANDRA_KEYSPACE=self.container,
                       # AllowAllAuthenticator: the server never asks, so the driver never sends it.
                       CASSANDRA_USERNAME="smoke", CASSANDRA_PASSWORD=SECRET)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, name: str, script: str, env: dict, port_var: str = "PORT") -> tuple[Proc, int]:
        port = free_port()
        env = {k: str(v) for k, v in dict(env, **{port_var: port}).items()}
        p = Proc(f"{self.target}-{env['TABLE_PREFIX']}-{name}", script, env, self.logdir)
        self.procs.append(p)

        def healthy():
            check(p.alive(), f"{p.name} exited with {p.p.returncode} during start-up:\n{p.text()[-2000:]}")
            try:
                return http("GET", f"http://{HOST}:{port}/health", timeout=5)[0] == 200
            except OSError:
                return False

        wait_for(f"{p.name} /health 200", healthy, READY_BOUND_S, 0.2)
        return p, port

    def post_many(self, port: int, ids: list[str]) -> dict[str, int]:
        def one(oid):
            status, _ = http("POST", f"http://{HOST}:{port}/orders", self.body(oid))
            return oid, status

        with ThreadPoolExecutor(max_workers=8) as ex:
            return dict(ex.map(one, ids))

    @staticmethod
    def body(oid: str) -> dict:
        n = int(oid.rsplit("-", 1)[1])
        return {"order_id": oid, "customer_id": 1000 + n, "amount_cents": 100 * n + 7, "payload": f"p-{oid}"}

    def ids(self, prefix: str, phase: str, count: int) -> list[str]:
        return [f"{prefix}-{phase}-{i:03d}" for i in range(count)]

    def expect_fields(self, orders: dict, events: list, ids: list[str], with_events: bool = True):
        for oid in ids:
            b = self.body(oid)
            check(orders.get(oid) == (b["customer_id"], b["amount_cents"], b["payload"]),
                  f"order {oid}: stored {orders.get(oid)} != sent {b}")
        if with_events:
            by_order = {}
            for _eid, oid, cust, amount in events:
                by_order.setdefault(oid, []).append((cust, amount))
            for oid in ids:
                b = self.body(oid)
                check(by_order.get(oid, [None])[0] == (b["customer_id"], b["amount_cents"]),
                      f"event of {oid}: {by_order.get(oid)} != {(b['customer_id'], b['amount_cents'])}")

    def statuses(self, got: dict[str, int]) -> str:
        counts = {}
        for s in got.values():
            counts[s] = counts.get(s, 0) + 1
        return " ".join(f"{k}x{v}" for k, v in sorted(counts.items()))

    def phase(self, name: str, fn, attempts: int = 3):
        t0 = time.monotonic()
        for attempt in range(attempts):
            self.attempt = attempt
            before = self.tox.interference
            try:
                detail = fn()
                ok = True
            except CheckFailed as e:
                detail, ok = f"FAILED: {e}", False
            except Exception as e:  # noqa: BLE001 - a crash of the test is a failure, reported
                detail, ok = f"FAILED: {e.__class__.__name__}: {e}\n{traceback.format_exc()}", False
            disturbed = self.tox.interference > before
            if ok or not disturbed or attempt == attempts - 1:
                break
            print(f"[{self.target}] {name}: another process re-enabled one of our disabled proxies during "
                  f"this attempt ({detail.splitlines()[0]}); running the phase again with fresh tables", flush=True)
            self._stop_all()
        if disturbed:
            detail += "\n(another process re-enabled a disabled proxy of ours during this phase)"
        dt = time.monotonic() - t0
        self.results.append((name, ok, dt, detail))
        print(f"[{self.target}] {'ok  ' if ok else 'FAIL'} {name} ({dt:.1f}s)", flush=True)
        for line in (detail or "").splitlines():
            print(f"[{self.target}]        {line}", flush=True)
        self._stop_all()
        return ok

    def _stop_all(self):
        """No proxy stays down and no process runs after a phase, whatever happened."""
        for name_ in self.proxy.values():
            try:
                self.tox.set_enabled(name_, True)
            except Exception:  # noqa: BLE001
                pass
        for p in self.procs:
            if p.alive():
                try:
                    p.terminate()
                except CheckFailed:
                    pass
        self.procs.clear()

    def stop_ok(self, p: Proc) -> str:
        rc = p.terminate()
        check(rc == 0, f"{p.name} exited {rc} on SIGTERM")
        check("stopped" in p.text(), f"{p.name} did not log its clean stop")
        return f"SIGTERM -> exit {rc}"

    # ---- naive, fail policy
    def naive_fail(self) -> str:
        prefix = f"n{self.tag}{self.attempt or ''}"
        self.prefixes.append(prefix)
        out = []
        svc, port = self.start("order-fail", "order_service.py", self.env(prefix))
        a = self.ids(prefix, "a", self.n)
        got = self.post_many(port, a)
        check(all(s == 201 for s in got.values()), f"healthy POSTs: {self.statuses(got)}")
        orders, events = self.scan.orders(prefix), self.scan.events(prefix)
        check(len(orders) == self.n and len(events) == self.n, f"after {self.n} orders: orders {len(orders)}, events {len(events)}")
        self.expect_fields(orders, events, a)
        out.append(f"{self.n} POST -> {self.statuses(got)}; orders {len(orders)}, events {len(events)}, fields match")
        ports = {side: int(addr.rsplit(":", 1)[1]) for side, addr in self.addr.items()}
        peers = store_peers(svc.p.pid, port)
        # moto answers without keep-alive, so a DynamoDB client holds no connection
        # between requests; the drivers that discover topology (MongoDB, Cassandra) do.
        check((peers or self.store == "dynamodb") and peers <= {ports["orders"], ports["events"]},
              f"service connections go to ports {sorted(peers)}, not only to its proxies "
              f"{ports['orders']}, {ports['events']} (server port {self.port})")
        out.append(f"its open store connections: {len(peers)}, all to its two proxies "
                   f"(remote ports {sorted(peers)}), none to the server's port {self.port}")

        self.tox.set_enabled(self.proxy["events"], False)
        b = self.ids(prefix, "b", 5)
        got = self.post_many(port, b)
        check(all(s == 500 for s in got.values()), f"events down, fail policy: {self.statuses(got)} (want 500x5)")
        orders, events = self.scan.orders(prefix), self.scan.events(prefix)
        ev_orders = {e[1] for e in events}
        orphans = sorted(set(orders) - ev_orders)
        check(orphans == b, f"orphans {orphans} != the 5 posted during the events outage")
        out.append(f"events proxy down: 5 POST -> {self.statuses(got)}; orphans {len(orphans)} "
                   f"(orders {len(orders)}, events {len(events)}), exactly the 5 posted")

        self.tox.set_enabled(self.proxy["events"], True)
        self.tox.set_enabled(self.proxy["orders"], False)
        c = self.ids(prefix, "c", 3)
        got = self.post_many(port, c)
        check(not any(200 <= s < 300 for s in got.values()), f"orders down: {self.statuses(got)}")
        orders = self.scan.orders(prefix)
        wrong = [oid for oid, s in got.items() if s == 503 and oid in orders]
        check(not wrong, f"answered 503 yet written: {wrong}")
        landed = sorted(oid for oid in c if oid in orders)
        out.append(f"orders proxy down: 3 POST -> {self.statuses(got)}; none of the 503s written"
                   f" (written anyway: {len(landed)})")

        self.tox.set_enabled(self.proxy["orders"], True)
        wait_for("/health 200 after the outage", lambda: http("GET", f"http://{HOST}:{port}/health")[0] == 200,
                 CONVERGE_BOUND_S, 0.2)
        d = self.ids(prefix, "d", 5)
        got = self.post_many(port, d)
        check(all(s == 201 for s in got.values()), f"after recovery: {self.statuses(got)}")
        orders, events = self.scan.orders(prefix), self.scan.events(prefix)
        self.expect_fields(orders, events, d)
        out.append(f"proxies back: 5 POST -> {self.statuses(got)}; totals orders {len(orders)}, events {len(events)}")
        out.append(self.stop_ok(svc))
        return "\n".join(out)

    # ---- naive, log-and-continue
    def naive_continue(self) -> str:
        prefix = f"l{self.tag}{self.attempt or ''}"
        self.prefixes.append(prefix)
        out = []
        svc, port = self.start("order-continue", "order_service.py",
                               self.env(prefix, ON_SECONDARY_FAILURE="log-and-continue", SECONDARY_RETRIES=2))
        a = self.ids(prefix, "a", 10)
        got = self.post_many(port, a)
        check(all(s == 201 for s in got.values()), f"healthy POSTs: {self.statuses(got)}")
        self.tox.set_enabled(self.proxy["events"], False)
        b = self.ids(prefix, "b", 5)
        got = self.post_many(port, b)
        check(all(s == 201 for s in got.values()), f"events down, log-and-continue: {self.statuses(got)} (want 201x5)")
        orders, events = self.scan.orders(prefix), self.scan.events(prefix)
        orphans = sorted(set(orders) - {e[1] for e in events})
        check(orphans == b, f"orphans {orphans} != the 5 posted during the outage")
        self.expect_fields(orders, events, a)
        tries = svc.text().count("after 3 try(ies)")
        check(tries == 5, f"{tries} log lines 'after 3 try(ies)' (SECONDARY_RETRIES=2), want 5")
        out.append(f"10 POST -> 201x10; events proxy down: 5 POST -> {self.statuses(got)} (3 tries each, logged); "
                   f"silent orphans {len(orphans)} (orders {len(orders)}, events {len(events)})")
        out.append(self.stop_ok(svc))
        return "\n".join(out)

    # ---- outbox
    def outbox(self, idempotent: bool, dynamodb_outbox: str = "attribute") -> str:
        prefix = f"{'i' if idempotent else 'd'}{'t' if dynamodb_outbox == 'transaction' else ''}{self.tag}{self.attempt or ''}"
        self.prefixes.append(prefix)
        out = []
        mode = {"DYNAMODB_OUTBOX": dynamodb_outbox} if self.store == "dynamodb" else {}
        if self.store == "dynamodb":
            self.scan.outbox_mode = dynamodb_outbox
        svc, port = self.start("outbox-service", "outbox_service.py", self.env(prefix, **mode))
        relay_env = self.env(prefix, orders_side="relay", RELAY_IDEMPOTENT=str(idempotent).lower(),
                             RELAY_BACKOFF_MS=100, RELAY_BACKOFF_MAX_MS=500, RELAY_POLL_INTERVAL_MS=100, **mode)
        relay, _ = self.start("relay-1", "outbox_relay.py", relay_env, "RELAY_PORT")

        def delivered(ids):
            evs = self.scan.events(prefix)
            have = {e[1] for e in evs}
            return evs if all(i in have for i in ids) and not self.scan.pending(prefix) else None

        a = self.ids(prefix, "a", self.n)
        got = self.post_many(port, a)
        check(all(s == 201 for s in got.values()), f"POSTs: {self.statuses(got)}")
        events = wait_for(f"{self.n} events published", lambda: delivered(a), CONVERGE_BOUND_S)
        check(len(events) == self.n, f"{len(events)} events for {self.n} orders")
        self.expect_fields(self.scan.orders(prefix), events, a)
        out.append(f"{self.n} POST -> {self.statuses(got)}; relay published {len(events)} events, fields match, 0 pending")

        # The events store goes away under a running relay (idle: nothing in flight).
        self.tox.set_enabled(self.proxy["events"], False)
        b = self.ids(prefix, "b", 10)
        got = self.post_many(port, b)
        check(all(s == 201 for s in got.values()), f"POSTs with events down: {self.statuses(got)}")
        wait_for("3 relay publish failures logged", lambda: relay.text().count("failed (") >= 3, CONVERGE_BOUND_S)
        check(relay.alive(), "relay exited during the events outage")
        pend = len(self.scan.pending(prefix))
        check(pend == 10, f"{pend} pending during the outage, want 10")
        fails = relay.text().count("failed (")
        self.tox.set_enabled(self.proxy["events"], True)
        t0 = time.monotonic()
        wait_for("outage backlog delivered", lambda: delivered(a + b), CONVERGE_BOUND_S)
        out.append(f"events proxy down: 10 POST -> {self.statuses(got)}, relay alive after {fails} failed publishes, "
                   f"10 pending; proxy back: delivered in {time.monotonic() - t0:.1f}s")
        out.append(f"relay {self.stop_ok(relay)}")

        # Relay killed between publish and mark.
        c = self.ids(prefix, "c", self.n)
        got = self.post_many(port, c)
        check(all(s == 201 for s in got.values()), f"POSTs: {self.statuses(got)}")
        check(len(self.scan.pending(prefix)) == self.n, "pending before the relay restarts")
        relay2, _ = self.start("relay-2", "outbox_relay.py", dict(relay_env, RELAY_MARK_DELAY_MS=1500), "RELAY_PORT")

        def published_unmarked():
            pending = self.scan.pending(prefix)
            return {e[1] for e in self.scan.events(prefix)} & pending

        wait_for("an entry published but not marked", published_unmarked, CONVERGE_BOUND_S, 0.05)
        relay2.kill9()
        u = published_unmarked()  # the relay is dead: this is the state it left
        check(len(u) >= 1, "no entry caught between publish and mark")
        pend = self.scan.pending(prefix)
        out.append(f"{self.n} POST -> {self.statuses(got)}; relay restarted with a 1.5 s mark delay, "
                   f"kill -9 with {len(u)} published-not-marked ({sorted(u)}), {len(pend)} pending")

        relay3, _ = self.start("relay-3", "outbox_relay.py", relay_env, "RELAY_PORT")
        t0 = time.monotonic()
        everything = a + b + c
        events = wait_for("all events after the restart", lambda: delivered(everything), CONVERGE_BOUND_S)
        per_order = {}
        for _eid, oid, *_ in events:
            per_order[oid] = per_order.get(oid, 0) + 1
        dups = {oid: n - 1 for oid, n in per_order.items() if n > 1}
        extra = sum(dups.values())
        want_total = len(everything) + (0 if idempotent else len(u))
        check(set(per_order) == set(everything), "events for orders nobody posted")
        check(len(events) == want_total, f"{len(events)} events, want {want_total}")
        check(set(dups) == (set() if idempotent else u), f"duplicated orders {sorted(dups)} != expected")
        self.expect_fields(self.scan.orders(prefix), events, everything)
        out.append(f"restarted relay delivered in {time.monotonic() - t0:.1f}s: orders {len(everything)}, "
                   f"events {len(events)}, orders without event 0, duplicate events {extra} "
                   f"({'idempotent: none expected' if idempotent else f'not idempotent: |U| = {len(u)} expected'})")
        out.append(f"relay {self.stop_ok(relay3)}; service {self.stop_ok(svc)}")
        return "\n".join(out)

    def cleanup(self, keep: bool):
        for p in self.procs:
            if p.alive():
                try:
                    p.terminate()
                except CheckFailed:
                    pass
        if not keep:
            try:
                self.scan.drop(self.prefixes)
            except Exception as e:  # noqa: BLE001
                print(f"[{self.target}] cleanup: could not drop data: {e}", flush=True)
        self.scan.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", default="dynamodb,mongoeco,ferretdb,cassandra")
    ap.add_argument("--orders", type=int, default=20, help="orders per healthy batch (default 20)")
    ap.add_argument("--keep", action="store_true", help="keep the data and the logs")
    args = ap.parse_args()
    targets = [t.strip() for t in args.stores.split(",") if t.strip()]
    for t in targets:
        if t not in SERVERS:
            ap.error(f"unknown store {t!r} (use {', '.join(SERVERS)})")
    try:
        http("GET", f"{TOXIPROXY}/version", timeout=3)
    except OSError as e:
        print(f"Toxiproxy not reachable on {TOXIPROXY} ({e}): start the stack (scripts/stack up)", file=sys.stderr)
        return 3
    logdir = tempfile.mkdtemp(prefix="apps-smoke-")
    print(f"logs: {logdir}", flush=True)
    tox = Toxiproxy()
    t_all = time.monotonic()
    passed = failed = 0
    rows = []
    try:
        for t in targets:
            t0 = time.monotonic()
            smoke = None
            try:
                smoke = StoreSmoke(t, logdir, tox, args.orders)
                smoke.phase("naive, ON_SECONDARY_FAILURE=fail", smoke.naive_fail)
                smoke.phase("naive, ON_SECONDARY_FAILURE=log-and-continue, SECONDARY_RETRIES=2", smoke.naive_continue)
                smoke.phase("outbox, RELAY_IDEMPOTENT=true", lambda: smoke.outbox(True))
                smoke.phase("outbox, RELAY_IDEMPOTENT=false", lambda: smoke.outbox(False))
                if t == "dynamodb":
                    smoke.phase("outbox, DYNAMODB_OUTBOX=transaction, RELAY_IDEMPOTENT=false",
                                lambda: smoke.outbox(False, "transaction"))
            except Exception as e:  # noqa: BLE001 - a store that cannot even be set up
                print(f"[{t}] FAIL setup: {e}", flush=True)
                failed += 1
            finally:
                if smoke is not None:
                    smoke.cleanup(args.keep)
                    for name, ok, dt, _ in smoke.results:
                        rows.append((t, name, ok, dt))
                        passed += ok
                        failed += not ok
            print(f"[{t}] {time.monotonic() - t0:.1f}s", flush=True)
    finally:
        tox.delete_all()
    leaked = []
    for f in os.listdir(logdir):
        with open(os.path.join(logdir, f), encoding="utf-8", errors="replace") as fh:
            if SECRET in fh.read():
                leaked.append(f)
    if leaked:
        print(f"FAIL secret from the environment found in logs: {leaked}")
        failed += 1
    else:
        passed += 1
        print(f"ok   no secret in any of {len(os.listdir(logdir))} service logs")
    print()
    print(f"{'store':<10} {'phase':<70} {'result':<6} seconds")
    for t, name, ok, dt in rows:
        print(f"{t:<10} {name:<70} {'ok' if ok else 'FAIL':<6} {dt:.1f}")
    print(f"total {time.monotonic() - t_all:.1f}s")
    if failed == 0 and not args.keep:
        shutil.rmtree(logdir, ignore_errors=True)
    else:
        print(f"logs kept in {logdir}")
    print(f"smoke: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
