# shellcheck shell=bash
# The local three-node Cassandra cluster, sourced by scripts/stack.
#
#   scripts/stack install --only cassandra-cluster   apt packages, the delayer, the jars
#   scripts/stack up --only cassandra-cluster        network, three nodes, nine proxies
#   scripts/stack down --only cassandra-cluster      stop the nodes, remove the network
#   scripts/stack reset --only cassandra-cluster     heal every fault, drop user keyspaces
#   scripts/stack status                             one line per node too
# Plain `down` and `reset` act on the cluster as well when it exists; plain `up`
# never starts it (three JVMs, about 2 GB).
#
# Why namespaces: a fault between two nodes must match their traffic, and nodes on
# loopback aliases talk from 127.0.0.1 (no rule on a node's own address matches).
# So each node runs in its own network namespace (dwc1..dwc3) with its own address
# (10.77.0.11-13) on a bridge (dwbr0, 10.77.0.1) that only this file creates and
# removes. The root namespace reaches every node over the bridge: Toxiproxy's
# cluster proxies and the health checks. No traffic leaves the machine (no route,
# no forwarding: the bridge's subnet exists nowhere else).
#
# Faults between nodes are applied by src/fault/cluster.rs inside the namespaces:
# nft rules in one table `inet dualwrite` per namespace, and for delays an iptables
# NFQUEUE rule (table `ip filter` of the namespace) plus scripts/lib/nfq-delay.c.
# The state file $STATE/cassandra-cluster.state tells that code where everything is.
#
# Reuses from scripts/stack: log/warn/die/now, launch, rss_mb, install_cassandra,
# check_toolchains, STOP_TIMEOUT, the paths, Toxiproxy's address.

CLUSTER_NODES=(c1 c2 c3)
CLUSTER_BRIDGE=dwbr0
CLUSTER_NET=10.77.0
CLUSTER_HOST_ADDR="$CLUSTER_NET.1"
CLUSTER_CQL_PORT=9042
CLUSTER_STORAGE_PORT=7000
CLUSTER_HEAP=256m
CLUSTER_DC=dc1
CLUSTER_RACK=rack1
# Toxiproxy: one proxy per (side, node), so a node-pinned client works through them.
# side base-port: the proxy of node N listens on base+N.
CLUSTER_PROXY_SIDES=("primary 29100" "secondary 29110" "relay 29120")
CLUSTER_CQL_TIMEOUT=180 # seconds for one node to answer CQL after its start
CLUSTER_UN_TIMEOUT=120  # seconds for every node to see three nodes Up/Normal
CLUSTER_APT_PACKAGES=(nftables iptables libnetfilter-queue-dev gcc)
CLUSTER_STATE_FILE="$STATE/cassandra-cluster.state"
DELAYER_SRC="$LIB/nfq-delay.c"

cluster_idx() { echo "${1#c}"; }
cluster_ns() { echo "dwc$(cluster_idx "$1")"; }
cluster_addr() { echo "$CLUSTER_NET.1$(cluster_idx "$1")"; }
cluster_jmx() { echo $((7200 + $(cluster_idx "$1"))); }
cluster_veth() { echo "dwv$(cluster_idx "$1")"; }
cluster_conf() { echo "$CONF/cassandra-$1"; }
cluster_data() { echo "$DATA/cassandra-cluster/$1"; }
# The delayer's binary: one folder per source version (a changed source rebuilds).
delayer_bin() { echo "$CACHE/nfq-delay-$(sha256sum "$DELAYER_SRC" | cut -c1-12)/nfq-delay"; }

# Prints the pid of node N's JVM if it runs (the marker proves the pid is ours).
cluster_pid() {
  local f="$PIDS/cassandra-$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-Ddualwrite.node=$1 " || return 1
  echo "$pid"
}

