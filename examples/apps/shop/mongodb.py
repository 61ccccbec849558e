"""MongoDB with pymongo: one MongoClient per side, each from its own URL.

Collections in database MONGODB_DATABASE (names prefixed by TABLE_PREFIX):
  <prefix>_orders        {_id: orderId, customerId, totalCents, payload, createdAt (date)}
                         outbox service: plus the embedded entry
                         outbox: {status: "pending"|"published", eventType, createdAt, publishedAt}
                         (index on outbox.status)
  <prefix>_order_events  {_id: eventId, orderId, customerId, totalCents, eventType, occurredAt (date)}
                         (index on orderId)

The order and its outbox entry are one document: one insert is atomic on every
MongoDB server (no transaction needed, so FerretDB works too).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from pymongo import ASCENDING, MongoClient
from pymongo.errors import AutoReconnect, DuplicateKeyError, PyMongoError, ServerSelectionTimeoutError

from .errors import AlreadyExists, StoreError, StoreUnavailable
from .model import EVENT_TYPE, Event, Order, now


def _classify(e: Exception, what: str) -> Exception:
    if isinstance(e, DuplicateKeyError):
        return AlreadyExists(f"{what}: duplicate key")
    if isinstance(e, ServerSelectionTimeoutError):
        # No server was selected: the command never left this process.
        return StoreUnavailable(f"{what}: no server reachable: {e}")
    if isinstance(e, AutoReconnect) and (isinstance(e.__cause__, ConnectionRefusedError)
                                         or "connection pool paused" in str(e)):
        # A new connection was refused (or the pool was paused after an error):
        # the command was never sent.
        return StoreUnavailable(f"{what}: connection refused: {e}")
    # AutoReconnect, NetworkTimeout, write concern errors, ...: it may have been applied.
    return StoreError(f"{what}: {e.__class__.__name__}: {e}")


def _client(url: str, s, app_name: str) -> MongoClient:
    # Our defaults apply only where the URL does not set the option itself.
    # (Read from the query string by hand: parse_uri would resolve a mongodb+srv host.)
    given = {k.lower() for k, _ in parse_qsl(urlsplit(url).query)}
    ms = s.store_timeout_ms
    defaults = {
        "serverSelectionTimeoutMS": ms,
        "connectTimeoutMS": ms,
        "socketTimeoutMS": ms,
        "retryWrites": s.driver_retries,
        "retryReads": s.driver_retries,
        "appname": app_name,
        "maxPoolSize": 64,
    }
    kwargs = {k: v for k, v in defaults.items() if k.lower() not in given}
    return MongoClient(url, **kwargs)


class MongoStore:
    name = "mongodb"

    def __init__(self, s):
        self.s = s
        self.clients = {"orders": _client(s.mongodb_orders_url, s, s.role)}
        if "events" in s.sides:
            self.clients["events"] = _client(s.mongodb_events_url, s, s.role)
        db = s.mongodb_database
        self.orders = self.clients["orders"][db][s.orders_table]
        self.events = self.clients["events"][db][s.events_table] if "events" in self.clients else None

    def create_schema(self) -> list[str]:
        """Collections appear on first insert; this makes the indexes the code relies on."""
        made = []
        if self.s.role in ("outbox_service", "outbox_relay"):
            made.append(self.orders.create_index([("outbox.status", ASCENDING)], name="outbox_status"))
        if self.events is not None:
            made.append(self.events.create_index([("orderId", ASCENDING)], name="order_id"))
        return made

    def check_ready(self) -> None:
        for side, client in self.clients.items():
            try:
                client.admin.command("ping")
            except PyMongoError as e:
                raise _classify(e, f"ping {side}") from e

    def ping(self) -> dict[str, str]:
        out = {}
        for side, client in self.clients.items():
            try:
                client.admin.command("ping")
                out[side] = "ok"
            except PyMongoError as e:
                out[side] = str(_classify(e, "ping"))
        return out

    @staticmethod
    def _order_doc(o: Order) -> dict:
        return {"_id": o.order_id, "customerId": o.customer_id, "totalCents": o.amount_cents,
                "payload": o.payload, "createdAt": o.created_at}

    def put_order(self, o: Order) -> None:
        try:
            self.orders.insert_one(self._order_doc(o))
        except PyMongoError as e:
            raise _classify(e, f"insert {self.orders.name}") from e

    def put_event(self, ev: Event) -> None:
        """insert_one; the same eventId already there means this event landed before."""
        doc = {"_id": ev.event_id, "orderId": ev.order_id, "customerId": ev.customer_id,
               "totalCents": ev.amount_cents, "eventType": ev.event_type, "occurredAt": ev.occurred_at}
        try:
            self.events.insert_one(doc)
        except DuplicateKeyError:
            return
        except PyMongoError as e:
            raise _classify(e, f"insert {self.events.name}") from e

    def put_order_with_outbox(self, o: Order) -> None:
        doc = self._order_doc(o)
        doc["outbox"] = {"status": "pending", "eventType": EVENT_TYPE, "createdAt": o.created_at}
        try:
            self.orders.insert_one(doc)
        except PyMongoError as e:
            raise _classify(e, f"insert {self.orders.name}") from e

    def pending_outbox(self, limit: int) -> list[dict]:
        try:
            docs = list(self.orders.find({"outbox.status": "pending"},
                                         {"customerId": 1, "totalCents": 1}).limit(limit))
        except PyMongoError as e:
            raise _classify(e, f"find pending in {self.orders.name}") from e
        return [{"order_id": d["_id"], "customer_id": d["customerId"], "amount_cents": d["totalCents"]}
                for d in docs]

    def mark_published(self, order_id: str) -> None:
        try:
            self.orders.update_one({"_id": order_id, "outbox.status": "pending"},
                                   {"$set": {"outbox.status": "published", "outbox.publishedAt": now()}})
        except PyMongoError as e:
            raise _classify(e, f"update {self.orders.name}") from e

    def close(self) -> None:
        for c in self.clients.values():
            c.close()
