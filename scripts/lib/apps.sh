# shellcheck shell=bash
# scripts/lib/apps.sh: the example services of examples/apps (sourced by scripts/stack).
#
# They are not servers of the stack: `scripts/stack install|up --only apps` only
# makes their venv; dualwrite (or you) starts them. The venv is built from the
# full lock examples/apps/requirements.txt with --no-deps, named after the lock's
# hash (a changed lock gets a new venv beside the old one), and reached through
# the stable link $DUALWRITE_CACHE/venv-apps:
#
#   $DUALWRITE_CACHE/venv-apps/bin/python examples/apps/order_service.py
#
# Needs: REPO, CACHE, log, die and install_venv from scripts/stack.

APPS_PYTHON_MINOR=3.11 # the lock was made on CPython 3.11 (cassandra-driver's wheel is per version)
APPS_LOCK="$REPO/examples/apps/requirements.txt"
APPS_VENV_LINK="$CACHE/venv-apps"

apps_venv() { echo "$CACHE/venv-apps-$(sha256sum "$APPS_LOCK" | cut -c1-12)"; }

# The newest CPython 3.11.x from pyenv, else python3.11 or python3 on PATH if it is 3.11.
apps_python() {
  local p c
  p="$(find "${PYENV_ROOT:-$HOME/.pyenv}/versions" -maxdepth 3 -path "*/$APPS_PYTHON_MINOR.*/bin/python3" \
    2>/dev/null | sort -V | tail -1)"
  for c in "$p" "$(command -v "python$APPS_PYTHON_MINOR" 2>/dev/null)" "$(command -v python3 2>/dev/null)"; do
    [[ -n "$c" ]] || continue
    if "$c" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$APPS_PYTHON_MINOR'.split('.')))" 2>/dev/null; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

install_apps() {
  local dest py
  dest="$(apps_venv)"
  py="$(apps_python)" || die "Python $APPS_PYTHON_MINOR not found (the example services' lock is for it; pyenv install $APPS_PYTHON_MINOR)"
  install_venv "$dest" "$py" "$APPS_LOCK"
  "$dest/bin/python" -c 'import boto3, pymongo, cassandra.cluster' # the three drivers import
  ln -sfn "$(basename "$dest")" "$APPS_VENV_LINK.tmp" && mv -Tf "$APPS_VENV_LINK.tmp" "$APPS_VENV_LINK"
}

apps_report() { log "apps venv: $APPS_VENV_LINK -> $(apps_venv) (start the services with $APPS_VENV_LINK/bin/python examples/apps/...)"; }
