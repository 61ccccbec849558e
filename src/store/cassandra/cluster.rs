//! Cassandra on the local three-node cluster (`server = "cassandra-cluster"`,
//! docs/CLUSTER.md): how a side's session reaches every node through the proxy in
//! front of that node for that side ([`PerNodeProxies`]), the node-pinned
//! load-balancing policy of a chosen coordinator ([`Pinned`]), waiting until every
//! node has the run's tables, and the checker's per-replica reads
//! ([`ClusterReplicas`]): a read at ONE coordinated by a node that is itself a
//! replica (every node is, at replication factor 3) reads that node alone, with
//! the dynamic snitch off and no speculative retry; tracing proves it.

use anyhow::Context;
use async_trait::async_trait;
use scylla::client::execution_profile::{ExecutionProfile, ExecutionProfileHandle};
use scylla::client::session::Session;
use scylla::cluster::{ClusterState as DriverCluster, NodeAddr, NodeRef};
use scylla::errors::TranslationError;
use scylla::policies::address_translator::{AddressTranslator, UntranslatedPeer};
use scylla::policies::load_balancing::{FallbackPlan, LoadBalancingPolicy, RoutingInfo};
use scylla::policies::retry::FallthroughRetryPolicy;
use scylla::routing::Shard;
use scylla::statement::{Consistency, Statement};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Tables;
use super::side::{Table, scan_table};
use crate::fault::cluster::{ClusterState, NodeId};
use crate::scenario::Side;
use crate::store::{ReadTrace, Replicas, ScanSink};

/// The server name of the cluster in the store registry and in scenarios.
pub const CLUSTER_SERVER: &str = "cassandra-cluster";

/// Nodes of the cluster `scripts/lib/cassandra-cluster.sh` starts (its
/// CLUSTER_NODES); scenarios are validated against it, runs against the state file.
pub const CLUSTER_NODES: u8 = 3;

/// How long every node may take to list a table just created.
const SCHEMA_WAIT: Duration = Duration::from_secs(60);

/// The Toxiproxy proxy in front of `node` for `side` (scripts/PORTS.md).
pub fn cluster_proxy(side: Side, node: NodeId) -> String {
    format!("cassandra_cluster_{side}_n{}", node.index())
}

/// Every proxy of a side on the cluster, one per node.
pub fn cluster_proxies(side: Side) -> Vec<String> {
    (1..=CLUSTER_NODES)
        .filter_map(NodeId::new)
        .map(|n| cluster_proxy(side, n))
        .collect()
}

/// Maps each node's address, as the driver learns it from `system.peers`, to the
/// side's proxy in front of that node: every connection of the session goes
/// through one of the side's proxies, so a fault on the side reaches all of them.
/// Nodes are told apart by address alone: `system.peers` has no port, so the
/// driver pairs a peer's address with the port of its control connection.
#[derive(Debug)]
pub(crate) struct PerNodeProxies {
    side: Side,
    map: Vec<(IpAddr, SocketAddr)>,
}

#[async_trait]
impl AddressTranslator for PerNodeProxies {
    async fn translate_address(
        &self,
        peer: &UntranslatedPeer,
    ) -> Result<SocketAddr, TranslationError> {
        let addr = peer.untranslated_address();
        self.map
            .iter()
            .find(|(node, _)| *node == addr.ip())
            .map(|(_, proxy)| *proxy)
            .ok_or_else(|| {
                warn_unknown_node(self.side, addr);
                TranslationError::NoRuleForAddress(addr)
            })
    }
}

/// A node the state file does not list would bypass the proxies: refused.
fn warn_unknown_node(side: Side, addr: SocketAddr) {
    eprintln!(
        "warning: the {side} session learned node {addr}, which the cluster's state file does not list; not connecting to it"
    );
}

/// Sends every request to one node, its coordinator: the node known by its
/// address as the cluster advertises it (a peer), or by its proxy when it was the
/// contact point. No fallback: when the chosen coordinator is dead, requests fail
/// as they would for an application pinned to it (never sent: `no-connection`).
#[derive(Debug)]
pub(crate) struct Pinned {
    node: NodeId,
    address: IpAddr,
    proxy: SocketAddr,
}

impl Pinned {
    fn find<'a>(&self, cluster: &'a DriverCluster) -> Option<NodeRef<'a>> {
        cluster.get_nodes_info().iter().find(|n| match n.address {
            NodeAddr::Translatable(a) => a.ip() == self.address,
            NodeAddr::Untranslatable(a) => a == self.proxy,
            _ => false,
        })
    }
}

impl LoadBalancingPolicy for Pinned {
    fn pick<'a>(
        &'a self,
        _request: &'a RoutingInfo,
        cluster: &'a DriverCluster,
    ) -> Option<(NodeRef<'a>, Option<Shard>)> {
        self.find(cluster).map(|n| (n, None))
    }

    fn fallback<'a>(
        &'a self,
        _request: &'a RoutingInfo,
        _cluster: &'a DriverCluster,
    ) -> FallbackPlan<'a> {
        Box::new(std::iter::empty())
    }

    fn name(&self) -> String {
        format!("Pinned({})", self.node)
    }
}

