"""The example shop services that dualwrite tests: shared code of order_service,
outbox_service and outbox_relay (one codebase, one module per store)."""
