"""Logging, a small JSON-over-HTTP server on the standard library, signals.

ThreadingHTTPServer: one thread per connection, HTTP/1.1 keep-alive. SIGTERM
(or SIGINT) stops accepting, lets the requests in flight finish within
SHUTDOWN_GRACE_MS, closes the store clients and exits 0.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

MAX_BODY = 1024 * 1024

log = logging.getLogger("http")


def setup_logging(name: str, level: str = "INFO") -> logging.Logger:
    """INFO lines (requests, progress) to stdout, WARNING and above to stderr."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s " + name + " %(name)s: %(message)s")
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(fmt)
    out.addFilter(lambda r: r.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(fmt)
    err.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = [out, err]
    root.setLevel(level)
    # The libraries' own chatter stays at WARNING (their errors still show).
    for noisy in ("botocore", "boto3", "urllib3", "pymongo", "cassandra"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(name)


class Response:
    def __init__(self, status: int, body: dict, note: str = ""):
        self.status, self.body, self.note = status, body, note


def error(status: int, message: str, note: str = "") -> Response:
    return Response(status, {"error": message}, note)


Route = Callable[[Optional[object]], Response]


class Stopper:
    """Set by SIGTERM/SIGINT; everything that loops or sleeps waits on it."""

    def __init__(self):
        self.event = threading.Event()
        self.signal_name = ""

    def install(self):
        def on_signal(signum, _frame):
            self.signal_name = signal.Signals(signum).name
            self.event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    @property
    def stopping(self) -> bool:
        return self.event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleeps unless stopped meanwhile; True when stopped."""
        return self.event.wait(seconds)


class App:
    """Routes by (method, path) and counts requests in flight for the drain."""

    def __init__(self, routes: dict[tuple[str, str], Callable], stopper: Stopper):
        self.routes = routes
        self.stopper = stopper
        self.in_flight = 0
        self.lock = threading.Condition()

    def handle(self, method: str, path: str, body) -> Response:
        path = path.split("?", 1)[0].rstrip("/") or "/"
        route = self.routes.get((method, path))
        if route is None:
            if any(p == path for (_, p) in self.routes):
                return error(405, f"{method} is not allowed on {path}")
            return error(404, f"no route for {path}")
        return route(body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "shop-example/1"
    timeout = 120  # an idle keep-alive connection is closed after this many seconds

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # one line per request is logged by _serve instead

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")

    def _read_body(self):
        if self.command != "POST":
            return None
        length = self.headers.get("Content-Length")
        if length is None:
            raise _HttpError(411, "Content-Length is required")
        try:
            n = int(length)
        except ValueError:
            raise _HttpError(400, "bad Content-Length") from None
        if n > MAX_BODY:
            raise _HttpError(413, f"body larger than {MAX_BODY} bytes")
        raw = self.rfile.read(n)
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _HttpError(400, f"the body is not valid JSON: {e}") from None

    def _serve(self, method: str):
        app: App = self.server.app
        t0 = time.monotonic()
        with app.lock:
            app.in_flight += 1
        try:
            try:
                body = self._read_body()
                if app.stopper.stopping:
                    resp = error(503, "shutting down")
                    self.close_connection = True
                else:
                    resp = app.handle(method, self.path, body)
            except _HttpError as e:
                resp = error(e.status, e.message)
                self.close_connection = True
            except Exception as e:  # noqa: BLE001 - a bug must answer 500, not drop the connection
                logging.getLogger("http").exception("unhandled error on %s %s", method, self.path)
                resp = error(500, f"internal error: {e.__class__.__name__}")
            data = json.dumps(resp.body).encode()
            try:
                self.send_response(resp.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the caller went away; the outcome stands
            ms = (time.monotonic() - t0) * 1000
            if self.path != "/health" or resp.status != 200:
                line = f"{method} {self.path} {resp.status} {ms:.1f}ms"
                if resp.note:
                    line += " " + resp.note
                log.info(line)
        finally:
            with app.lock:
                app.in_flight -= 1
                app.lock.notify_all()


class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold up the exit
    allow_reuse_address = True
    # socketserver's listen backlog is 5: a burst of new connections beyond it has
    # its SYNs dropped and retried by the client a second later. Load generators
    # open many connections at once.
    request_queue_size = 1024

    def __init__(self, host: str, port: int, app: App):
        super().__init__((host, port), Handler)
        self.app = app


def start(host: str, port: int, app: App, logger: logging.Logger) -> Server:
    """Binds (raises OSError if the port is taken) and serves on a background thread."""
    server = Server(host, port, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="http", daemon=True)
    thread.start()
    logger.info("listening on http://%s:%d", host, server.server_address[1])
    return server


def serve(host: str, port: int, app: App, grace_ms: int, logger: logging.Logger) -> None:
    """Serves until the stopper fires, then drains (bounded) and returns."""
    server = start(host, port, app, logger)
    app.stopper.event.wait()
    logger.info("%s received: no new connections, draining %d request(s) in flight",
                app.stopper.signal_name or "stop", app.in_flight)
    server.shutdown()
    server.server_close()
    deadline = time.monotonic() + grace_ms / 1000
    with app.lock:
        while app.in_flight and time.monotonic() < deadline:
            app.lock.wait(max(0.0, deadline - time.monotonic()))
        left = app.in_flight
    if left:
        logger.warning("%d request(s) still in flight after %d ms; exiting anyway", left, grace_ms)
