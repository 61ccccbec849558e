//! Faults between the nodes of the local three-node Cassandra cluster
//! (`scripts/stack up --only cassandra-cluster`): partitions, random loss and delay
//! between nodes, and killing or pausing a node's process.
//!
//! Each node runs in its own network namespace, so a fault is firewall rules inside
//! the namespaces (see [`rules`]) or a signal to the node's JVM. [`ClusterNemesis::apply`]
//! returns once the fault is in force and says how long that took;
//! [`ClusterNemesis::heal`] undoes one fault; [`reset`] undoes everything any
//! dualwrite process left (rules, delayers, paused or killed nodes), so a `kill -9`
//! of dualwrite mid-partition leaves nothing behind once `dualwrite reset` (or the
//! next run) has called it.
//!
//! Needs root (`ip netns exec`), like the stack script that made the namespaces.

mod process;
pub mod rules;
pub mod scheduled;
pub mod state;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use process::{
    ClusterLock, Delayer, SIGNAL_TIMEOUT, cmdline, delayer_pids, gone, in_netns,
    remove_iptables_chains, restart, signal, start_delayer, table_has_chains, wait_for, wait_ready,
};
pub use process::{is_node_cmdline, node_pid, proc_state};
pub use rules::NFT_TABLE;
pub use scheduled::ScheduledFaults;
pub use state::{ClusterProxy, ClusterState, NodeId, NodeInfo, STATE_FILE};

/// Which nodes cannot talk to which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partition {
    /// Nodes in different groups cannot exchange any packet; nodes in the same group,
    /// and nodes in no group, are not affected. Clients reach every node.
    Groups(Vec<Vec<NodeId>>),
    /// Messages from `from` do not reach `to`; messages from `to` reach `from`.
    OneWay { from: NodeId, to: NodeId },
}

impl Partition {
    /// `node` alone on one side, every other node on the other (with three nodes:
    /// the minority of one against the majority of two).
    pub fn isolate(node: NodeId, state: &ClusterState) -> Self {
        Self::halves(&[node], state)
    }

    /// `minority` against every other node.
    pub fn halves(minority: &[NodeId], state: &ClusterState) -> Self {
        let rest = state
            .node_ids()
            .into_iter()
            .filter(|n| !minority.contains(n))
            .collect();
        Self::Groups(vec![minority.to_vec(), rest])
    }
}

/// One fault between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeFault {
    Partition(Partition),
    /// Drops `percent` % of the packets between each listed node and every other node
    /// (each packet is subject to the draw once).
    Loss {
        nodes: Vec<NodeId>,
        percent: u8,
    },
    /// Holds each packet between each listed node and every other node for `delay_ms`
    /// (once per packet), through the NFQUEUE delayer.
    Delay {
        nodes: Vec<NodeId>,
        delay_ms: u32,
    },
    /// SIGKILL the node's JVM; healing restarts it through the stack script.
    Kill(NodeId),
    /// SIGSTOP the node's JVM; healing sends SIGCONT.
    Pause(NodeId),
}

fn list(ids: &[NodeId]) -> String {
    ids.iter()
        .map(NodeId::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for NodeFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Partition(Partition::Groups(g)) => {
                let groups: Vec<String> = g.iter().map(|ids| list(ids)).collect();
                write!(f, "partition {}", groups.join("|"))
            }
            Self::Partition(Partition::OneWay { from, to }) => {
                write!(f, "partition {from}->{to} (one-way)")
            }
            Self::Loss { nodes, percent } => write!(f, "loss {percent}% at {}", list(nodes)),
            Self::Delay { nodes, delay_ms } => write!(f, "delay {delay_ms}ms at {}", list(nodes)),
            Self::Kill(n) => write!(f, "node-kill {n}"),
            Self::Pause(n) => write!(f, "node-pause {n}"),
        }
    }
}

