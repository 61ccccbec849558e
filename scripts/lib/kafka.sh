# shellcheck shell=bash
# Apache Kafka (KRaft: one combined broker+controller, no ZooKeeper), sourced by
# scripts/stack.
#
#   scripts/stack install --only kafka   the jars (Maven Central) into $DUALWRITE_CACHE
#   scripts/stack up --only kafka        Toxiproxy, its Kafka proxies, the broker
#   scripts/stack down --only kafka      stop the broker (plain `down` stops it too)
#   scripts/stack reset --only kafka     delete every topic of the runs (plain `reset` too)
#   scripts/stack status                 one line for the broker too
# Plain `up` never starts it: a JVM of about 400 MB that only the Kafka tests and
# scenarios need (scripts/test starts it for the `kafka_topic` e2e module only).
#
# Listeners: a Kafka client bootstraps, then connects to the addresses the broker
# *advertises*. So each side gets its own listener, advertised as that side's
# Toxiproxy proxy: every connection of that side's client (the bootstrap one and
# the ones it learns) goes through its proxy, and a fault on one proxy hits one
# side only (scripts/PORTS.md):
#   SECONDARY 127.0.0.1:19092, advertised 127.0.0.1:29092 (proxy kafka_secondary)
#   RELAY     127.0.0.1:19093, advertised 127.0.0.1:29093 (proxy kafka_relay)
#   DIRECT    127.0.0.1:9092,  advertised as itself (health checks, reset)
#   CONTROLLER 127.0.0.1:9093 (KRaft, this process only)
#
# Process faults (`process-kill` / `process-pause` of `kafka`) signal the pid in
# $DUALWRITE_STATE/pids/kafka.pid; dualwrite restarts a killed broker with
# `scripts/stack up --only kafka` (its log is recovered from $DUALWRITE_STATE/data/kafka).
#
# Reuses from scripts/stack: log/warn/die/now, launch, pidfile, rss_mb, log_tail,
# check_ports_free's conventions, port_busy/port_owner, STOP_TIMEOUT, the paths.

KAFKA_VERSION=4.1.1        # Maven Central org.apache.kafka:kafka_2.13
KAFKA_SLF4J_VERSION=2.0.17 # pinned: Maven resolves 1.7 otherwise, which loses all logging
KAFKA_LOG4J_VERSION=2.24.3
KAFKA_HEAP=256m
KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
KAFKA_DATA="$DATA/kafka"
KAFKA_CONF="$CONF/kafka"
KAFKA_DIRECT_PORT=9092
KAFKA_CONTROLLER_PORT=9093
# name listen-port upstream-port (the broker's listener for that side).
KAFKA_PROXIES=(
  "kafka_secondary 29092 19092"
  "kafka_relay     29093 19093"
)
KAFKA_HEALTH_TIMEOUT=90
# The cluster id of a fresh data directory (any base64 UUID; fixed, so a restart
# after `down` reuses the data).
KAFKA_CLUSTER_ID=ZHVhbHdyaXRlLWthZmthMQ

kafka_pid() {
  local f="$PIDS/kafka.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-Ddualwrite.kafka=1 " || return 1
  echo "$pid"
}

