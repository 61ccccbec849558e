"""DynamoDB with boto3: one low-level client per side, each with its own endpoint.

Tables (names prefixed by TABLE_PREFIX, on-demand capacity):
  <prefix>_orders        key orderId (S); customerId (N), totalCents (N), payload (S), createdAt (S, ISO-8601)
  <prefix>_order_events  key eventId (S); orderId (S), customerId (N), totalCents (N), eventType (S), occurredAt (S)

The outbox (outbox service and relay), by DYNAMODB_OUTBOX:
  attribute (default)    the entry lives on the order item itself, so one PutItem writes
                         both: outboxStatus (S) = "PENDING" until published (then removed),
                         outboxEventType (S), outboxPublishedAt (S) once published. A sparse
                         global secondary index `outboxPending` (hash key outboxStatus,
                         projecting customerId and totalCents) holds only pending entries:
                         the relay Queries it, and marks with an UpdateItem that REMOVEs
                         outboxStatus (conditional on it still being PENDING).
  transaction            the entry is a separate item in <prefix>_outbox (key orderId;
                         customerId, totalCents, eventType, createdAt), written with the
                         order in one TransactWriteItems; the relay Scans that table and
                         deletes the item once published. On the local moto server each
                         transaction deep-copies the tables it touches (its rollback
                         snapshot), so its cost grows with the table: ~6 ms empty,
                         ~20 ms at 1000 orders, serialized; use `attribute` for load.
"""

from __future__ import annotations

import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import (BotoCoreError, ClientError, ConnectTimeoutError,
                                 EndpointConnectionError)

from .errors import AlreadyExists, StoreError, StoreUnavailable
from .model import EVENT_TYPE, Event, Order, now

# Codes after which nothing was written: throttling and capacity refusals.
_REFUSED = {
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "ResourceNotFoundException", "LimitExceededException", "TransactionInProgressException",
}
PENDING = "PENDING"
PENDING_INDEX = "outboxPending"
# Fixed namespace for the deterministic ClientRequestToken of an order's transaction.
_TOKEN_NS = uuid.UUID("6f1d3a52-3c0b-4d7e-9a39-4f1f5b1c2d10")


