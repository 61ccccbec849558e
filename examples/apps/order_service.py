#!/usr/bin/env python3
"""order_service: the naive dual write, as many services do it.

POST /orders {"order_id", "customer_id", "amount_cents", "payload"}
  1. writes the order to <prefix>_orders            (the ORDERS_* connection)
  2. then writes an OrderPlaced event to <prefix>_order_events (the EVENTS_* connection)
  Nothing makes the two writes atomic: if step 2 fails after step 1 landed, the
  order is an orphan. ON_SECONDARY_FAILURE decides what the caller hears then:
  fail (default) -> 500; log-and-continue -> 201 (the silent orphan).
  Answers: 201 both written; 400 bad request; 409 order id taken (MongoDB,
  DynamoDB); 503 the order was certainly not written (store unreachable,
  throttled); 500 anything else (outcome unknown, or order written without event).
GET /health -> 200 once both stores answer, else 503.

Configuration: environment only (see README.md); `--create-tables` = CREATE_TABLES=true.
"""

import sys
import threading

from shop import config, web
from shop.errors import AlreadyExists, StoreError, StoreUnavailable
from shop.lifecycle import Readiness, prepare_store, retry
from shop.model import BadRequest, event_for, parse_order
from shop.stores import open_store


def main() -> int:
    s = config.load_or_exit("order_service")
    log = web.setup_logging("order_service", s.log_level)
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

        def write_order(is_retry: bool):
            try:
                store.put_order(order)
            except AlreadyExists:
                if is_retry:
                    return  # an earlier try of ours landed after all
                raise

        try:
            _, tries, _ = retry(write_order, s.primary_retries, s.retry_backoff_ms, stopper)
        except AlreadyExists:
            return web.error(409, f"order {order.order_id} already exists", note)
        except StoreError as e:
            certain = isinstance(e, StoreUnavailable) and not e.ambiguous
            log.error("order %s: orders write failed after %d try(ies), %s: %s", order.order_id, e.tries,
                      "not written" if certain else "outcome unknown", e)
            return web.error(503 if certain else 500, f"orders store: {e}", note)

        # The event id: the order id (a retry overwrites the same event), or a
        # fresh id made on each try (a retry after a lost answer duplicates it).
        stable = s.event_id == "order-id"

        def write_event(_is_retry: bool):
            store.put_event(event_for(order.order_id, order.customer_id, order.amount_cents, stable_id=stable))

        try:
            retry(write_event, s.secondary_retries, s.retry_backoff_ms, stopper)
        except StoreError as e:
            if s.on_secondary_failure == "log-and-continue":
                log.warning("order %s: written, but its event failed after %d try(ies) (%s); "
                            "continuing (ON_SECONDARY_FAILURE=log-and-continue)", order.order_id, e.tries, e)
                return web.Response(201, {"order_id": order.order_id, "status": "created"},
                                    note + " event=failed")
            log.error("order %s: written, but its event failed after %d try(ies): %s",
                      order.order_id, e.tries, e)
            return web.error(500, f"order written, event failed: {e}", note)
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
