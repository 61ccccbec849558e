#!/usr/bin/env bash
# examples/apps/smoke.sh [--stores dynamodb,mongoeco,ferretdb,cassandra] [--orders N] [--keep]
#
# Smoke test of the example services against the running local stack (see
# smoke.py for what it checks). Needs `scripts/stack up` (Toxiproxy and the
# servers of the stores tested); makes the services' venv first if needed.
# Honours DUALWRITE_CACHE / DUALWRITE_STATE like scripts/stack.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${DUALWRITE_CACHE:-$REPO/.cache}/venv-apps/bin/python"
if ! "$REPO/scripts/stack" install --only apps >&2; then
  # e.g. another scripts/stack command holds the stack lock: an existing venv will do.
  [[ -x "$PY" ]] || { echo "smoke: cannot make the apps venv (see above)" >&2; exit 3; }
  echo "smoke: using the existing venv $PY" >&2
fi
exec "$PY" "$REPO/examples/apps/smoke.py" "$@"
