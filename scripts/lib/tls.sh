# shellcheck shell=bash
# The TLS and login stack, sourced by scripts/stack: servers that check who
# connects and encrypt, for the tests of dualwrite against real deployments
# (tests/e2e/deployments.rs, docs/DEPLOYMENTS.md).
#
#   scripts/stack up --only tls      certificates, three servers, nine proxies
#   scripts/stack down --only tls    stop them, delete the proxies (certificates kept)
#   scripts/stack reset --only tls   drop their data, heal their proxies
# Plain `down`/`reset` act on it too when it runs; plain `up` never starts it (a
# second Cassandra JVM, about 650 MB).
#
# Servers (each with its own data under $DATA, wiped at every start):
#   cassandra-tls  Cassandra 5.0.6, PasswordAuthenticator + CassandraAuthorizer,
#                  CQL over TLS only on 127.0.0.1:9142 with a client certificate
#                  required; storage port 7010; heap 256 MB. Role `dualwrite`
#                  (LOGIN, CREATE ON ALL KEYSPACES and nothing else).
#   ferretdb-tls   FerretDB v1.24.2 (SQLite), TLS on 127.0.0.1:27029 with a client
#                  certificate required; plain 127.0.0.1:27028 for health and reset.
#                  No logins: FerretDB v1's SCRAM (--test-enable-new-auth) ignores
#                  the driver's skipEmptyExchange and answers done:false after the
#                  server proof, which the Rust driver rejects ("expected SCRAM
#                  authentication to have completed"), even with the right password.
#   moto-tls       moto 5.2.5 over HTTPS on 127.0.0.1:5443.
# Each server certificate names cassandra.dualwrite.test, ferretdb.dualwrite.test
# and dynamodb.dualwrite.test, never 127.0.0.1: a client that checks the address
# it connects to (a proxy) fails, as it must; one that checks tls_server_name passes.
#
# Files in $STATE/tls (openssl, made once; `rm -r $STATE/tls` makes new ones):
#   ca.pem ca.key              the stack's test CA
#   server.pem server.key      the servers' certificate and key
#   cassandra-keystore.pem     key + certificate, as Cassandra's PEM keystore wants
#   client.pem client.key      a client certificate (CN dualwrite) and its key
#   client-combined.pem        both in one file, as MongoDB's tlsCertificateKeyFile
#   other-ca.pem               a CA that signed nothing here (wrong-CA tests)
#   cassandra-dualwrite.password   the role dualwrite's password (0600, random)
#   env                        TLS_* lines the tests read: ports, proxies, files
#
# Reuses from scripts/stack: log/warn/die/now, launch, log_tail, rss_mb, the
# installs of Cassandra, FerretDB and moto, the paths, Toxiproxy's address.

TLS_DIR="$STATE/tls"
TLS_NAMES=(cassandra.dualwrite.test ferretdb.dualwrite.test dynamodb.dualwrite.test)
TLS_CASSANDRA_PORT=9142
TLS_CASSANDRA_STORAGE_PORT=7010
TLS_CASSANDRA_HEAP=256m
TLS_FERRETDB_PORT=27028     # plain: health checks and reset only
TLS_FERRETDB_TLS_PORT=27029
TLS_MOTO_PORT=5443
TLS_SERVERS=(cassandra-tls ferretdb-tls moto-tls)
# name listen-port upstream-port: keep identical to scripts/PORTS.md.
TLS_PROXIES=(
  "cassandra_tls_primary    29142 $TLS_CASSANDRA_PORT"
  "cassandra_tls_secondary  29143 $TLS_CASSANDRA_PORT"
  "cassandra_tls_relay      29144 $TLS_CASSANDRA_PORT"
  "ferretdb_tls_primary     37037 $TLS_FERRETDB_TLS_PORT"
  "ferretdb_tls_secondary   37038 $TLS_FERRETDB_TLS_PORT"
  "ferretdb_tls_relay       37039 $TLS_FERRETDB_TLS_PORT"
  "dynamodb_tls_primary     25010 $TLS_MOTO_PORT"
  "dynamodb_tls_secondary   25011 $TLS_MOTO_PORT"
  "dynamodb_tls_relay       25012 $TLS_MOTO_PORT"
)
TLS_START_TIMEOUT=180 # seconds for one server to answer after its start

tls_marker() {
  case "$1" in
    cassandra-tls) echo "-Ddualwrite.node=tls " ;;
    ferretdb-tls) echo "--listen-tls=$HOST:$TLS_FERRETDB_TLS_PORT" ;;
    moto-tls) echo "-p $TLS_MOTO_PORT" ;;
  esac
}