impl NodeFault {
    /// Checks the fault against the cluster; the error says what is wrong.
    pub fn validate(&self, state: &ClusterState) -> anyhow::Result<()> {
        let known = |ids: &[NodeId]| -> anyhow::Result<()> {
            for id in ids {
                state.node(*id)?;
            }
            Ok(())
        };
        let distinct = |ids: &[NodeId], what: &str| -> anyhow::Result<()> {
            let mut seen = ids.to_vec();
            seen.sort();
            seen.dedup();
            if seen.len() != ids.len() {
                bail!("{what}: a node is listed twice ({})", list(ids));
            }
            Ok(())
        };
        match self {
            Self::Partition(Partition::Groups(groups)) => {
                let all: Vec<NodeId> = groups.iter().flatten().copied().collect();
                known(&all)?;
                distinct(&all, "partition")?;
                if groups.iter().filter(|g| !g.is_empty()).count() < 2 {
                    bail!(
                        "a partition needs at least two non-empty groups of nodes (got {})",
                        self
                    );
                }
            }
            Self::Partition(Partition::OneWay { from, to }) => {
                known(&[*from, *to])?;
                if from == to {
                    bail!("a one-way partition needs two different nodes (got {from} twice)");
                }
            }
            Self::Loss { nodes, percent } => {
                known(nodes)?;
                distinct(nodes, "loss")?;
                if nodes.is_empty() {
                    bail!("loss needs at least one node");
                }
                if !(1..=100).contains(percent) {
                    bail!("loss percent must be 1-100 (got {percent})");
                }
            }
            Self::Delay { nodes, delay_ms } => {
                known(nodes)?;
                distinct(nodes, "delay")?;
                if nodes.is_empty() {
                    bail!("delay needs at least one node");
                }
                if !(1..=60_000).contains(delay_ms) {
                    bail!("delay must be 1-60000 ms (got {delay_ms})");
                }
                if state.delayer.is_none() {
                    bail!(
                        "the NFQUEUE delayer is not built: scripts/stack install --only cassandra-cluster"
                    );
                }
            }
            Self::Kill(n) | Self::Pause(n) => known(&[*n])?,
        }
        Ok(())
    }
}

/// A fault in force: hand it back to [`ClusterNemesis::heal`].
#[derive(Debug)]
pub struct Applied {
    /// Names the fault's nft chains, iptables chains and delayer pid files.
    pub id: String,
    pub fault: NodeFault,
    /// From the call to the moment the fault was in force.
    pub took: Duration,
    delayers: Vec<Delayer>,
}

/// Applies and heals faults between the cluster's nodes.
///
/// It holds the cluster's lock for its whole life: one process faults the cluster at
/// a time, and [`reset`] from another process leaves a live holder's faults alone.
pub struct ClusterNemesis {
    state: ClusterState,
    seq: AtomicU32,
    _lock: ClusterLock,
}

impl ClusterNemesis {
    /// Takes the cluster's lock; an error naming the holder when another process has it.
    pub fn new(state: ClusterState) -> anyhow::Result<Self> {
        let lock = match ClusterLock::try_take(&state.state_dir)? {
            Ok(lock) => lock,
            Err(holder) => bail!(
                "the Cassandra cluster is in use by another dualwrite process ({holder}); two processes faulting one cluster would corrupt each other's results"
            ),
        };
        Ok(Self {
            state,
            seq: AtomicU32::new(0),
            _lock: lock,
        })
    }

    /// The nemesis of the cluster the stack in `state_dir` runs; an error telling how
    /// to start it when it is not up.
    pub fn load(state_dir: &Path) -> anyhow::Result<Self> {
        Self::new(ClusterState::require(state_dir)?)
    }

    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// Heals every fault in the cluster, this process's and any left by a crashed one
    /// (see [`reset`]). A run calls it at its start, before applying anything.
    pub async fn reset(&self) -> anyhow::Result<Vec<String>> {
        heal_all(&self.state).await
    }

