//! The cluster's state file, `$DUALWRITE_STATE/cassandra-cluster.state`: written by
//! `scripts/stack up --only cassandra-cluster`, removed by `down`. It is the one
//! place that says where the nodes are (namespace, address, pid file), which
//! Toxiproxy proxy fronts which node, and how to restart a node, so no address or
//! port is written twice.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The file name inside the stack's state directory.
pub const STATE_FILE: &str = "cassandra-cluster.state";

/// A node of the cluster, 1-based (`c1`, `c2`, `c3` in the stack; `n1`… in proxy names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(u8);

impl NodeId {
    pub fn new(n: u8) -> Option<Self> {
        (n >= 1).then_some(Self(n))
    }

    pub fn index(self) -> u8 {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl serde::Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for NodeId {
    type Err = String;

    /// `c3`, `n3` or `3`.
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix(['c', 'n']).unwrap_or(s);
        digits
            .parse::<u8>()
            .ok()
            .and_then(NodeId::new)
            .ok_or_else(|| format!("`{s}` is not a cluster node (use c1, c2, c3)"))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Its network namespace (`dwc3`): faults run their commands there.
    pub netns: String,
    pub addr: Ipv4Addr,
    pub cql_port: u16,
    pub storage_port: u16,
    pub jmx_port: u16,
    pub pid_file: PathBuf,
}

impl NodeInfo {
    /// The node's CQL address as the cluster advertises it (system.peers).
    pub fn cql_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr.into(), self.cql_port)
    }
}

/// A Toxiproxy proxy in front of one node for one side.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterProxy {
    pub name: String,
    pub side: String,
    pub node: NodeId,
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterState {
    pub stack_script: PathBuf,
    pub state_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// The NFQUEUE delayer's binary; `None` when it was not built.
    pub delayer: Option<PathBuf>,
    pub host_addr: Ipv4Addr,
    pub datacenter: String,
    pub nodes: Vec<NodeInfo>,
    pub proxies: Vec<ClusterProxy>,
}

impl ClusterState {
    /// Reads the state file of `state_dir`; `Ok(None)` when the cluster is not up.
    pub fn load(state_dir: &Path) -> anyhow::Result<Option<Self>> {
        let file = state_dir.join(STATE_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) => Self::parse(&text)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => anyhow::bail!("cannot read {}: {e}", file.display()),
        }
    }

    /// Like [`load`](Self::load), but a missing file is an error telling how to start it.
    pub fn require(state_dir: &Path) -> anyhow::Result<Self> {
        Self::load(state_dir)?.ok_or_else(|| {
            anyhow::anyhow!(
                "the Cassandra cluster is not up (no {}); start it: scripts/stack up --only cassandra-cluster",
                state_dir.join(STATE_FILE).display()
            )
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut version = None;
        let (mut script, mut state, mut cache, mut delayer) = (None, None, None, None);
        let (mut host, mut dc) = (None, None);
        let mut nodes = Vec::new();
        let mut proxies = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |e: String| format!("line {}: {e}", i + 1);
            let fields = fields(line).map_err(at)?;
            let (key, value) = fields[0];
            match key {
                "node" => nodes.push(node(&fields).map_err(at)?),
                "proxy" => proxies.push(proxy(&fields).map_err(at)?),
                _ if fields.len() > 1 => return Err(at(format!("`{key}` takes one value"))),
                "version" => version = Some(value.to_string()),
                "stack_script" => script = Some(PathBuf::from(value)),
                "state_dir" => state = Some(PathBuf::from(value)),
                "cache_dir" => cache = Some(PathBuf::from(value)),
                "delayer" => delayer = Some((!value.is_empty()).then(|| PathBuf::from(value))),
                "host_addr" => host = Some(parse(value, "host_addr").map_err(at)?),
                "datacenter" => dc = Some(value.to_string()),
                // Written for people reading the file; not needed here.
                "bridge" => {}
                other => return Err(at(format!("unknown key `{other}`"))),
            }
        }
        match version.as_deref() {
            Some("1") => {}
            Some(v) => {
                return Err(format!(
                    "version {v} is not understood (this dualwrite reads version 1): restart the cluster with this checkout's scripts/stack"
                ));
            }
            None => return Err("no `version`".into()),
        }
        if nodes.is_empty() {
            return Err("no `node` line".into());
        }
        nodes.sort_by_key(|n| n.id);
        for w in nodes.windows(2) {
            if w[0].id == w[1].id {
                return Err(format!("node {} is listed twice", w[0].id));
            }
        }
        if let Some(p) = proxies
            .iter()
            .find(|p| !nodes.iter().any(|n| n.id == p.node))
        {
            return Err(format!("proxy {} names unknown node {}", p.name, p.node));
        }
        let need = |v: Option<PathBuf>, k: &str| v.ok_or_else(|| format!("no `{k}`"));
        Ok(Self {
            stack_script: need(script, "stack_script")?,
            state_dir: need(state, "state_dir")?,
            cache_dir: need(cache, "cache_dir")?,
            delayer: delayer.flatten(),
            host_addr: host.ok_or("no `host_addr`")?,
            datacenter: dc.ok_or("no `datacenter`")?,
            nodes,
            proxies,
        })
    }

    pub fn node(&self, id: NodeId) -> anyhow::Result<&NodeInfo> {
        self.nodes.iter().find(|n| n.id == id).ok_or_else(|| {
            anyhow::anyhow!(
                "node {id} is not in the cluster (it has {})",
                self.node_ids()
                    .iter()
                    .map(NodeId::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The proxy in front of `node` for `side` (`primary`, `secondary`, `relay`).
    pub fn proxy(&self, side: &str, node: NodeId) -> Option<&ClusterProxy> {
        self.proxies
            .iter()
            .find(|p| p.side == side && p.node == node)
    }

    /// The node whose CQL address a driver learned (system.peers), for an address
    /// translator that maps each node to its own proxy.
    pub fn node_at(&self, addr: SocketAddr) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.cql_addr() == addr)
    }
}

/// `a=1 b=2` → [("a","1"), ("b","2")]; values hold no spaces (paths of the stack).
fn fields(line: &str) -> Result<Vec<(&str, &str)>, String> {
    line.split_whitespace()
        .map(|f| {
            f.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("`{f}` is not key=value"))
        })
        .collect()
}

fn get<'a>(fields: &[(&str, &'a str)], key: &str) -> Result<&'a str, String> {
    fields
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("`{}` line without `{key}`", fields[0].0))
}