kafka_proc_state() { awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# A real request: ApiVersions, then Metadata naming this broker (scripts/lib/kafka_tool.py).
kafka_healthy() { python3 "$LIB/kafka_tool.py" ping "$HOST:$KAFKA_DIRECT_PORT" >/dev/null 2>&1; }

kafka_install() {
  local dest="$KAFKA_HOME"
  [[ -f "$dest/.stamp" ]] && return 0
  need mvn "Maven fetches the Kafka jars from Maven Central"
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  sed -e "s/@KAFKA_VERSION@/$KAFKA_VERSION/" -e "s/@SLF4J_VERSION@/$KAFKA_SLF4J_VERSION/" \
    -e "s/@LOG4J_VERSION@/$KAFKA_LOG4J_VERSION/g" "$LIB/kafka-pom.xml" >"$dest.tmp/pom.xml"
  (cd "$dest.tmp" && mvn -q -B -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=lib)
  ls "$dest.tmp/lib/kafka_2.13-$KAFKA_VERSION.jar" "$dest.tmp/lib/slf4j-api-$KAFKA_SLF4J_VERSION.jar" >/dev/null
  echo "$KAFKA_VERSION" >"$dest.tmp/.stamp"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
}

kafka_render_conf() {
  mkdir -p "$KAFKA_CONF" "$KAFKA_DATA"
  local listeners="DIRECT://$HOST:$KAFKA_DIRECT_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT"
  local advertised="DIRECT://$HOST:$KAFKA_DIRECT_PORT" protocols="DIRECT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  local p name listen upstream side
  for p in "${KAFKA_PROXIES[@]}"; do
    read -r name listen upstream <<<"$p"
    side="${name#kafka_}" && side="${side^^}"
    listeners+=",$side://$HOST:$upstream"
    advertised+=",$side://$HOST:$listen"
    protocols+=",$side:PLAINTEXT"
  done
  cat >"$KAFKA_CONF/server.properties" <<EOF
# Written by scripts/lib/kafka.sh (kafka_render_conf): edit that file, not this one.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=DIRECT
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$protocols
log.dirs=$KAFKA_DATA
# One broker: every internal topic has one replica; few partitions keep the
# first transactional / group request (which creates the topic) quick.
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# dualwrite creates each run's topics itself (and deletes them).
auto.create.topics.enable=false
delete.topic.enable=true
# Small segments: a run's topics are small and deleted after the run.
log.segment.bytes=16777216
EOF
  cat >"$KAFKA_CONF/log4j2.properties" <<'EOF'
# Written by scripts/lib/kafka.sh: the broker logs to stdout (the stack's log file).
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.log.name = org.apache.kafka.storage.internals.log
logger.log.level = warn
EOF
}

kafka_java() {
  java -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="file:$KAFKA_CONF/log4j2.properties" \
    -cp "$KAFKA_HOME/lib/*" "$@"
}

kafka_start() {
  kafka_render_conf
  if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
    # Storage format: once per data directory (`reset` keeps it; `down` keeps it).
    kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$KAFKA_CLUSTER_ID" \
      -c "$KAFKA_CONF/server.properties" >"$LOGS/kafka-format.log" 2>&1 ||
      { tail -n 20 "$LOGS/kafka-format.log" >&2; die "formatting Kafka's storage failed (log: $LOGS/kafka-format.log)"; }
  fi
  # The marker property proves a recorded pid is this broker.
  launch kafka java -Ddualwrite.kafka=1 -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="file:$KAFKA_CONF/log4j2.properties" \
    -cp "$KAFKA_HOME/lib/*" kafka.Kafka "$KAFKA_CONF/server.properties"
}

kafka_proxies_json() {
  local p name listen upstream sep=""
  printf '['
  for p in "${KAFKA_PROXIES[@]}"; do
    read -r name listen upstream <<<"$p"
    printf '%s{"name":"%s","listen":"%s:%s","upstream":"%s:%s","enabled":true}' \
      "$sep" "$name" "$HOST" "$listen" "$HOST" "$upstream"
    sep=","
  done
  printf ']'
}

# POST /populate leaves an existing identical proxy (and its toxics) alone.
kafka_create_proxies() {
  local code
  code="$(curl -sS -o "$STATE/.populate-kafka.out" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data "$(kafka_proxies_json)" \
    "http://$HOST:$TOXIPROXY_PORT/populate")" || code=000
  if [[ "$code" != 201 && "$code" != 200 ]]; then
    cat "$STATE/.populate-kafka.out" >&2 2>/dev/null || true
    die "creating the Kafka proxies failed (HTTP $code); ports 29092-29093 may be taken"
  fi
  rm -f "$STATE/.populate-kafka.out"
  log "proxies: kafka_secondary, kafka_relay present (see scripts/PORTS.md)"
}

kafka_up() {
  local t0 pid
  t0="$(now)"
  need java "Kafka $KAFKA_VERSION runs on the JVM (Java 17)"
  if [[ ! -f "$KAFKA_HOME/.stamp" ]]; then
    log "installing Kafka $KAFKA_VERSION jars"
    kafka_install >"$LOGS/install-kafka.log" 2>&1 ||
      { tail -n 30 "$LOGS/install-kafka.log" >&2; die "installing Kafka failed (log: $LOGS/install-kafka.log)"; }
    log "installed: kafka ($(($(now) - t0))s)"
  fi
  kafka_create_proxies
  if pid="$(kafka_pid)"; then
    if [[ "$(kafka_proc_state "$pid")" == T ]]; then
      log "running: kafka (pid $pid) is paused (SIGSTOP), left paused"
      return 0
    fi
    log "running: kafka (pid $pid)"
  else
    rm -f "$PIDS/kafka.pid"
    local port owner bad=0 p listen upstream
    for p in "$KAFKA_DIRECT_PORT" "$KAFKA_CONTROLLER_PORT" "${KAFKA_PROXIES[@]}"; do
      read -r _ listen upstream <<<"$p"
      port="${upstream:-$p}"
      if port_busy "$port"; then
        owner="$(port_owner "$port")"
        echo "[stack] ERROR: port $HOST:$port needed by kafka is already taken by ${owner:-an unknown process}" >&2
        bad=1
      fi
    done
    ((bad == 0)) || die "port conflict, kafka not started"
    kafka_start
    log "started: kafka (pid $(<"$PIDS/kafka.pid"), log $LOGS/kafka.log)"
  fi
  while ! kafka_healthy; do
    if ! pid="$(kafka_pid)"; then
      echo "[stack] ERROR: kafka exited during start-up" >&2
      log_tail kafka
      die "kafka did not start"
    fi
    if (($(now) - t0 >= KAFKA_HEALTH_TIMEOUT)); then
      log_tail kafka
      die "kafka (pid $pid) not healthy after ${KAFKA_HEALTH_TIMEOUT}s on $HOST:$KAFKA_DIRECT_PORT"
    fi
    sleep 0.5
  done
  log "healthy: kafka on $HOST:$KAFKA_DIRECT_PORT after $(($(now) - t0))s ($(rss_mb "$(kafka_pid)") MB resident)"
}

kafka_down() {
  local pid t0
  t0="$(now)"
  if ! pid="$(kafka_pid)"; then
    [[ -f "$PIDS/kafka.pid" ]] && log "not running: kafka (stale pid file removed)"
    rm -f "$PIDS/kafka.pid"
    return 0
  fi
  # A paused broker cannot handle TERM.
  [[ "$(kafka_proc_state "$pid")" == T ]] && kill -CONT "$pid" 2>/dev/null
  kill -TERM "$pid" 2>/dev/null || true
  log "stopping: kafka (pid $pid)"
  local deadline=$(($(now) + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && (($(now) < deadline)); do sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    warn "kafka (pid $pid) ignored TERM for ${STOP_TIMEOUT}s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDS/kafka.pid"
  log "stopped: kafka in $(($(now) - t0))s"
}

# Deletes every topic but Kafka's internal ones, and heals the Kafka proxies.
kafka_reset() {
  local pid
  if ! pid="$(kafka_pid)"; then log "reset: kafka is not running, skipped"; return 0; fi
  [[ "$(kafka_proc_state "$pid")" == T ]] && kill -CONT "$pid" && log "resumed paused kafka (pid $pid)"
  kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$KAFKA_DIRECT_PORT" \
    --delete --if-exists --topic '[^_].*' >"$LOGS/kafka-reset.log" 2>&1 ||
    { tail -n 20 "$LOGS/kafka-reset.log" >&2; die "deleting Kafka's topics failed (log: $LOGS/kafka-reset.log)"; }
  log "reset: kafka"
}

kafka_status() {
  local pid state rss
  if pid="$(kafka_pid)"; then
    rss="$(rss_mb "$pid")"
    if [[ "$(kafka_proc_state "$pid")" == T ]]; then state=paused
    elif kafka_healthy; then state=healthy
    else state=unhealthy; fi
  else
    pid=- state=down rss=-
  fi
  printf '%-10s %8s %6s  %-8s %7s\n' kafka "$pid" "$KAFKA_DIRECT_PORT" "$state" "$rss"
}

# What scripts/stack's main runs for a mutating command: `down`/`reset --only
# kafka` act on Kafka alone; anything else goes on to the cluster's dispatcher
# (which runs the stack's own command), then Kafka's part: plain `down`/`reset`
# when the broker runs, `up`/`install` when `--only` named it (parse_only sets KAFKA).
kafka_dispatch() {
  local cmd="$1"; shift
  KAFKA=0
  if [[ "$cmd" == down || "$cmd" == reset ]] && [[ "${1:-}" == --only && "${2:-}" == kafka ]]; then
    [[ -z "${3:-}" ]] || die "'$cmd --only kafka' takes no further arguments"
    "kafka_$cmd"
    return
  fi
  cluster_dispatch "$cmd" "$@"
  case "$cmd" in
    down | reset) if kafka_pid >/dev/null; then "kafka_$cmd"; fi ;;
    up)
      if ((KAFKA)); then kafka_up; fi ;;
    install)
      if ((KAFKA)); then
        log "installing Kafka $KAFKA_VERSION jars"
        kafka_install >"$LOGS/install-kafka.log" 2>&1 ||
          { tail -n 30 "$LOGS/install-kafka.log" >&2; die "installing Kafka failed (log: $LOGS/install-kafka.log)"; }
        log "installed: kafka"
      fi ;;
  esac
}
