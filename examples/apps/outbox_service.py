#!/usr/bin/env python3
"""outbox_service: the transactional outbox (the write side; outbox_relay publishes).

POST /orders {"order_id", "customer_id", "amount_cents", "payload"} writes the
order and its outbox entry atomically, through the ORDERS_* connection only:
  MongoDB   one document: the order with an embedded `outbox` entry
  DynamoDB  one TransactWriteItems: the order item + an item in <prefix>_outbox
  Cassandra one LOGGED BATCH: the order row + the outbox row (same partition key)
The event itself is written later by outbox_relay.
Answers: 201 written; 400 bad request; 409 order id taken (MongoDB, DynamoDB);
503 certainly not written (store unreachable, throttled, transaction cancelled);
500 outcome unknown.
GET /health -> 200 once the orders store answers, else 503.

Configuration: environment only (see README.md); `--create-tables` = CREATE_TABLES=true.
"""

import sys
import threading

from shop import config, web
from shop.errors import AlreadyExists, StoreError, StoreUnavailable
from shop.lifecycle import Readiness, prepare_store, retry
from shop.model import BadRequest, parse_order
from shop.stores import open_store


def main() -> int:
    s = config.load_or_exit("outbox_service")
    log = web.setup_logging("outbox_service", s.log_level)
    stopper = web.Stopper()
    stopper.install()
    log.info("starting: %s", s.describe())
    store = open_store(s)
    readiness = Readiness()
    threading.Thread(target=prepare_store, args=(store, s, stopper, log, readiness),
                     name="startup", daemon=True).start()

    def create_order(body) -> web.Response:
        if not readiness.ready:
            return web.error(503, f"not ready: {readiness.last_error}")
        try:
            order = parse_order(body)
        except BadRequest as e:
            return web.error(400, str(e))
        note = f"order_id={order.order_id}"

        def write(is_retry: bool):
            try:
                store.put_order_with_outbox(order)
            except AlreadyExists:
                if is_retry:
                    return  # an earlier try of ours landed after all
                raise

        try:
            retry(write, s.primary_retries, s.retry_backoff_ms, stopper)
        except AlreadyExists:
            return web.error(409, f"order {order.order_id} already exists", note)
        except StoreError as e:
            certain = isinstance(e, StoreUnavailable) and not e.ambiguous
            log.error("order %s: write failed after %d try(ies), %s: %s", order.order_id, e.tries,
                      "not written" if certain else "outcome unknown", e)
            return web.error(503 if certain else 500, f"orders store: {e}", note)
        return web.Response(201, {"order_id": order.order_id, "status": "created"}, note)

    def health(_body) -> web.Response:
        if not readiness.ready:
            return web.Response(503, {"status": "starting", "error": readiness.last_error})
        sides = store.ping()
        ok = all(v == "ok" for v in sides.values())
        return web.Response(200 if ok else 503, {"status": "ok" if ok else "degraded", "stores": sides})

    app = web.App({("POST", "/orders"): create_order, ("GET", "/health"): health}, stopper)
    try:
        web.serve(s.host, s.port, app, s.shutdown_grace_ms, log)
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", s.host, s.port, e)
        return 1
    store.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