    fn next_id(&self) -> (String, u32) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        (format!("dw{}_{seq}", std::process::id()), seq)
    }

    /// Applies `fault` and returns once it is in force: rules committed, the delayers
    /// holding packets, a killed JVM gone, a paused JVM stopped.
    pub async fn apply(&self, fault: &NodeFault) -> anyhow::Result<Applied> {
        fault.validate(&self.state)?;
        let t0 = Instant::now();
        let (id, seq) = self.next_id();
        let mut applied = Applied {
            id: id.clone(),
            fault: fault.clone(),
            took: Duration::ZERO,
            delayers: Vec::new(),
        };
        let result = match fault {
            NodeFault::Partition(_) | NodeFault::Loss { .. } => self.apply_nft(&id, fault).await,
            NodeFault::Delay { nodes, delay_ms } => {
                self.apply_delay(&mut applied, seq, nodes, *delay_ms).await
            }
            NodeFault::Kill(n) => {
                let pid = node_pid(self.state.node(*n)?)?;
                signal(pid, libc::SIGKILL, &format!("cassandra-{n}"))?;
                wait_for(SIGNAL_TIMEOUT, || gone(pid))
                    .await
                    .with_context(|| format!("cassandra-{n} (pid {pid}) still runs after SIGKILL"))
            }
            NodeFault::Pause(n) => {
                let pid = node_pid(self.state.node(*n)?)?;
                signal(pid, libc::SIGSTOP, &format!("cassandra-{n}"))?;
                wait_for(SIGNAL_TIMEOUT, || proc_state(pid) == Some('T'))
                    .await
                    .with_context(|| {
                        format!("cassandra-{n} (pid {pid}) is not stopped after SIGSTOP")
                    })
            }
        };
        if let Err(e) = result {
            // Half applied (one namespace of three): take back what went in.
            let _ = self.heal(applied).await;
            return Err(e.context(format!("applying {fault}")));
        }
        applied.took = t0.elapsed();
        Ok(applied)
    }

    /// Undoes one fault and returns how long that took. A killed node is restarted
    /// and answers CQL when this returns; a paused one is running again.
    pub async fn heal(&self, mut applied: Applied) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        let what = applied.fault.to_string();
        let result = match &applied.fault {
            NodeFault::Partition(_) | NodeFault::Loss { .. } => {
                self.heal_nft(&applied.id, &applied.fault).await
            }
            NodeFault::Delay { nodes, .. } => {
                let nodes = nodes.clone();
                self.heal_delay(&mut applied, &nodes).await
            }
            NodeFault::Kill(_) => restart(&self.state).await,
            NodeFault::Pause(n) => {
                let pid = node_pid(self.state.node(*n)?)?;
                signal(pid, libc::SIGCONT, &format!("cassandra-{n}"))?;
                wait_for(SIGNAL_TIMEOUT, || proc_state(pid) != Some('T'))
                    .await
                    .with_context(|| {
                        format!("cassandra-{n} (pid {pid}) still stopped after SIGCONT")
                    })
            }
        };
        result.with_context(|| format!("healing {what}"))?;
        Ok(t0.elapsed())
    }

    async fn apply_nft(&self, id: &str, fault: &NodeFault) -> anyhow::Result<()> {
        for (node, r) in rules::nft_rules(&self.state, fault) {
            let ns = &self.state.node(node)?.netns;
            in_netns(ns, "nft", &["-f", "-"], &rules::nft_apply_script(id, &r)).await?;
        }
        Ok(())
    }

    async fn heal_nft(&self, id: &str, fault: &NodeFault) -> anyhow::Result<()> {
        let mut first_error = None;
        for node in rules::nft_rules(&self.state, fault).keys() {
            let ns = &self.state.node(*node)?.netns;
            let r = in_netns(ns, "nft", &["-f", "-"], &rules::nft_heal_script(id)).await;
            // An empty table left behind would read as "a fault is in force".
            if r.is_ok() && !table_has_chains(ns).await {
                let _ = in_netns(ns, "nft", &["delete", "table", "inet", NFT_TABLE], "").await;
            }
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn apply_delay(
        &self,
        applied: &mut Applied,
        seq: u32,
        nodes: &[NodeId],
        delay_ms: u32,
    ) -> anyhow::Result<()> {
        let delayer = self
            .state
            .delayer
            .clone()
            .context("the NFQUEUE delayer is not built")?;
        // One queue number per fault of this process; another process's delay on the
        // same node and number fails to bind, with that error.
        let queue = ((std::process::id() % 60_000) + seq) as u16;
        for (node, r) in rules::delay_rules(&self.state, nodes) {
            let info = self.state.node(node)?;
            let d = start_delayer(&self.state, &delayer, &applied.id, info, queue, delay_ms)?;
            applied.delayers.push(d);
            wait_ready(applied.delayers.last_mut().expect("just pushed")).await?;
            let script = rules::iptables_apply_script(&applied.id, queue, &r);
            in_netns(&info.netns, "iptables-restore", &["--noflush"], &script).await?;
        }
        Ok(())
    }

    async fn heal_delay(&self, applied: &mut Applied, nodes: &[NodeId]) -> anyhow::Result<()> {
        let mut first_error = None;
        // Rules first, so no packet is queued to a delayer that is stopping.
        for node in nodes {
            let ns = &self.state.node(*node)?.netns;
            if let Err(e) = remove_iptables_chains(ns, &applied.id).await {
                first_error.get_or_insert(e);
            }
        }
        for mut d in applied.delayers.drain(..) {
            // The delayer accepts every held packet on TERM, then exits.
            let _ = signal(d.pid, libc::SIGTERM, "nfq-delay");
            let stopped =
                wait_for(SIGNAL_TIMEOUT, || matches!(d.child.try_wait(), Ok(Some(_)))).await;
            if stopped.is_err() {
                let _ = d.child.kill();
                let _ = d.child.wait();
            }
            let _ = std::fs::remove_file(&d.pid_file);
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Heals every fault in the cluster the stack in `state_dir` runs, whoever applied
/// it: deletes the nft table `inet dualwrite` and the delay rules (table `ip filter`)
/// in each namespace, stops every delayer, resumes paused nodes and restarts killed
/// ones. Returns one line per thing it fixed; empty when all was clean or the
/// cluster is not up. `dualwrite reset` calls it.
///
/// A live [`ClusterNemesis`] in another process holds the cluster's lock: then its
/// faults are that run's, not leftovers, and this only says so (one line). A process
/// killed with `kill -9` holds nothing (the kernel drops its lock), so what it left
/// is healed.
pub async fn reset(state_dir: &Path) -> anyhow::Result<Vec<String>> {
    let Some(state) = ClusterState::load(state_dir)? else {
        return Ok(Vec::new());
    };
    match ClusterLock::try_take(state_dir)? {
        // A cluster taken down leaves its state file; with its namespaces gone
        // there are no rules or processes left to heal.
        Ok(_lock)
            if !state
                .nodes
                .iter()
                .any(|n| Path::new("/run/netns").join(&n.netns).exists()) =>
        {
            Ok(Vec::new())
        }
        Ok(_lock) => heal_all(&state).await,
        Err(holder) => Ok(vec![format!(
            "Cassandra cluster not reset: in use by a running dualwrite process ({holder}); its faults are its own"
        )]),
    }
}

async fn heal_all(state: &ClusterState) -> anyhow::Result<Vec<String>> {
    let mut fixed = Vec::new();
    for node in &state.nodes {
        let tables = in_netns(&node.netns, "nft", &["list", "tables"], "")
            .await
            .with_context(|| format!("listing the nft tables of {}", node.netns))?;
        for (family, table, why) in [
            ("inet", NFT_TABLE, "the rules of partitions and loss"),
            ("ip", "filter", "the rules of delays"),
        ] {
            if tables
                .lines()
                .any(|l| l.trim() == format!("table {family} {table}"))
            {
                in_netns(&node.netns, "nft", &["delete", "table", family, table], "").await?;
                fixed.push(format!(
                    "removed nft table `{family} {table}` ({why}) in namespace {}",
                    node.netns
                ));
            }
        }
    }
    for (pid, file) in delayer_pids(&state.state_dir) {
        if cmdline(pid).is_some_and(|c| c.contains("nfq-delay")) {
            let _ = signal(pid, libc::SIGTERM, "nfq-delay");
            fixed.push(format!("stopped delayer (pid {pid})"));
        }
        let _ = std::fs::remove_file(file);
    }
    let mut dead = Vec::new();
    for node in &state.nodes {
        match node_pid(node) {
            Ok(pid) if proc_state(pid) == Some('T') => {
                signal(pid, libc::SIGCONT, &format!("cassandra-{}", node.id))?;
                fixed.push(format!("resumed paused cassandra-{} (pid {pid})", node.id));
            }
            Ok(_) => {}
            Err(_) => dead.push(node.id),
        }
    }
    if !dead.is_empty() {
        restart(state).await?;
        fixed.push(format!("restarted cassandra-{}", list(&dead)));
    }
    Ok(fixed)
}

#[cfg(test)]
mod tests {
    use super::state::tests::sample;
    use super::*;

    fn n(i: u8) -> NodeId {
        NodeId::new(i).unwrap()
    }

    #[test]
    fn isolate_and_halves_split_the_cluster() {
        let s = sample();
        assert_eq!(
            Partition::isolate(n(3), &s),
            Partition::Groups(vec![vec![n(3)], vec![n(1), n(2)]])
        );
        assert_eq!(
            NodeFault::Partition(Partition::halves(&[n(1)], &s)).to_string(),
            "partition c1|c2,c3"
        );
    }

    #[test]
    fn bad_faults_are_refused_with_a_reason() {
        let s = sample();
        let err = |f: NodeFault| f.validate(&s).unwrap_err().to_string();
        assert!(err(NodeFault::Kill(n(4))).contains("node c4 is not in the cluster"));
        assert!(
            err(NodeFault::Partition(Partition::Groups(vec![vec![
                n(1),
                n(2),
                n(3)
            ]])))
            .contains("two non-empty groups")
        );
        assert!(
            err(NodeFault::Partition(Partition::Groups(vec![
                vec![n(1)],
                vec![n(1), n(2)]
            ])))
            .contains("listed twice")
        );
        assert!(
            err(NodeFault::Partition(Partition::OneWay {
                from: n(2),
                to: n(2)
            }))
            .contains("two different nodes")
        );
        assert!(
            err(NodeFault::Loss {
                nodes: vec![n(1)],
                percent: 0
            })
            .contains("1-100")
        );
        assert!(
            err(NodeFault::Loss {
                nodes: vec![],
                percent: 10
            })
            .contains("at least one node")
        );
        assert!(
            err(NodeFault::Delay {
                nodes: vec![n(1)],
                delay_ms: 0
            })
            .contains("1-60000")
        );
        let mut no_delayer = sample();
        no_delayer.delayer = None;
        assert!(
            NodeFault::Delay {
                nodes: vec![n(1)],
                delay_ms: 50
            }
            .validate(&no_delayer)
            .unwrap_err()
            .to_string()
            .contains("install --only cassandra-cluster")
        );
        assert!(NodeFault::Pause(n(2)).validate(&s).is_ok());
    }

    #[test]
    fn labels_name_the_nodes() {
        assert_eq!(
            NodeFault::Partition(Partition::OneWay {
                from: n(3),
                to: n(1)
            })
            .to_string(),
            "partition c3->c1 (one-way)"
        );
        assert_eq!(
            NodeFault::Loss {
                nodes: vec![n(1), n(3)],
                percent: 20
            }
            .to_string(),
            "loss 20% at c1,c3"
        );
        assert_eq!(NodeFault::Pause(n(2)).to_string(), "node-pause c2");
    }

    #[test]
    fn one_holder_of_the_cluster_at_a_time() {
        let dir = std::env::temp_dir().join(format!("dw-cluster-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut state = sample();
        state.state_dir = dir.clone();
        let first = ClusterNemesis::new(state.clone()).unwrap();
        let err = ClusterNemesis::new(state.clone())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("in use by another dualwrite process"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        // reset() from elsewhere leaves a live holder's faults alone.
        std::fs::write(dir.join(STATE_FILE), state::tests::SAMPLE).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let said = rt.block_on(reset(&dir)).unwrap();
        assert_eq!(said.len(), 1);
        assert!(said[0].contains("not reset: in use"), "{said:?}");
        drop(first);
        assert!(ClusterNemesis::new(state).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_cluster_resets_to_nothing() {
        let dir = std::env::temp_dir().join(format!("dw-cluster-reset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(rt.block_on(reset(&dir)).unwrap().is_empty());
        assert!(
            ClusterNemesis::load(&dir)
                .err()
                .unwrap()
                .to_string()
                .contains("scripts/stack up --only cassandra-cluster")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
