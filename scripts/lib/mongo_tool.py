"""Tiny MongoDB wire client for scripts/stack (health checks and reset).

Runs with pymongo from the mongoeco venv; works against FerretDB and mongoeco.

usage:
  python mongo_tool.py ping     HOST:PORT   exit 0 when the server answers {ping: 1}
  python mongo_tool.py drop-all HOST:PORT   drop every database but admin/local/config
  python mongo_tool.py selftest HOST:PORT   ping + a transaction + a failCommand fail point
"""

import sys

from pymongo import MongoClient

SYSTEM_DBS = {"admin", "local", "config"}


def client(addr: str) -> MongoClient:
    # directConnection: talk to exactly this address (no topology discovery),
    # short timeouts so that a dead server fails the check quickly.
    return MongoClient(
        f"mongodb://{addr}/?directConnection=true",
        serverSelectionTimeoutMS=2000,
        connectTimeoutMS=2000,
        socketTimeoutMS=5000,
    )


def ping(addr: str) -> None:
    with client(addr) as c:
        c.admin.command("ping")


def drop_all(addr: str) -> None:
    with client(addr) as c:
        for name in c.list_database_names():
            if name not in SYSTEM_DBS:
                c.drop_database(name)
                print(f"dropped database {name}")


def selftest(addr: str) -> None:
    """Checks the capabilities the dualwrite patterns rely on, and says which fail."""
    from pymongo.errors import PyMongoError

    with client(addr) as c:
        c.admin.command("ping")
        print("ping: ok")
        db = c["stack_selftest"]
        db.drop_collection("a")
        db.create_collection("a")
        try:
            with c.start_session() as s:
                with s.start_transaction():
                    db.a.insert_one({"_id": 1}, session=s)
                    db.a.insert_one({"_id": 2}, session=s)
            print(f"transaction: ok ({db.a.count_documents({})} docs committed)")
        except Exception as e:  # noqa: BLE001 - report, don't crash
            print(f"transaction: unsupported ({e.__class__.__name__}: {e})")
        try:
            c.admin.command(
                "configureFailPoint",
                "failCommand",
                mode={"times": 1},
                data={"failCommands": ["insert"], "errorCode": 91,
                      "errorLabels": ["RetryableWriteError"]},
            )
            try:
                db.a.insert_one({"_id": 3})
                # pymongo retries a RetryableWriteError once, so the insert may succeed.
                print("failCommand: armed (insert succeeded after the driver's retry)")
            except PyMongoError as e:
                code = getattr(e, "code", None) or (getattr(e, "details", None) or {}).get("code")
                print(f"failCommand: ok (insert failed: {e.__class__.__name__}, code {code})")
            c.admin.command("configureFailPoint", "failCommand", mode="off")
        except Exception as e:  # noqa: BLE001
            print(f"failCommand: unsupported ({e.__class__.__name__}: {e})")
        c.drop_database("stack_selftest")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in {"ping", "drop-all", "selftest"}:
        sys.exit(__doc__)
    {"ping": ping, "drop-all": drop_all, "selftest": selftest}[sys.argv[1]](sys.argv[2])
