"""moto_server, with one request at a time inside moto's backends.

Usage: python moto_server_serialized.py -H HOST -p PORT   (moto_server's own flags)

Why: moto_server runs Werkzeug with threaded=True, but moto's in-memory
backends are not thread-safe. The one that corrupts dualwrite's results is
TransactWriteItems (moto/dynamodb/models/__init__.py, transact_write_items in
5.2.5): it snapshots every table it touches with copy.deepcopy, one table after
the other, and on any failure (a condition check that fails, for instance)
assigns the snapshots back to `self.tables`. A transaction that another thread
commits between the snapshot and the restore is wiped: wholly, or half when it
landed between the two tables' snapshots (the order gone, its event kept), and
its client already had HTTP 200. Meanwhile the deepcopy of a table that another
thread is writing fails with "dictionary changed size during iteration" (500).
Real DynamoDB transactions are serializable, so the stack must be too.

What: every request is handled by moto under one process-wide lock. The request
body is read, and the response written, outside the lock, so a slow or
black-holed client (Toxiproxy faults) never holds it; only moto's own work is
serialized. Under the GIL that work ran one thread at a time anyway, so the cost
is small (measured: see scripts/PORTS.md). Caveat: an API that blocks inside
moto (SQS long polling) would hold the lock; the stack serves only DynamoDB and
DynamoDB Streams, which never block.

The file name contains "moto_server" on purpose: scripts/stack recognises its
server by that substring of the command line.
"""

import io
import sys
import threading

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_LOCK = threading.Lock()
_unserialized_call = DomainDispatcherApplication.__call__


def _read_body(environ):
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    if environ.get("wsgi.input_terminated"):  # chunked: Werkzeug ends the stream
        return stream.read()
    return b""


def _serialized_call(self, environ, start_response):
    body = _read_body(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    with _LOCK:
        result = _unserialized_call(self, environ, start_response)
        try:
            chunks = list(result)  # moto builds whole responses: no I/O here
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    return chunks


DomainDispatcherApplication.__call__ = _serialized_call

if __name__ == "__main__":
    server.main(sys.argv[1:])
