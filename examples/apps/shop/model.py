"""The order accepted by POST /orders and the event derived from it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
MAX_ORDER_ID = 256
MAX_PAYLOAD = 256 * 1024  # characters; a DynamoDB item is at most 400 KB
EVENT_TYPE = "OrderPlaced"


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_id: int
    amount_cents: int
    payload: str
    created_at: datetime


@dataclass(frozen=True)
class Event:
    event_id: str
    order_id: str
    customer_id: int
    amount_cents: int
    event_type: str
    occurred_at: datetime


def now() -> datetime:
    # Millisecond precision: what Cassandra timestamps and BSON dates keep.
    t = datetime.now(timezone.utc)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _int_field(body: dict, name: str) -> int:
    value = body.get(name)
    # bool is a subclass of int in Python: true is not a customer id.
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{name} must be an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise BadRequest(f"{name} is out of the 64-bit range")
    return value


def parse_order(body) -> Order:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    order_id = body.get("order_id")
    if not isinstance(order_id, str) or not order_id.strip():
        raise BadRequest("order_id must be a non-empty string")
    if len(order_id) > MAX_ORDER_ID:
        raise BadRequest(f"order_id is longer than {MAX_ORDER_ID} characters")
    payload = body.get("payload", "")
    if payload is None:
        payload = ""
    if not isinstance(payload, str):
        raise BadRequest("payload must be a string")
    if len(payload) > MAX_PAYLOAD:
        raise BadRequest(f"payload is longer than {MAX_PAYLOAD} characters")
    return Order(order_id=order_id, customer_id=_int_field(body, "customer_id"),
                 amount_cents=_int_field(body, "amount_cents"), payload=payload, created_at=now())


def event_for(order_id: str, customer_id: int, amount_cents: int, *, stable_id: bool) -> Event:
    """The OrderPlaced event. stable_id: its key is the order id, so writing it
    twice overwrites (idempotent); else a fresh id per write (a duplicate each time)."""
    return Event(event_id=order_id if stable_id else uuid.uuid4().hex, order_id=order_id,
                 customer_id=customer_id, amount_cents=amount_cents, event_type=EVENT_TYPE,
                 occurred_at=now())
