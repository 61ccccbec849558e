"""Start-up: connect, create the tables when asked, wait until the store is usable.

Never gives up while the process runs: a store that is down at start is retried
with backoff (the HTTP server already answers, /health says 503 until ready).
"""

from __future__ import annotations

import threading


class Readiness:
    def __init__(self):
        self.event = threading.Event()
        self.last_error = "starting"

    @property
    def ready(self) -> bool:
        return self.event.is_set()


def prepare_store(store, settings, stopper, log, readiness: Readiness) -> bool:
    delay = 0.2
    while not stopper.stopping:
        try:
            if settings.create_tables:
                made = store.create_schema()
                log.info("schema ensured (%s): %s", store.name, ", ".join(map(str, made)) or "nothing to create")
            store.check_ready()
            readiness.last_error = ""
            readiness.event.set()
            log.info("store ready: %s", store.name)
            return True
        except Exception as e:  # noqa: BLE001 - any failure here is retried
            readiness.last_error = f"{e.__class__.__name__}: {e}"
            log.warning("store not ready yet (%s); retrying in %.1fs", readiness.last_error, delay)
            stopper.sleep(delay)
            delay = min(delay * 2, 5.0)
    return False


def retry(fn, attempts: int, backoff_ms: int, stopper):
    """Calls fn() up to 1 + attempts times on StoreError, with doubling backoff.
    Returns (result, tries, ambiguous) where ambiguous says whether any failed try
    may have been applied; re-raises the last error."""
    from .errors import StoreError, StoreUnavailable

    ambiguous = False
    for i in range(attempts + 1):
        try:
            return fn(i > 0), i + 1, ambiguous
        except StoreError as e:
            if not isinstance(e, StoreUnavailable):
                ambiguous = True
            e.ambiguous = ambiguous  # what the caller needs to answer 503 or 500
            e.tries = i + 1
            if i == attempts or stopper.stopping:
                raise
            stopper.sleep(min(backoff_ms * (2 ** i), 5000) / 1000)
    raise AssertionError("unreachable")