def _classify(e: Exception, what: str) -> Exception:
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "")
        msg = f"{what}: {code}: {e.response.get('Error', {}).get('Message', '')}"
        if code == "ConditionalCheckFailedException":
            return AlreadyExists(msg)
        if code == "TransactionCanceledException":
            reasons = [r.get("Code") for r in e.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" in reasons:
                return AlreadyExists(msg)
            return StoreUnavailable(f"{msg} (reasons {reasons})")
        if code in _REFUSED:
            return StoreUnavailable(msg)
        return StoreError(msg)
    if isinstance(e, (EndpointConnectionError, ConnectTimeoutError)):
        return StoreUnavailable(f"{what}: {e}")
    return StoreError(f"{what}: {e.__class__.__name__}: {e}")


class DynamoStore:
    name = "dynamodb"

    def __init__(self, s):
        self.s = s
        session = boto3.session.Session(
            aws_access_key_id=s.aws_access_key_id,
            aws_secret_access_key=s.aws_secret_access_key,
            aws_session_token=s.aws_session_token,
            region_name=s.aws_region,
        )
        timeout = s.store_timeout_ms / 1000
        config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            # DRIVER_RETRIES=false: one attempt, the service's own policy decides.
            retries={"mode": "standard"} if s.driver_retries else {"total_max_attempts": 1},
            max_pool_connections=64,
        )
        self.clients = {"orders": session.client("dynamodb", endpoint_url=s.orders_endpoint, config=config)}
        if "events" in s.sides:
            self.clients["events"] = session.client("dynamodb", endpoint_url=s.events_endpoint, config=config)
        self.orders = self.clients["orders"]
        self.events = self.clients.get("events")

    # ---------------------------------------------------------------- schema --
    def _tables(self):
        """(side, table name, key attribute) of the tables this process writes."""
        s = self.s
        if s.role == "order_service":
            return [("orders", s.orders_table, "orderId"), ("events", s.events_table, "eventId")]
        if s.role == "outbox_service":
            if s.dynamodb_outbox == "transaction":
                return [("orders", s.orders_table, "orderId"), ("orders", s.outbox_table, "orderId")]
            return [("orders", s.orders_table, "orderId")]
        return [("events", s.events_table, "eventId")]  # the relay creates what it writes

    def _needed(self):
        """Tables this process reads or writes (checked before it is ready)."""
        s = self.s
        if s.role == "outbox_relay":
            outbox = s.outbox_table if s.dynamodb_outbox == "transaction" else s.orders_table
            return [("orders", outbox), ("events", s.events_table)]
        return [(side, t) for side, t, _ in self._tables()]

    def create_schema(self) -> list[str]:
        s = self.s
        created = []
        for side, table, key in self._tables():
            client = self.clients[side]
            spec = dict(
                TableName=table,
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            if s.role == "outbox_service" and s.dynamodb_outbox == "attribute" and table == s.orders_table:
                spec["AttributeDefinitions"].append({"AttributeName": "outboxStatus", "AttributeType": "S"})
                spec["GlobalSecondaryIndexes"] = [{
                    "IndexName": PENDING_INDEX,
                    "KeySchema": [{"AttributeName": "outboxStatus", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["customerId", "totalCents"]},
                }]
            try:
                client.create_table(**spec)
                created.append(table)
            except ClientError as e:
                if e.response["Error"]["Code"] != "ResourceInUseException":
                    raise
            client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        return created

    def check_ready(self) -> None:
        for side, table in self._needed():
            desc = self.clients[side].describe_table(TableName=table)["Table"]
            if desc["TableStatus"] != "ACTIVE":
                raise StoreError(f"table {table} is {desc['TableStatus']}")
            if (self.s.role != "order_service" and self.s.dynamodb_outbox == "attribute"
                    and table == self.s.orders_table
                    and PENDING_INDEX not in {i["IndexName"] for i in desc.get("GlobalSecondaryIndexes", [])}):
                raise StoreError(f"table {table} has no index {PENDING_INDEX} (DYNAMODB_OUTBOX=attribute needs it; "
                                 "CREATE_TABLES=true on the outbox service makes it)")

    def ping(self) -> dict[str, str]:
        out = {}
        for side, table in self._needed():
            try:
                self.clients[side].describe_table(TableName=table)
                out.setdefault(side, "ok")
            except (ClientError, BotoCoreError) as e:
                out[side] = str(_classify(e, f"describe {table}"))
        return out

    # ---------------------------------------------------------------- writes --
    @staticmethod
    def _order_item(o: Order) -> dict:
        return {
            "orderId": {"S": o.order_id},
            "customerId": {"N": str(o.customer_id)},
            "totalCents": {"N": str(o.amount_cents)},
            "payload": {"S": o.payload},
            "createdAt": {"S": o.created_at.isoformat()},
        }

    def put_order(self, o: Order) -> None:
        """Creates the order; AlreadyExists if its id is taken."""
        try:
            self.orders.put_item(TableName=self.s.orders_table, Item=self._order_item(o),
                                 ConditionExpression="attribute_not_exists(orderId)")
        except (ClientError, BotoCoreError) as e:
            raise _classify(e, f"PutItem {self.s.orders_table}") from e

    def put_event(self, ev: Event) -> None:
        """PutItem: writing the same eventId again overwrites (no duplicate)."""
        item = {
            "eventId": {"S": ev.event_id},
            "orderId": {"S": ev.order_id},
            "customerId": {"N": str(ev.customer_id)},
            "totalCents": {"N": str(ev.amount_cents)},
            "eventType": {"S": ev.event_type},
            "occurredAt": {"S": ev.occurred_at.isoformat()},
        }
        try:
            self.events.put_item(TableName=self.s.events_table, Item=item)
        except (ClientError, BotoCoreError) as e:
            raise _classify(e, f"PutItem {self.s.events_table}") from e

    def put_order_with_outbox(self, o: Order) -> None:
        if self.s.dynamodb_outbox == "attribute":
            item = self._order_item(o)
            item["outboxStatus"] = {"S": PENDING}
            item["outboxEventType"] = {"S": EVENT_TYPE}
            try:
                self.orders.put_item(TableName=self.s.orders_table, Item=item,
                                     ConditionExpression="attribute_not_exists(orderId)")
            except (ClientError, BotoCoreError) as e:
                raise _classify(e, f"PutItem {self.s.orders_table}") from e
            return
        self._put_order_with_outbox_item(o)

    def _put_order_with_outbox_item(self, o: Order) -> None:
        """One TransactWriteItems: the order (if absent) and its outbox item, or neither."""
        outbox = {
            "orderId": {"S": o.order_id},
            "customerId": {"N": str(o.customer_id)},
            "totalCents": {"N": str(o.amount_cents)},
            "eventType": {"S": EVENT_TYPE},
            "createdAt": {"S": o.created_at.isoformat()},
        }
        try:
            self.orders.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self.s.orders_table, "Item": self._order_item(o),
                             "ConditionExpression": "attribute_not_exists(orderId)"}},
                    {"Put": {"TableName": self.s.outbox_table, "Item": outbox}},
                ],
                # Same order, same token: a retried call is deduplicated by DynamoDB
                # for 10 minutes (the local moto server ignores the token).
                ClientRequestToken=str(uuid.uuid5(_TOKEN_NS, o.order_id)),
            )
        except (ClientError, BotoCoreError) as e:
            raise _classify(e, f"TransactWriteItems {self.s.orders_table}+{self.s.outbox_table}") from e

    # ----------------------------------------------------------------- relay --
    def pending_outbox(self, limit: int) -> list[dict]:
        """Up to `limit` unpublished entries."""
        if self.s.dynamodb_outbox == "attribute":
            try:
                page = self.orders.query(TableName=self.s.orders_table, IndexName=PENDING_INDEX, Limit=limit,
                                         KeyConditionExpression="outboxStatus = :p",
                                         ExpressionAttributeValues={":p": {"S": PENDING}})
            except (ClientError, BotoCoreError) as e:
                raise _classify(e, f"Query {self.s.orders_table}.{PENDING_INDEX}") from e
        else:
            page = self._scan_outbox_table(limit)
        return [{"order_id": it["orderId"]["S"], "customer_id": int(it["customerId"]["N"]),
                 "amount_cents": int(it["totalCents"]["N"])} for it in page.get("Items", [])]

    def _scan_outbox_table(self, limit: int) -> dict:
        try:
            page = self.orders.scan(TableName=self.s.outbox_table, Limit=limit, ConsistentRead=True)
        except (ClientError, BotoCoreError) as e:
            raise _classify(e, f"Scan {self.s.outbox_table}") from e
        return page

    def mark_published(self, order_id: str) -> None:
        if self.s.dynamodb_outbox == "attribute":
            try:
                self.orders.update_item(
                    TableName=self.s.orders_table, Key={"orderId": {"S": order_id}},
                    UpdateExpression="REMOVE outboxStatus SET outboxPublishedAt = :t",
                    ConditionExpression="outboxStatus = :p",
                    ExpressionAttributeValues={":p": {"S": PENDING}, ":t": {"S": now().isoformat()}})
            except (ClientError, BotoCoreError) as e:
                err = _classify(e, f"UpdateItem {self.s.orders_table}")
                if not isinstance(err, AlreadyExists):  # condition failed: already marked
                    raise err from e
            return
        try:
            self.orders.delete_item(TableName=self.s.outbox_table, Key={"orderId": {"S": order_id}})
        except (ClientError, BotoCoreError) as e:
            raise _classify(e, f"DeleteItem {self.s.outbox_table}") from e

    def close(self) -> None:
        for c in self.clients.values():
            c.close()