# Prints the pid of a TLS-stack server if it runs (the marker proves it is ours).
tls_pid() {
  local f="$PIDS/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(tls_marker "$1")" || return 1
  echo "$pid"
}

tls_ports() {
  case "$1" in
    cassandra-tls) echo "$TLS_CASSANDRA_PORT $TLS_CASSANDRA_STORAGE_PORT" ;;
    ferretdb-tls) echo "$TLS_FERRETDB_PORT $TLS_FERRETDB_TLS_PORT" ;;
    moto-tls) echo "$TLS_MOTO_PORT" ;;
  esac
}

# ------------------------------------------------------------ certificates --
# openssl_cert NAME CN EXTENSIONS: a key and a certificate signed by the CA.
tls_sign() {
  local name="$1" cn="$2" ext="$3"
  openssl req -newkey rsa:2048 -nodes -keyout "$TLS_DIR/$name.key" -out "$TLS_DIR/$name.csr" \
    -subj "/CN=$cn" 2>/dev/null
  printf '%b' "$ext" >"$TLS_DIR/$name.ext"
  openssl x509 -req -in "$TLS_DIR/$name.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -out "$TLS_DIR/$name.pem" -days 3650 -extfile "$TLS_DIR/$name.ext" 2>/dev/null
  rm -f "$TLS_DIR/$name.csr" "$TLS_DIR/$name.ext"
}

