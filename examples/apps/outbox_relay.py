#!/usr/bin/env python3
"""outbox_relay: publishes the outbox entries written by outbox_service.

Loop: read up to RELAY_BATCH_SIZE pending entries (ORDERS_* connection), and for
each one write its OrderPlaced event to <prefix>_order_events (EVENTS_*
connection), then mark the entry published (ORDERS_* connection):
  MongoDB   outbox.status "pending" -> "published" in the order document
  DynamoDB  delete the <prefix>_outbox item
  Cassandra outbox row status 'pending' -> 'published'
Publish-then-mark is at-least-once: a relay that dies (or loses the store)
between the two publishes that entry again after its restart. With
RELAY_IDEMPOTENT=true (default) the event's key is the order id, so the second
write overwrites the first; with false each publication gets a fresh event id
and leaves a duplicate event.

Errors never stop the relay: a failed poll, publish or mark is logged and retried
from the next poll after a backoff (RELAY_BACKOFF_MS doubling to
RELAY_BACKOFF_MAX_MS, with jitter). SIGTERM: finish the entry in hand, exit 0.
Run one relay per TABLE_PREFIX (entries are not claimed; two relays would both
publish). With RELAY_PORT set it serves GET /health and GET /stats.
"""

import random
import sys
import threading
import time

from shop import config, web
from shop.errors import StoreError
from shop.lifecycle import Readiness, prepare_store
from shop.model import event_for
from shop.stores import open_store


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.published = 0
        self.marked = 0
        self.polls = 0
        self.errors = 0
        self.consecutive_errors = 0
        self.last_error = ""
        self.last_batch = 0

    def snapshot(self) -> dict:
        with self.lock:
            return {k: v for k, v in vars(self).items() if k != "lock"}

    def error(self, message: str):
        with self.lock:
            self.errors += 1
            self.consecutive_errors += 1
            self.last_error = message


def relay_loop(store, s, stopper, log, stats: Stats) -> None:
    backoff = s.relay_backoff_ms / 1000

    def failed(what: str, e: Exception):
        nonlocal backoff
        stats.error(f"{what}: {e}")
        wait = backoff * random.uniform(0.5, 1.0)
        log.warning("%s failed (%s); retrying in %.2fs (%d error(s) in a row)", what, e, wait,
                    stats.consecutive_errors)
        stopper.sleep(wait)
        backoff = min(backoff * 2, s.relay_backoff_max_ms / 1000)

    while not stopper.stopping:
        try:
            entries = store.pending_outbox(s.relay_batch_size)
        except StoreError as e:
            failed("poll", e)
            continue
        with stats.lock:
            stats.polls += 1
            stats.last_batch = len(entries)
        if not entries:
            with stats.lock:
                stats.consecutive_errors = 0
            backoff = s.relay_backoff_ms / 1000
            stopper.sleep(s.relay_poll_interval_ms / 1000)
            continue
        done = 0
        for entry in entries:
            if stopper.stopping:
                break
            oid = entry["order_id"]
            event = event_for(oid, entry["customer_id"], entry["amount_cents"], stable_id=s.relay_idempotent)
            try:
                store.put_event(event)
            except StoreError as e:
                failed(f"publish {oid}", e)
                break
            with stats.lock:
                stats.published += 1
            log.debug("published order_id=%s event_id=%s", oid, event.event_id)
            if s.relay_mark_delay_ms:
                # Test aid: widens the publish-to-mark window (a kill -9 here duplicates
                # the event when RELAY_IDEMPOTENT=false). Not cut short by SIGTERM.
                time.sleep(s.relay_mark_delay_ms / 1000)
            try:
                store.mark_published(oid)
            except StoreError as e:
                failed(f"mark {oid}", e)
                break
            with stats.lock:
                stats.marked += 1
                stats.consecutive_errors = 0
            backoff = s.relay_backoff_ms / 1000
            done += 1
        if done:
            log.info("published and marked %d of %d pending entr%s", done, len(entries),
                     "y" if len(entries) == 1 else "ies")


def main() -> int:
    s = config.load_or_exit("outbox_relay")
    log = web.setup_logging("outbox_relay", s.log_level)
    stopper = web.Stopper()
    stopper.install()
    log.info("starting: %s", s.describe())
    store = open_store(s)
    readiness = Readiness()
    stats = Stats()
    if s.port:
        def health(_body) -> web.Response:
            snap = stats.snapshot()
            ok = readiness.ready and snap["consecutive_errors"] == 0
            return web.Response(200 if ok else 503, {"status": "ok" if ok else "unhealthy",
                                                     "ready": readiness.ready,
                                                     "last_error": snap["last_error"] or readiness.last_error})

        app = web.App({("GET", "/health"): health,
                       ("GET", "/stats"): lambda _b: web.Response(200, stats.snapshot())}, stopper)
        try:
            server = web.start(s.host, s.port, app, log)
        except OSError as e:
            log.error("cannot listen on %s:%d: %s", s.host, s.port, e)
            return 1
    if prepare_store(store, s, stopper, log, readiness):
        relay_loop(store, s, stopper, log, stats)
    log.info("%s received: stopping (published %d, marked %d)", stopper.signal_name or "stop",
             stats.published, stats.marked)
    if s.port:
        server.shutdown()
        server.server_close()
    store.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