# "T" for a stopped (SIGSTOP) process.
proc_state() { awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

cluster_exists() { [[ -f "$CLUSTER_STATE_FILE" ]] || ip link show "$CLUSTER_BRIDGE" >/dev/null 2>&1; }

cluster_need_root() {
  [[ "$(id -u)" == 0 ]] || die "the Cassandra cluster needs root (network namespaces, nft); run as root"
  command -v nft >/dev/null && command -v iptables >/dev/null ||
    die "nft/iptables missing: scripts/stack install --only cassandra-cluster"
}

# ----------------------------------------------------------------- install --
cluster_install() {
  [[ "$(id -u)" == 0 ]] || die "installing the cluster's packages needs root (apt-get)"
  local -a missing=()
  local p
  for p in "${CLUSTER_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "apt packages for the cluster: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$LOGS/install-cluster-apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$LOGS/install-cluster-apt.log" 2>&1 ||
      { tail -n 20 "$LOGS/install-cluster-apt.log" >&2; die "apt-get install ${missing[*]} failed (log: $LOGS/install-cluster-apt.log)"; }
  fi
  check_toolchains cassandra
  [[ -f "$CASSANDRA_HOME/.stamp" ]] || { log "installing the Cassandra $CASSANDRA_VERSION jars"; install_cassandra >"$LOGS/install-cassandra.log" 2>&1 || die "installing Cassandra failed (log: $LOGS/install-cassandra.log)"; }
  local bin
  bin="$(delayer_bin)"
  if [[ ! -x "$bin" ]]; then
    mkdir -p "$(dirname "$bin")"
    gcc -O2 -Wall -o "$bin.tmp" "$DELAYER_SRC" -lnetfilter_queue -lnfnetlink ||
      die "building the NFQUEUE delayer ($DELAYER_SRC) failed"
    mv "$bin.tmp" "$bin"
    log "built: $bin"
  fi
  log "installed: cassandra-cluster (nft, iptables, delayer, Cassandra $CASSANDRA_VERSION jars)"
}

# ----------------------------------------------------------------- network --
cluster_net_up() {
  if ! ip link show "$CLUSTER_BRIDGE" >/dev/null 2>&1; then
    # Never shadow a network this machine already has.
    local used
    used="$(ip -4 -o addr show | awk -v net="$CLUSTER_NET." 'index($4, net) == 1 { print $2 }')"
    [[ -z "$used" ]] || die "$CLUSTER_NET.0/24 is already on interface(s) $used; the cluster's bridge needs it"
    ip link add "$CLUSTER_BRIDGE" type bridge
    sysctl -qw "net.ipv6.conf.$CLUSTER_BRIDGE.disable_ipv6=1" 2>/dev/null || true
    ip addr add "$CLUSTER_HOST_ADDR/24" dev "$CLUSTER_BRIDGE"
    ip link set "$CLUSTER_BRIDGE" up
  fi
  local n ns veth
  for n in "${CLUSTER_NODES[@]}"; do
    ns="$(cluster_ns "$n")" veth="$(cluster_veth "$n")"
    if [[ -e "/run/netns/$ns" ]] && ip link show "$veth" >/dev/null 2>&1; then continue; fi
    # Half made (an interrupted up): make it again.
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$veth" 2>/dev/null || true
    ip netns add "$ns"
    ip link add "$veth" type veth peer name "${veth}p"
    ip link set "${veth}p" netns "$ns"
    ip link set "$veth" master "$CLUSTER_BRIDGE"
    sysctl -qw "net.ipv6.conf.$veth.disable_ipv6=1" 2>/dev/null || true
    ip link set "$veth" up
    ip netns exec "$ns" sh -ec "
      sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
      ip link set ${veth}p name eth0
      ip addr add $(cluster_addr "$n")/24 dev eth0
      ip link set eth0 up
      ip link set lo up"
  done
}

cluster_net_down() {
  local n
  for n in "${CLUSTER_NODES[@]}"; do
    # Deleting a namespace deletes its nft/iptables rules and its end of the veth.
    ip netns del "$(cluster_ns "$n")" 2>/dev/null || true
    ip link del "$(cluster_veth "$n")" 2>/dev/null || true
  done
  ip link del "$CLUSTER_BRIDGE" 2>/dev/null || true
}

# ------------------------------------------------------------------- nodes --
cluster_seeds() {
  local n out=""
  for n in "${CLUSTER_NODES[@]}"; do out+="${out:+,}$(cluster_addr "$n"):$CLUSTER_STORAGE_PORT"; done
  echo "$out"
}

cluster_render_conf() {
  local n="$1" conf data
  conf="$(cluster_conf "$n")" data="$(cluster_data "$n")"
  mkdir -p "$conf" "$data/triggers"
  sed -e "s#@DATA@#$data#g" -e "s/@ADDR@/$(cluster_addr "$n")/g" -e "s/@SEEDS@/$(cluster_seeds)/g" \
    "$LIB/cassandra-cluster.yaml.template" >"$conf/cassandra.yaml"
  printf 'dc=%s\nrack=%s\n' "$CLUSTER_DC" "$CLUSTER_RACK" >"$conf/cassandra-rackdc.properties"
  cp "$LIB/cassandra-logback.xml" "$conf/logback.xml"
}

# The server's module flags: nodetool (a JMX client) needs them as well.
cluster_jvm17() { grep -v -e '^#' -e '^[[:space:]]*$' "$LIB/cassandra-jvm17.options"; }

cluster_start_node() {
  local n="$1" lib="$CASSANDRA_HOME/lib" conf data jamm
  conf="$(cluster_conf "$n")" data="$(cluster_data "$n")"
  cluster_render_conf "$n"
  jamm="$(ls "$lib"/jamm-*.jar | head -1)"
  local -a jvm17
  mapfile -t jvm17 < <(cluster_jvm17)
  # `ip netns exec` execs the command in the namespace (no fork), so the recorded
  # pid is the JVM's own: process faults signal it.
  # No -Dcassandra.unsafesystem here (the single node has it): with it the schema
  # tables are not flushed after a change, so a node killed (node-kill) after a
  # run created its tables restarts without them, skips their commit log on
  # replay ("Skipped N mutations from unknown CF") and loses every row it held.
  # Flushing them after each change has its own hazard: a node killed mid-flush
  # (right after a keyspace is dropped) can find a table without its columns and
  # refuse to start ("No partition columns found"); ignore_corrupted_schema_tables
  # skips such a table, and the node gets the schema back from the others.
  launch "cassandra-$n" ip netns exec "$(cluster_ns "$n")" java \
    -Ddualwrite.node="$n" \
    -Xms"$CLUSTER_HEAP" -Xmx"$CLUSTER_HEAP" -Xss256k \
    -XX:+UseG1GC -XX:ParallelGCThreads=1 -XX:ConcGCThreads=1 -XX:TieredStopAtLevel=1 \
    -XX:+ExitOnOutOfMemoryError \
    "${jvm17[@]}" \
    -javaagent:"$jamm" \
    -Djava.net.preferIPv4Stack=true \
    -Dcassandra.config="file://$conf/cassandra.yaml" \
    -Dcassandra-rackdc.properties="file://$conf/cassandra-rackdc.properties" \
    -Dlogback.configurationFile="file://$conf/logback.xml" \
    -Dcassandra.jmx.local.port="$(cluster_jmx "$n")" \
    -Dcassandra.logdir="$LOGS" -Dcassandra.storagedir="$data" -Dcassandra.triggers_dir="$data/triggers" \
    -Dcassandra-foreground=yes \
    -Dcassandra.ignore_corrupted_schema_tables=true \
    -Dcassandra.ring_delay_ms=5000 -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.superuser_setup_delay_ms=0 -Dcassandra.load_ring_state=false \
    -cp "$conf:$lib/*" org.apache.cassandra.service.CassandraDaemon
}

cluster_cql_ok() {
  local out
  out="$(python3 "$LIB/cql_tool.py" "$(cluster_addr "$1"):$CLUSTER_CQL_PORT" "SELECT release_version FROM system.local" 2>/dev/null)" &&
    [[ -n "$out" ]]
}

# nodetool inside node N's namespace (its JMX port listens on that namespace's loopback).
cluster_nodetool() {
  local n="$1"; shift
  local -a jvm17
  mapfile -t jvm17 < <(cluster_jvm17)
  ip netns exec "$(cluster_ns "$n")" java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    "${jvm17[@]}" -cp "$CASSANDRA_HOME/lib/*" \
    -Dlogback.configurationFile="file://$(cluster_conf "$n")/logback.xml" \
    org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$(cluster_jmx "$n")" "$@" 2>&1
}

# Number of Up/Normal nodes in node N's view.
cluster_un_count() { cluster_nodetool "$1" status | grep -c '^UN ' || true; }

cluster_wait_cql() {
  local n="$1" t0="$2" pid
  while ! cluster_cql_ok "$n"; do
    if ! pid="$(cluster_pid "$n")"; then
      echo "[stack] ERROR: cassandra-$n exited during start-up" >&2
      log_tail "cassandra-$n"
      return 1
    fi
    if (($(now) - t0 >= CLUSTER_CQL_TIMEOUT)); then
      echo "[stack] ERROR: cassandra-$n (pid $pid) does not answer CQL on $(cluster_addr "$n"):$CLUSTER_CQL_PORT after ${CLUSTER_CQL_TIMEOUT}s" >&2
      log_tail "cassandra-$n"
      return 1
    fi
    sleep 1
  done
}

# Whether a fault of src/fault/cluster.rs is in force (then nodes may rightly be down).
cluster_faults_in_force() {
  local n pid
  for n in "${CLUSTER_NODES[@]}"; do
    [[ -n "$(ip netns exec "$(cluster_ns "$n")" nft list tables 2>/dev/null)" ]] && return 0
    if pid="$(cluster_pid "$n")" && [[ "$(proc_state "$pid")" == T ]]; then return 0; fi
  done
  return 1
}

# ------------------------------------------------------------------ proxies --
cluster_proxies_json() {
  local entry side base n sep=""
  printf '['
  for entry in "${CLUSTER_PROXY_SIDES[@]}"; do
    read -r side base <<<"$entry"
    for n in "${CLUSTER_NODES[@]}"; do
      printf '%s{"name":"cassandra_cluster_%s_n%s","listen":"%s:%s","upstream":"%s:%s","enabled":true}' \
        "$sep" "$side" "$(cluster_idx "$n")" "$HOST" $((base + $(cluster_idx "$n"))) "$(cluster_addr "$n")" "$CLUSTER_CQL_PORT"
      sep=","
    done
  done
  printf ']'
}

cluster_proxy_names() {
  local entry side n
  for entry in "${CLUSTER_PROXY_SIDES[@]}"; do
    side="${entry%% *}"
    for n in "${CLUSTER_NODES[@]}"; do echo "cassandra_cluster_${side}_n$(cluster_idx "$n")"; done
  done
}

cluster_create_proxies() {
  local code
  code="$(curl -sS -o "$STATE/.populate-cluster.out" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data "$(cluster_proxies_json)" \
    "http://$HOST:$TOXIPROXY_PORT/populate")" || code=000
  if [[ "$code" != 201 && "$code" != 200 ]]; then
    cat "$STATE/.populate-cluster.out" >&2 2>/dev/null || true
    die "creating the cluster's Toxiproxy proxies failed (HTTP $code); a port 29101-29123 may be taken"
  fi
  rm -f "$STATE/.populate-cluster.out"
  log "proxies: 9 cluster proxies present (127.0.0.1:29101-29123, see scripts/PORTS.md)"
}

cluster_delete_proxies() {
  health_toxiproxy || return 0
  local p
  for p in $(cluster_proxy_names); do
    curl -sS -o /dev/null --max-time 3 -X DELETE "http://$HOST:$TOXIPROXY_PORT/proxies/$p" || true
  done
}

# Removes toxics from the cluster's proxies and enables them.
cluster_reset_proxies() {
  health_toxiproxy || return 0
  local p t
  for p in $(cluster_proxy_names); do
    for t in $(curl -fsS --max-time 3 "http://$HOST:$TOXIPROXY_PORT/proxies/$p/toxics" 2>/dev/null |
      python3 -c 'import json, sys; [print(t["name"]) for t in json.load(sys.stdin)]' 2>/dev/null); do
      curl -sS -o /dev/null --max-time 3 -X DELETE "http://$HOST:$TOXIPROXY_PORT/proxies/$p/toxics/$t" || true
    done
    curl -sS -o /dev/null --max-time 3 -X POST -d '{"enabled":true}' "http://$HOST:$TOXIPROXY_PORT/proxies/$p" || true
  done
}

# -------------------------------------------------------------- state file --
# Read by src/fault/cluster.rs (ClusterState::parse): keep the keys in step.
cluster_write_state() {
  local n entry side base tmp="$CLUSTER_STATE_FILE.tmp" delayer=""
  [[ -x "$(delayer_bin)" ]] && delayer="$(delayer_bin)"
  {
    echo "# Written by scripts/stack up --only cassandra-cluster; removed by down."
    echo "# Read by src/fault/cluster.rs. One key=value per line; node/proxy lines hold several."
    echo "version=1"
    echo "stack_script=$REPO/scripts/stack"
    echo "state_dir=$STATE"
    echo "cache_dir=$CACHE"
    echo "delayer=$delayer"
    echo "bridge=$CLUSTER_BRIDGE"
    echo "host_addr=$CLUSTER_HOST_ADDR"
    echo "datacenter=$CLUSTER_DC"
    for n in "${CLUSTER_NODES[@]}"; do
      echo "node=$n netns=$(cluster_ns "$n") addr=$(cluster_addr "$n") cql_port=$CLUSTER_CQL_PORT storage_port=$CLUSTER_STORAGE_PORT jmx_port=$(cluster_jmx "$n") pid_file=$PIDS/cassandra-$n.pid"
    done
    for entry in "${CLUSTER_PROXY_SIDES[@]}"; do
      read -r side base <<<"$entry"
      for n in "${CLUSTER_NODES[@]}"; do
        echo "proxy=cassandra_cluster_${side}_n$(cluster_idx "$n") side=$side node=$n listen=$HOST:$((base + $(cluster_idx "$n")))"
      done
    done
  } >"$tmp"
  mv "$tmp" "$CLUSTER_STATE_FILE"
}

# ---------------------------------------------------------------- commands --
cluster_up() {
  cluster_need_root
  local t0 n pid t_node
  t0="$(now)"
  [[ -f "$CASSANDRA_HOME/.stamp" && -x "$(delayer_bin)" ]] || cluster_install
  check_toolchains cassandra
  cluster_net_up
  cluster_write_state
  local started=0
  for n in "${CLUSTER_NODES[@]}"; do
    if pid="$(cluster_pid "$n")"; then
      if [[ "$(proc_state "$pid")" == T ]]; then
        log "running: cassandra-$n (pid $pid) is paused (SIGSTOP), left paused"
        continue
      fi
      # A node that runs but does not answer may be still starting: wait for it.
      cluster_wait_cql "$n" "$(now)" || die "cassandra-$n (pid $pid) runs but does not answer CQL"
      log "running: cassandra-$n (pid $pid)"
      continue
    fi
    # One after another: nodes joining at once on 2 cores slow each other down,
    # and a node starting alone finds a settled ring.
    rm -f "$PIDS/cassandra-$n.pid"
    t_node="$(now)"
    cluster_start_node "$n"
    log "started: cassandra-$n (pid $(<"$PIDS/cassandra-$n.pid"), $(cluster_addr "$n") in netns $(cluster_ns "$n"), log $LOGS/cassandra-$n.log)"
    cluster_wait_cql "$n" "$t_node" || die "cassandra-$n did not start (the other nodes are left running; scripts/stack down --only cassandra-cluster stops them)"
    log "healthy: cassandra-$n answers CQL on $(cluster_addr "$n"):$CLUSTER_CQL_PORT after $(($(now) - t_node))s"
    started=1
  done
  ((started)) && log "all three nodes answer CQL after $(($(now) - t0))s"
  if cluster_faults_in_force; then
    log "faults are in force (nft rules or a paused node): not waiting for 3 UN"
  else
    # Each node's own view: a client may use any of them as coordinator.
    local deadline=$(($(now) + CLUSTER_UN_TIMEOUT)) un
    for n in "${CLUSTER_NODES[@]}"; do
      while un="$(cluster_un_count "$n")"; ((un != ${#CLUSTER_NODES[@]})); do
        if (($(now) >= deadline)); then
          cluster_nodetool "$n" status >&2 || true
          die "cassandra-$n sees $un of ${#CLUSTER_NODES[@]} nodes Up/Normal after ${CLUSTER_UN_TIMEOUT}s"
        fi
        sleep 2
      done
    done
    log "nodetool status: 3 UN in every node's view ($(($(now) - t0))s since up began)"
  fi
  cluster_create_proxies
  log "up: cassandra-cluster in $(($(now) - t0))s"
}

# Stops the delayers and resumes paused nodes (a stopped JVM cannot handle TERM).
cluster_heal_processes() {
  local f pid n
  for f in "$PIDS"/nfq-delay-*.pid; do
    [[ -f "$f" ]] || continue
    pid="$(<"$f")"
    if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q nfq-delay; then
      kill -TERM "$pid" 2>/dev/null || true
      log "stopped delayer (pid $pid)"
    fi
    rm -f "$f"
  done
  for n in "${CLUSTER_NODES[@]}"; do
    if pid="$(cluster_pid "$n")" && [[ "$(proc_state "$pid")" == T ]]; then
      kill -CONT "$pid" && log "resumed paused cassandra-$n (pid $pid)"
    fi
  done
}

cluster_down() {
  local n pid t0
  t0="$(now)"
  if ! cluster_exists && ! ls "$PIDS"/cassandra-c*.pid >/dev/null 2>&1; then
    log "cassandra-cluster: nothing to stop"
    return 0
  fi
  [[ "$(id -u)" == 0 ]] || die "stopping the cluster needs root (network namespaces)"
  cluster_heal_processes
  local -a stopping=()
  for n in "${CLUSTER_NODES[@]}"; do
    if pid="$(cluster_pid "$n")"; then
      kill -TERM "$pid" 2>/dev/null || true
      stopping+=("$n:$pid")
      log "stopping: cassandra-$n (pid $pid)"
    fi
  done
  local deadline=$(($(now) + STOP_TIMEOUT)) entry
  for entry in "${stopping[@]}"; do
    n="${entry%%:*}" pid="${entry#*:}"
    while kill -0 "$pid" 2>/dev/null && (($(now) < deadline)); do sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      warn "cassandra-$n (pid $pid) ignored TERM for ${STOP_TIMEOUT}s, sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$PIDS"/cassandra-c*.pid
  cluster_delete_proxies
  cluster_net_down
  rm -f "$CLUSTER_STATE_FILE"
  log "stopped: cassandra-cluster (nodes, proxies, namespaces, bridge) in $(($(now) - t0))s"
}

# Heals every fault (the shell twin of src/fault/cluster.rs's reset), restarts a
# killed node, and drops the user keyspaces.
cluster_reset() {
  cluster_exists || { log "reset: cassandra-cluster is not up, skipped"; return 0; }
  cluster_need_root
  local n ns
  for n in "${CLUSTER_NODES[@]}"; do
    ns="$(cluster_ns "$n")"
    ip netns exec "$ns" nft delete table inet dualwrite 2>/dev/null && log "removed nft table inet dualwrite in $ns"
    ip netns exec "$ns" nft delete table ip filter 2>/dev/null && log "removed the delay rules (ip filter) in $ns"
  done
  cluster_heal_processes
  cluster_up
  cluster_reset_proxies
  python3 "$LIB/cql_tool.py" "$(cluster_addr c1):$CLUSTER_CQL_PORT" --drop-user-keyspaces ||
    die "dropping the cluster's keyspaces failed"
  log "reset: cassandra-cluster"
}

cluster_status() {
  cluster_exists || { echo; echo "cassandra-cluster: not up (scripts/stack up --only cassandra-cluster)"; return 0; }
  echo
  printf '%-12s %-6s %-11s %8s  %-9s %7s  %s\n' NODE NETNS ADDR PID HEALTH RSS_MB FAULT_TABLES
  local n pid state rss tables
  for n in "${CLUSTER_NODES[@]}"; do
    if pid="$(cluster_pid "$n")"; then
      rss="$(rss_mb "$pid")"
      if [[ "$(proc_state "$pid")" == T ]]; then state=paused
      elif cluster_cql_ok "$n"; then state=healthy
      else state=unhealthy; fi
    else
      pid=- state=down rss=-
    fi
    tables="$(ip netns exec "$(cluster_ns "$n")" nft list tables 2>/dev/null | awk '{ printf "%s%s %s", sep, $2, $3; sep="," }')"
    printf '%-12s %-6s %-11s %8s  %-9s %7s  %s\n' "cassandra-$n" "$(cluster_ns "$n")" "$(cluster_addr "$n")" \
      "$pid" "$state" "$rss" "${tables:--}"
  done
}

# What scripts/stack's main runs for a mutating command: the stack's own command,
# and the cluster's part. `down`/`reset --only cassandra-cluster` leave the other
# servers alone.
cluster_dispatch() {
  local cmd="$1"; shift
  CLUSTER=0
  case "$cmd" in
    down | reset)
      if [[ "${1:-}" == --only ]]; then
        [[ "${2:-}" == cassandra-cluster && -z "${3:-}" ]] ||
          die "'$cmd --only' takes only cassandra-cluster (plain '$cmd' acts on the whole stack)"
        "cluster_$cmd"
        return
      fi
      [[ -z "${1:-}" ]] || die "unknown argument '$1' (usage: scripts/stack $cmd [--only cassandra-cluster])"
      if cluster_exists; then "cluster_$cmd"; fi
      "cmd_$cmd"
      ;;
    up | install)
      "cmd_$cmd" "$@"
      if ((CLUSTER)); then "cluster_$cmd"; fi
      ;;
  esac
}