fn parse<T: FromStr>(value: &str, key: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("`{key}={value}` is not valid"))
}

fn node(f: &[(&str, &str)]) -> Result<NodeInfo, String> {
    Ok(NodeInfo {
        id: get(f, "node")?.parse()?,
        netns: get(f, "netns")?.to_string(),
        addr: parse(get(f, "addr")?, "addr")?,
        cql_port: parse(get(f, "cql_port")?, "cql_port")?,
        storage_port: parse(get(f, "storage_port")?, "storage_port")?,
        jmx_port: parse(get(f, "jmx_port")?, "jmx_port")?,
        pid_file: PathBuf::from(get(f, "pid_file")?),
    })
}

fn proxy(f: &[(&str, &str)]) -> Result<ClusterProxy, String> {
    Ok(ClusterProxy {
        name: get(f, "proxy")?.to_string(),
        side: get(f, "side")?.to_string(),
        node: get(f, "node")?.parse()?,
        listen: parse(get(f, "listen")?, "listen")?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What `scripts/stack up --only cassandra-cluster` writes (trimmed to two proxies).
    pub(crate) const SAMPLE: &str = "\
# Written by scripts/stack up --only cassandra-cluster; removed by down.
version=1
stack_script=/repo/scripts/stack
state_dir=/repo/.stack
cache_dir=/repo/.cache
delayer=/repo/.cache/nfq-delay-ab/nfq-delay
bridge=dwbr0
host_addr=10.77.0.1
datacenter=dc1
node=c1 netns=dwc1 addr=10.77.0.11 cql_port=9042 storage_port=7000 jmx_port=7201 pid_file=/repo/.stack/pids/cassandra-c1.pid
node=c2 netns=dwc2 addr=10.77.0.12 cql_port=9042 storage_port=7000 jmx_port=7202 pid_file=/repo/.stack/pids/cassandra-c2.pid
node=c3 netns=dwc3 addr=10.77.0.13 cql_port=9042 storage_port=7000 jmx_port=7203 pid_file=/repo/.stack/pids/cassandra-c3.pid
proxy=cassandra_cluster_primary_n1 side=primary node=c1 listen=127.0.0.1:29101
proxy=cassandra_cluster_secondary_n3 side=secondary node=c3 listen=127.0.0.1:29113
";

    pub(crate) fn sample() -> ClusterState {
        ClusterState::parse(SAMPLE).unwrap()
    }

    #[test]
    fn parses_what_the_stack_writes() {
        let s = sample();
        assert_eq!(s.nodes.len(), 3);
        let c3 = s.node("c3".parse().unwrap()).unwrap();
        assert_eq!(c3.netns, "dwc3");
        assert_eq!(c3.addr, Ipv4Addr::new(10, 77, 0, 13));
        assert_eq!(c3.cql_addr().to_string(), "10.77.0.13:9042");
        assert_eq!(c3.jmx_port, 7203);
        assert_eq!(
            c3.pid_file,
            PathBuf::from("/repo/.stack/pids/cassandra-c3.pid")
        );
        assert_eq!(s.host_addr, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(s.datacenter, "dc1");
        assert_eq!(
            s.delayer,
            Some(PathBuf::from("/repo/.cache/nfq-delay-ab/nfq-delay"))
        );
        let p = s.proxy("secondary", NodeId(3)).unwrap();
        assert_eq!(p.name, "cassandra_cluster_secondary_n3");
        assert_eq!(p.listen.to_string(), "127.0.0.1:29113");
        assert!(s.proxy("relay", NodeId(3)).is_none());
        assert_eq!(
            s.node_at("10.77.0.12:9042".parse().unwrap()).unwrap().id,
            NodeId(2)
        );
    }

    #[test]
    fn an_empty_delayer_means_none() {
        let text = SAMPLE.replace("delayer=/repo/.cache/nfq-delay-ab/nfq-delay", "delayer=");
        assert_eq!(ClusterState::parse(&text).unwrap().delayer, None);
    }

    #[test]
    fn bad_files_name_the_line_and_the_problem() {
        let err = |text: &str| ClusterState::parse(text).unwrap_err();
        assert!(err("").contains("no `version`"));
        assert!(err(&SAMPLE.replace("version=1", "version=9")).contains("version 9"));
        assert!(err(&SAMPLE.replace("addr=10.77.0.13", "addr=10.77.0.300")).contains("line 12"));
        assert!(err(&SAMPLE.replace("node=c2 ", "node=c1 ")).contains("listed twice"));
        assert!(err(&SAMPLE.replace("node=c3 listen", "node=c9 listen")).contains("unknown node"));
        assert!(err(&SAMPLE.replace("bridge=dwbr0", "bridge")).contains("not key=value"));
        assert!(err(&SAMPLE.replace("bridge=dwbr0", "colour=red")).contains("unknown key"));
        assert!(err(&SAMPLE.replace(" jmx_port=7201", "")).contains("without `jmx_port`"));
        assert!(
            err(&SAMPLE.replace("datacenter=dc1\n", "")).contains("no `datacenter`"),
            "{}",
            err(&SAMPLE.replace("datacenter=dc1\n", ""))
        );
    }

    #[test]
    fn node_names() {
        assert_eq!("c2".parse::<NodeId>().unwrap(), NodeId(2));
        assert_eq!("n2".parse::<NodeId>().unwrap(), NodeId(2));
        assert_eq!("2".parse::<NodeId>().unwrap(), NodeId(2));
        assert_eq!(NodeId(2).to_string(), "c2");
        assert!("c0".parse::<NodeId>().is_err());
        assert!("x2".parse::<NodeId>().unwrap_err().contains("c1, c2, c3"));
        let s = sample();
        assert!(
            s.node(NodeId(7))
                .unwrap_err()
                .to_string()
                .contains("c1, c2, c3")
        );
    }

    #[test]
    fn a_missing_file_means_not_up() {
        let dir = std::env::temp_dir().join(format!("dw-cluster-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(ClusterState::load(&dir).unwrap(), None);
        assert!(
            ClusterState::require(&dir)
                .unwrap_err()
                .to_string()
                .contains("scripts/stack up --only cassandra-cluster")
        );
        std::fs::write(dir.join(STATE_FILE), SAMPLE).unwrap();
        assert!(ClusterState::load(&dir).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
