"""What a store call can end in, in the terms the HTTP answer needs.

Each store module maps its own library's exceptions onto these three, because
the answer to the caller depends on one question only: could the write have
happened?
"""


class StoreError(Exception):
    """The call failed and its outcome is unknown (a timeout or a connection lost
    after the request was sent): the write may or may not have been applied."""


class StoreUnavailable(StoreError):
    """The write was certainly not applied: no connection could be made, the
    store refused before applying anything (throttling, Unavailable), or a
    transaction was cancelled."""


class AlreadyExists(Exception):
    """A create found the record already there (same order id)."""
