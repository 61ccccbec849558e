"""Do acknowledged TransactWriteItems survive concurrently failing ones?

Usage: <moto venv>/bin/python moto_transaction_race.py http://127.0.0.1:PORT [SECONDS]
Exit 1 when an acknowledged transaction lost an item (prints the counts).

4 threads commit two-table transactions (order + event, attribute_not_exists)
while 2 threads send one whose condition fails, so moto rolls it back. Plain
moto_server 5.2.5 loses acknowledged items in every 10 s run (some half: order
gone, event kept) and answers HTTP 500 to some; moto_server_serialized.py loses
none. Point it at a private moto (another port), not at a shared one: it
creates and deletes two tables of its own."""
import sys
import threading
import time
import uuid

import boto3
from botocore.config import Config

url = sys.argv[1]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10
cfg = Config(retries={"max_attempts": 1}, max_pool_connections=32)
def client():
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test", config=cfg)
c = client()
ns = uuid.uuid4().hex[:8]
orders, events = f"race-{ns}-orders", f"race-{ns}-events"
for t, k in ((orders, "order_id"), (events, "event_id")):
    c.create_table(TableName=t, KeySchema=[{"AttributeName": k, "KeyType": "HASH"}],
                   AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"}],
                   BillingMode="PAY_PER_REQUEST")
for i in range(300):  # some bulk so the deepcopy snapshot takes a while
    c.put_item(TableName=orders, Item={"order_id": {"S": f"pre-{i}"}, "pad": {"S": "x" * 200}})
    c.put_item(TableName=events, Item={"event_id": {"S": f"pre-{i}"}, "pad": {"S": "x" * 200}})

def tx(cl, i):
    cl.transact_write_items(TransactItems=[
        {"Put": {"TableName": t, "Item": {k: {"S": i}}, "ConditionExpression": f"attribute_not_exists({k})"}}
        for t, k in ((orders, "order_id"), (events, "event_id"))
    ])

acked, lock, stop = [], threading.Lock(), time.time() + seconds
fails = {"ok_tx_errors": 0, "rollbacks": 0}
def writer(w):
    cl, n = client(), 0
    while time.time() < stop:
        i = f"w{w}-{n}"; n += 1
        try:
            tx(cl, i)
            with lock: acked.append(i)
        except Exception:
            with lock: fails["ok_tx_errors"] += 1
def failer():
    cl = client()
    while time.time() < stop:
        try:
            tx(cl, "pre-0")  # exists: condition fails, moto rolls back
        except cl.exceptions.TransactionCanceledException:
            with lock: fails["rollbacks"] += 1
        except Exception:
            with lock: fails["ok_tx_errors"] += 1
ts = [threading.Thread(target=writer, args=(w,)) for w in range(4)] + [threading.Thread(target=failer) for _ in range(2)]
for t in ts:
    t.start()
for t in ts:
    t.join()

def keys(t, k):
    out, kw = set(), {}
    while True:
        r = c.scan(TableName=t, **kw)
        out |= {it[k]["S"] for it in r["Items"]}
        if "LastEvaluatedKey" not in r: return out
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
o, e = keys(orders, "order_id"), keys(events, "event_id")
lost_order = sum(1 for i in acked if i not in o)
lost_event = sum(1 for i in acked if i not in e)
half = sum(1 for i in acked if (i in o) != (i in e))
for t in (orders, events): c.delete_table(TableName=t)
print(f"acked={len(acked)} rollbacks={fails['rollbacks']} errors={fails['ok_tx_errors']} "
      f"acked_but_order_missing={lost_order} acked_but_event_missing={lost_event} half_applied={half}")
sys.exit(1 if lost_order or lost_event else 0)