/// The cluster as one store sees it: the state file the stack wrote.
#[derive(Debug, Clone)]
pub(crate) struct ClusterLink {
    pub(crate) state: ClusterState,
}

impl ClusterLink {
    pub(crate) fn load(stack_state: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            state: ClusterState::require(stack_state)?,
        })
    }

    /// The address translator of one side's session.
    pub(crate) fn translator(&self, side: Side) -> anyhow::Result<PerNodeProxies> {
        let mut map = Vec::new();
        for node in &self.state.nodes {
            let proxy = self.state.proxy(side.name(), node.id).with_context(|| {
                format!(
                    "the cluster's state file lists no {side} proxy for {}: restart it with this checkout's scripts/stack up --only cassandra-cluster",
                    node.id
                )
            })?;
            map.push((IpAddr::V4(node.addr), proxy.listen));
        }
        Ok(PerNodeProxies { side, map })
    }

    /// The policy that makes `node` coordinate every request of `side`.
    pub(crate) fn pinned(&self, side: Side, node: NodeId) -> anyhow::Result<Arc<Pinned>> {
        let info = self.state.node(node)?;
        let proxy = self
            .state
            .proxy(side.name(), node)
            .with_context(|| format!("no {side} proxy for {node} in the cluster's state file"))?;
        Ok(Arc::new(Pinned {
            node,
            address: IpAddr::V4(info.addr),
            proxy: proxy.listen,
        }))
    }

    /// The keyspace's replication: every node of the one datacenter holds every row.
    pub(crate) fn replication(&self) -> String {
        format!(
            "{{'class': 'NetworkTopologyStrategy', '{}': {}}}",
            self.state.datacenter,
            self.state.nodes.len()
        )
    }

    /// One profile per node for a side's reader (`[readers.<side>] coordinator`):
    /// the side's own level and timeout, coordinated by that node through the
    /// side's proxy in front of it, no retry.
    pub(crate) fn reader_profiles(
        &self,
        side: Side,
        level: Consistency,
        op_timeout: Duration,
    ) -> anyhow::Result<Vec<(NodeId, ExecutionProfileHandle)>> {
        self.state
            .nodes
            .iter()
            .map(|n| {
                let profile = ExecutionProfile::builder()
                    .consistency(level)
                    .request_timeout(Some(op_timeout))
                    .load_balancing_policy(self.pinned(side, n.id)?)
                    .retry_policy(Arc::new(FallthroughRetryPolicy::new()))
                    .build()
                    .into_handle();
                Ok((n.id, profile))
            })
            .collect()
    }

    /// A profile that reads at ONE on `node` alone.
    pub(crate) fn replica_profile(
        &self,
        side: Side,
        node: NodeId,
    ) -> anyhow::Result<ExecutionProfileHandle> {
        Ok(ExecutionProfile::builder()
            .consistency(Consistency::One)
            .load_balancing_policy(self.pinned(side, node)?)
            .retry_policy(Arc::new(FallthroughRetryPolicy::new()))
            .build()
            .into_handle())
    }

    /// Waits until every node lists every table of the keyspace: a write right
    /// after `CREATE TABLE` can otherwise meet a node without it.
    pub(crate) async fn wait_for_tables(
        &self,
        session: &Session,
        side: Side,
        keyspace: &str,
        tables: &[&str],
    ) -> anyhow::Result<()> {
        session
            .await_schema_agreement()
            .await
            .context("the cluster's nodes did not agree on the schema")?;
        let deadline = Instant::now() + SCHEMA_WAIT;
        for node in self.state.node_ids() {
            let profile = self.replica_profile(side, node)?;
            loop {
                let mut s = Statement::new(
                    "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
                );
                s.set_execution_profile_handle(Some(profile.clone()));
                s.set_request_timeout(Some(Duration::from_secs(5)));
                let listed: Vec<String> = match session.query_unpaged(s, (keyspace,)).await {
                    Ok(r) => r
                        .into_rows_result()?
                        .rows::<(String,)>()?
                        .filter_map(Result::ok)
                        .map(|(t,)| t)
                        .collect(),
                    Err(_) => Vec::new(),
                };
                if tables.iter().all(|t| listed.iter().any(|l| l == t)) {
                    break;
                }
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "{node} lists {} of the {} tables of {keyspace} after {SCHEMA_WAIT:?}",
                        listed.len(),
                        tables.len()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }
}

/// The checker's view of each replica.
pub(crate) struct ClusterReplicas {
    session: Arc<Session>,
    link: ClusterLink,
    /// Per node: a profile reading at ONE on that node alone.
    profiles: BTreeMap<NodeId, ExecutionProfileHandle>,
    /// The table of each side this store holds.
    tables: BTreeMap<Side, String>,
}

impl ClusterReplicas {
    pub(crate) fn new(
        session: Arc<Session>,
        via: Side,
        link: &ClusterLink,
        tables: &Tables,
        sides: &[(Side, Table)],
    ) -> anyhow::Result<Self> {
        let mut profiles = BTreeMap::new();
        for node in link.state.node_ids() {
            profiles.insert(node, link.replica_profile(via, node)?);
        }
        Ok(Self {
            session,
            link: link.clone(),
            profiles,
            tables: sides.iter().map(|(s, t)| (*s, t.name(tables))).collect(),
        })
    }

    fn node(&self, name: &str) -> anyhow::Result<(NodeId, ExecutionProfileHandle)> {
        let id: NodeId = name.parse().map_err(|e: String| anyhow::anyhow!(e))?;
        let profile = self
            .profiles
            .get(&id)
            .with_context(|| format!("{id} is not a node of the cluster"))?;
        Ok((id, profile.clone()))
    }

    fn table(&self, side: Side) -> anyhow::Result<&str> {
        self.tables
            .get(&side)
            .map(String::as_str)
            .with_context(|| format!("this store does not hold the {side} side"))
    }
}

#[async_trait]
impl Replicas for ClusterReplicas {
    fn nodes(&self) -> Vec<String> {
        self.profiles.keys().map(NodeId::to_string).collect()
    }

    fn final_read(&self) -> String {
        "ALL".into()
    }

    async fn scan(
        &self,
        node: &str,
        side: Side,
        timeout: Duration,
        sink: &mut dyn ScanSink,
    ) -> anyhow::Result<()> {
        let (_, profile) = self.node(node)?;
        let table = self.table(side)?;
        let read = async {
            scan_table(&self.session, table, sink, |s| {
                s.set_execution_profile_handle(Some(profile.clone()));
                s.set_request_timeout(Some(timeout));
            })
            .await
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(r) => r,
            Err(_) => anyhow::bail!("no answer within {timeout:?}"),
        }
    }

    async fn trace(&self, node: &str, side: Side) -> anyhow::Result<ReadTrace> {
        let (id, profile) = self.node(node)?;
        let address = self.link.state.node(id)?.addr.to_string();
        let table = self.table(side)?;
        let mut s = Statement::new(format!(
            "SELECT order_id, customer_id, amount_cents FROM {table} LIMIT 1000"
        ));
        s.set_execution_profile_handle(Some(profile));
        s.set_request_timeout(Some(Duration::from_secs(10)));
        s.set_tracing(true);
        let r = self
            .session
            .query_unpaged(s, ())
            .await
            .with_context(|| format!("traced read of {table} on {id}"))?;
        let tracing_id = r
            .tracing_id()
            .context("the traced read has no tracing id")?;
        // Each node writes its trace events asynchronously: on a loaded machine
        // they take seconds to appear, past the driver's own few retries. Poll
        // until some are there, then once more after a pause, so a replica's
        // late events are not missing from the proof.
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen_once = false;
        let info = loop {
            match self.session.get_tracing_info(&tracing_id).await {
                Ok(info) if !info.events.is_empty() && seen_once => break info,
                Ok(info) if !info.events.is_empty() => seen_once = true,
                // None yet at the deadline: the proof fails, saying so.
                Ok(info) if Instant::now() >= deadline => break info,
                Err(e) if Instant::now() >= deadline => {
                    return Err(e)
                        .with_context(|| format!("tracing of the read of {table} on {id}"));
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(if seen_once { 500 } else { 250 })).await;
        };
        let mut sources: Vec<String> = info
            .events
            .iter()
            .filter_map(|e| e.source.map(|ip| ip.to_string()))
            .collect();
        sources.sort();
        sources.dedup();
        Ok(ReadTrace {
            node_address: address,
            coordinator: info.coordinator.map(|ip| ip.to_string()),
            events: info.events.len() as u64,
            sources,
        })
    }

    async fn ready(&self, limit: Duration) -> anyhow::Result<Duration> {
        // A node restarted by a heal answers CQL before the others have marked it
        // up: a read at ALL is refused (Unavailable) until they have.
        let t0 = Instant::now();
        let table = self.tables.values().next().context("no table")?.clone();
        let mut last = String::new();
        while t0.elapsed() < limit {
            let mut all_ok = true;
            for node in self.profiles.keys() {
                let (_, profile) = self.node(&node.to_string())?;
                let mut s = Statement::new(format!("SELECT order_id FROM {table} LIMIT 1"));
                s.set_execution_profile_handle(Some(profile));
                s.set_consistency(Consistency::All);
                s.set_request_timeout(Some(Duration::from_secs(5)));
                if let Err(e) = self.session.query_unpaged(s, ()).await {
                    last = format!("{node}: {e}");
                    all_ok = false;
                    break;
                }
            }
            if all_ok {
                return Ok(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        anyhow::bail!("a read at ALL still fails after {limit:?} ({last})")
    }
}