tls_certs() {
  command -v openssl >/dev/null || die "openssl not found: the TLS stack makes its certificates with it"
  if [[ -f "$TLS_DIR/.complete" ]]; then return 0; fi
  rm -rf "$TLS_DIR" && mkdir -p "$TLS_DIR" && chmod 700 "$TLS_DIR"
  local san="" n
  for n in "${TLS_NAMES[@]}"; do san+="${san:+,}DNS:$n"; done
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" \
    -days 3650 -subj "/CN=dualwrite test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS_DIR/other-ca.key" -out "$TLS_DIR/other-ca.pem" \
    -days 3650 -subj "/CN=dualwrite other CA" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
  tls_sign server "dualwrite test server" \
    "subjectAltName=$san\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
  tls_sign client dualwrite \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
  cat "$TLS_DIR/server.key" "$TLS_DIR/server.pem" >"$TLS_DIR/cassandra-keystore.pem"
  cat "$TLS_DIR/client.pem" "$TLS_DIR/client.key" >"$TLS_DIR/client-combined.pem"
  openssl rand -hex 16 >"$TLS_DIR/cassandra-dualwrite.password"
  chmod 600 "$TLS_DIR"/*.key "$TLS_DIR"/*.password "$TLS_DIR"/*-combined.pem "$TLS_DIR"/cassandra-keystore.pem
  openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" "$TLS_DIR/client.pem" >/dev/null ||
    die "the TLS stack's certificates do not verify against its CA"
  touch "$TLS_DIR/.complete"
  log "certificates: $TLS_DIR (CA, server for ${TLS_NAMES[*]}, client)"
}

# The file the tests read (tests/e2e/deployments.rs): no secrets, only where they are.
tls_write_env() {
  local p name listen tmp="$TLS_DIR/env.tmp"
  {
    echo "# Written by scripts/stack up --only tls. Read by tests/e2e/deployments.rs."
    echo "TLS_DIR=$TLS_DIR"
    echo "TLS_CASSANDRA=$HOST:$TLS_CASSANDRA_PORT"
    echo "TLS_FERRETDB=$HOST:$TLS_FERRETDB_TLS_PORT"
    echo "TLS_MOTO=$HOST:$TLS_MOTO_PORT"
    for p in "${TLS_PROXIES[@]}"; do
      read -r name listen _ <<<"$p"
      echo "TLS_PROXY_$name=$HOST:$listen"
    done
  } >"$tmp"
  mv "$tmp" "$TLS_DIR/env"
}

# ------------------------------------------------------------ health checks --
# Every check is a real request over TLS, logged in where the server wants it.
# tls_cql USER PASSWORD_FILE CQL (CQL `-`: read from standard input).
tls_cql() {
  CQL_TLS_CA="$TLS_DIR/ca.pem" CQL_TLS_CERT="$TLS_DIR/client.pem" CQL_TLS_KEY="$TLS_DIR/client.key" \
    CQL_TLS_NAME=cassandra.dualwrite.test CQL_USER="$1" CQL_PASSWORD_FILE="$2" \
    python3 "$LIB/cql_tool.py" "$HOST:$TLS_CASSANDRA_PORT" "$3"
}

tls_superuser_password() {
  # The node's built-in superuser, as made at its first start (a throwaway node
  # on loopback: its well-known password is no secret).
  printf 'cassandra\n' >"$TLS_DIR/.cassandra-superuser.password"
  echo "$TLS_DIR/.cassandra-superuser.password"
}

tls_healthy() {
  case "$1" in
    cassandra-tls)
      [[ -n "$(tls_cql cassandra "$(tls_superuser_password)" "SELECT release_version FROM system.local" 2>/dev/null)" ]] ;;
    ferretdb-tls)
      "$MONGOECO_VENV/bin/python" "$LIB/mongo_tool.py" ping "$HOST:$TLS_FERRETDB_PORT" >/dev/null 2>&1 ;;
    moto-tls)
      curl -fsS --max-time 3 --cacert "$TLS_DIR/ca.pem" \
        --resolve "dynamodb.dualwrite.test:$TLS_MOTO_PORT:$HOST" -X POST \
        "https://dynamodb.dualwrite.test:$TLS_MOTO_PORT/" -H "$MOTO_AUTH" \
        -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
        -H 'Content-Type: application/x-amz-json-1.0' -d '{}' 2>/dev/null | grep -q '"TableNames"' ;;
  esac
}

# ------------------------------------------------------------------ starts --
tls_start_cassandra() {
  local lib="$CASSANDRA_HOME/lib" data="$DATA/cassandra-tls" conf="$CONF/cassandra-tls" jamm
  rm -rf "$data" && mkdir -p "$data/triggers" "$conf"
  sed -e "s#@DATA@#$data#g" -e "s#@TLS@#$TLS_DIR#g" -e "s/@STORAGE_PORT@/$TLS_CASSANDRA_STORAGE_PORT/g" \
    -e "s/@CQL_PORT@/$TLS_CASSANDRA_PORT/g" "$LIB/cassandra-tls.yaml.template" >"$conf/cassandra.yaml"
  cp "$LIB/cassandra-logback.xml" "$conf/logback.xml"
  jamm="$(ls "$lib"/jamm-*.jar | head -1)"
  local -a jvm17
  mapfile -t jvm17 < <(grep -v -e '^#' -e '^[[:space:]]*$' "$LIB/cassandra-jvm17.options")
  launch cassandra-tls java -Ddualwrite.node=tls \
    -Xms"$TLS_CASSANDRA_HEAP" -Xmx"$TLS_CASSANDRA_HEAP" -Xss256k \
    -XX:+UseG1GC -XX:ParallelGCThreads=1 -XX:ConcGCThreads=1 -XX:TieredStopAtLevel=1 \
    -XX:+ExitOnOutOfMemoryError \
    "${jvm17[@]}" \
    -javaagent:"$jamm" \
    -Djava.net.preferIPv4Stack=true \
    -Dcassandra.config="file://$conf/cassandra.yaml" \
    -Dlogback.configurationFile="file://$conf/logback.xml" \
    -Dcassandra.logdir="$LOGS/cassandra-tls" -Dcassandra.storagedir="$data" \
    -Dcassandra.triggers_dir="$data/triggers" -Dcassandra-foreground=yes \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.superuser_setup_delay_ms=0 \
    -Dcassandra.load_ring_state=false -Dcassandra.unsafesystem=true \
    -cp "$lib/*" org.apache.cassandra.service.CassandraDaemon
}

tls_start_ferretdb() {
  local data="$DATA/ferretdb-tls"
  rm -rf "$data" && mkdir -p "$data/sqlite" "$data/state"
  launch ferretdb-tls "$FERRETDB_BIN" --handler=sqlite --sqlite-url="file:$data/sqlite/" \
    --listen-addr="$HOST:$TLS_FERRETDB_PORT" --listen-tls="$HOST:$TLS_FERRETDB_TLS_PORT" \
    --listen-tls-cert-file="$TLS_DIR/server.pem" --listen-tls-key-file="$TLS_DIR/server.key" \
    --listen-tls-ca-file="$TLS_DIR/ca.pem" --state-dir="$data/state" \
    --telemetry=disable --debug-addr=-
}

tls_start_moto() {
  launch moto-tls "$MOTO_VENV/bin/python" "$LIB/moto_server_serialized.py" -H "$HOST" \
    -p "$TLS_MOTO_PORT" -c "$TLS_DIR/server.pem" -k "$TLS_DIR/server.key"
}

# The role dualwrite runs as: a login and CREATE ON ALL KEYSPACES, nothing else
# (its own keyspaces it then owns: Cassandra grants their creator every permission).
tls_cassandra_roles() {
  local su pw
  su="$(tls_superuser_password)"
  pw="$(<"$TLS_DIR/cassandra-dualwrite.password")"
  printf "CREATE ROLE IF NOT EXISTS dualwrite WITH LOGIN = true AND PASSWORD = '%s'" "$pw" |
    tls_cql cassandra "$su" - >/dev/null
  tls_cql cassandra "$su" "GRANT CREATE ON ALL KEYSPACES TO dualwrite" >/dev/null
}

tls_proxies_json() {
  local p name listen upstream sep=""
  printf '['
  for p in "${TLS_PROXIES[@]}"; do
    read -r name listen upstream <<<"$p"
    printf '%s{"name":"%s","listen":"%s:%s","upstream":"%s:%s","enabled":true}' \
      "$sep" "$name" "$HOST" "$listen" "$HOST" "$upstream"
    sep=","
  done
  printf ']'
}

tls_proxy_names() {
  local p
  for p in "${TLS_PROXIES[@]}"; do echo "${p%% *}"; done
}

tls_create_proxies() {
  local code
  code="$(curl -sS -o "$STATE/.populate-tls.out" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data "$(tls_proxies_json)" \
    "http://$HOST:$TOXIPROXY_PORT/populate")" || code=000
  if [[ "$code" != 201 && "$code" != 200 ]]; then
    cat "$STATE/.populate-tls.out" >&2 2>/dev/null || true
    die "creating the TLS stack's proxies failed (HTTP $code); see scripts/PORTS.md for their ports"
  fi
  rm -f "$STATE/.populate-tls.out"
  log "proxies: ${#TLS_PROXIES[@]} TLS-stack proxies present (see scripts/PORTS.md)"
}

tls_delete_proxies() {
  health_toxiproxy || return 0
  local p
  for p in $(tls_proxy_names); do
    curl -sS -o /dev/null --max-time 3 -X DELETE "http://$HOST:$TOXIPROXY_PORT/proxies/$p" || true
  done
}

# ---------------------------------------------------------------- commands --
tls_install() {
  check_toolchains cassandra ferretdb moto
  install_all cassandra ferretdb moto
  tls_certs
}

tls_up() {
  local t0 s pid failed=()
  t0="$(now)"
  health_toxiproxy || die "Toxiproxy is not up (scripts/stack up --only tls starts it first)"
  tls_install
  tls_write_env
  declare -A since_start=()
  for s in "${TLS_SERVERS[@]}"; do
    if pid="$(tls_pid "$s")"; then
      log "running: $s (pid $pid)"
      continue
    fi
    local port
    for port in $(tls_ports "$s"); do
      port_busy "$port" && die "port $HOST:$port needed by $s is taken by $(port_owner "$port")"
    done
    rm -f "$PIDS/$s.pid"
    case "$s" in
      cassandra-tls) mkdir -p "$LOGS/cassandra-tls"; tls_start_cassandra ;;
      ferretdb-tls) tls_start_ferretdb ;;
      moto-tls) tls_start_moto ;;
    esac
    since_start[$s]="$(now)"
    log "started: $s (pid $(<"$PIDS/$s.pid"), log $LOGS/$s.log)"
  done
  for s in moto-tls ferretdb-tls cassandra-tls; do
    local since="${since_start[$s]:-$(now)}"
    while ! tls_healthy "$s"; do
      if ! tls_pid "$s" >/dev/null; then
        echo "[stack] ERROR: $s exited during start-up" >&2; log_tail "$s"; failed+=("$s"); break
      fi
      if (($(now) - since >= TLS_START_TIMEOUT)); then
        echo "[stack] ERROR: $s not healthy after ${TLS_START_TIMEOUT}s" >&2; log_tail "$s"; failed+=("$s"); break
      fi
      sleep 1
    done
    [[ " ${failed[*]-} " == *" $s "* ]] || log "healthy: $s after $(($(now) - since))s"
  done
  ((${#failed[@]} == 0)) || die "not healthy: ${failed[*]} (scripts/stack down --only tls stops the others)"
  tls_cassandra_roles
  tls_create_proxies
  log "up: tls (cassandra-tls, ferretdb-tls, moto-tls) in $(($(now) - t0))s"
}

tls_down() {
  local s pid stopping=() entry
  for s in "${TLS_SERVERS[@]}"; do
    if pid="$(tls_pid "$s")"; then
      kill -TERM "$pid" 2>/dev/null || true
      stopping+=("$s:$pid")
      log "stopping: $s (pid $pid)"
    else
      rm -f "$PIDS/$s.pid"
    fi
  done
  local deadline=$(($(now) + STOP_TIMEOUT))
  for entry in "${stopping[@]}"; do
    s="${entry%%:*}" pid="${entry#*:}"
    while kill -0 "$pid" 2>/dev/null && (($(now) < deadline)); do sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      warn "$s (pid $pid) ignored TERM for ${STOP_TIMEOUT}s, sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDS/$s.pid"
  done
  tls_delete_proxies
  if ((${#stopping[@]})); then log "stopped: tls"; else log "tls: nothing to stop"; fi
}

# Wipes the data dualwrite left and heals the proxies (the servers keep running).
tls_reset() {
  tls_running || { log "reset: tls is not up, skipped"; return 0; }
  local p t
  for p in $(tls_proxy_names); do
    for t in $(curl -fsS --max-time 3 "http://$HOST:$TOXIPROXY_PORT/proxies/$p/toxics" 2>/dev/null |
      python3 -c 'import json, sys; [print(t["name"]) for t in json.load(sys.stdin)]' 2>/dev/null); do
      curl -sS -o /dev/null --max-time 3 -X DELETE "http://$HOST:$TOXIPROXY_PORT/proxies/$p/toxics/$t" || true
    done
    curl -sS -o /dev/null --max-time 3 -X POST -d '{"enabled":true}' "http://$HOST:$TOXIPROXY_PORT/proxies/$p" || true
  done
  if tls_pid cassandra-tls >/dev/null; then
    CQL_TLS_CA="$TLS_DIR/ca.pem" CQL_TLS_CERT="$TLS_DIR/client.pem" CQL_TLS_KEY="$TLS_DIR/client.key" \
      CQL_TLS_NAME=cassandra.dualwrite.test CQL_USER=cassandra CQL_PASSWORD_FILE="$(tls_superuser_password)" \
      python3 "$LIB/cql_tool.py" "$HOST:$TLS_CASSANDRA_PORT" --drop-user-keyspaces
  fi
  if tls_pid ferretdb-tls >/dev/null; then
    "$MONGOECO_VENV/bin/python" "$LIB/mongo_tool.py" drop-all "$HOST:$TLS_FERRETDB_PORT"
  fi
  if tls_pid moto-tls >/dev/null; then
    curl -fsS --max-time 10 --cacert "$TLS_DIR/ca.pem" --resolve "dynamodb.dualwrite.test:$TLS_MOTO_PORT:$HOST" \
      -X POST "https://dynamodb.dualwrite.test:$TLS_MOTO_PORT/moto-api/reset" >/dev/null
  fi
  log "reset: tls"
}

tls_running() {
  local s
  for s in "${TLS_SERVERS[@]}"; do tls_pid "$s" >/dev/null && return 0; done
  return 1
}

tls_status() {
  tls_running || { echo; echo "tls: not up (scripts/stack up --only tls)"; return 0; }
  echo
  local s pid state rss
  printf '%-13s %8s %6s  %-9s %7s\n' TLS-SERVER PID PORT HEALTH RSS_MB
  for s in "${TLS_SERVERS[@]}"; do
    if pid="$(tls_pid "$s")"; then
      if tls_healthy "$s"; then state=healthy; else state=unhealthy; fi
      rss="$(rss_mb "$pid")"
    else
      pid=- state=down rss=-
    fi
    printf '%-13s %8s %6s  %-9s %7s\n' "$s" "$pid" "$(tls_ports "$s" | cut -d' ' -f1)" "$state" "$rss"
  done
}

# scripts/stack's mutating commands: the stack's own (and the cluster's), plus
# this component's part.
tls_dispatch() {
  local cmd="$1"; shift
  TLS=0
  if [[ "$cmd" == down || "$cmd" == reset ]] && [[ "${1:-}" == --only && "${2:-}" == tls ]]; then
    [[ -z "${3:-}" ]] || die "'$cmd --only tls' takes no further arguments"
    "tls_$cmd"
    return
  fi
  # Kafka's dispatch (then the cluster's) parses --only (setting TLS=1 for `tls`)
  # and runs cmd_$cmd. A plain down/reset acts on the TLS stack too.
  if [[ "$cmd" == down || "$cmd" == reset ]] && [[ "${1:-}" != --only ]] && tls_running; then "tls_$cmd"; fi
  kafka_dispatch "$cmd" "$@"
  case "$cmd" in
    up) if ((TLS)); then tls_up; fi ;;
    install) if ((TLS)); then tls_install; log "installed: tls"; fi ;;
  esac
}
