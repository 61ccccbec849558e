//! Mutations, batchlog writes and Paxos writes per order on Cassandra, from the
//! server's own metrics: the `system_views.local_write_latency` virtual table
//! (Cassandra 4.0+; read on 5.0.6 here), whose `count` is the number of local
//! writes to each table, read before and after the load.
//!
//! - mutations: local writes to the run's own keyspace (only this run writes
//!   there, so the figure is the run's own);
//! - batchlog writes: local writes to `system.batches` (a logged batch stores
//!   its batchlog entry and then removes it);
//! - Paxos writes: local writes to `system.paxos` (each LWT writes its Paxos
//!   state at prepare, propose and commit), not rounds: Cassandra exposes no
//!   per-round counter through CQL.
//!
//! The `system` tables are the whole node's: other runs' batches and LWTs on a
//! shared server in the same window are included (the figure says
//! `server_wide`). On the cluster each node is read on its own (the tables are
//! node-local) and the nodes' differences are summed: every replica's local
//! writes, so a write at replication factor 3 counts three times.

use scylla::client::execution_profile::ExecutionProfileHandle;
use scylla::client::session::Session;
use scylla::statement::Statement;
use std::collections::BTreeMap;

use crate::result::{CapacityFigure, CapacitySource};

/// One reading: local write counts of the run's keyspace's tables and of the
/// two `system` tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub keyspace: BTreeMap<String, i64>,
    pub batches: i64,
    pub paxos: i64,
}

/// Local write counts of every table of one keyspace.
async fn counts(
    session: &Session,
    keyspace: &str,
    node: Option<&ExecutionProfileHandle>,
) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut s = Statement::new(
        "SELECT table_name, count FROM system_views.local_write_latency WHERE keyspace_name = ?",
    );
    s.set_execution_profile_handle(node.cloned());
    let rows = session
        .query_unpaged(s, (keyspace,))
        .await?
        .into_rows_result()?;
    Ok(rows
        .rows::<(String, i64)>()?
        .filter_map(Result::ok)
        .collect())
}

/// Reads the counters of the node `node` routes to, or of the node the session
/// picks (an error: the server has no such virtual table).
pub async fn read(
    session: &Session,
    keyspace: &str,
    node: Option<&ExecutionProfileHandle>,
) -> anyhow::Result<Counters> {
    let system = counts(session, "system", node).await?;
    Ok(Counters {
        keyspace: counts(session, keyspace, node).await?,
        batches: system.get("batches").copied().unwrap_or(0),
        paxos: system.get("paxos").copied().unwrap_or(0),
    })
}

impl Counters {
    /// What one node wrote between two readings; a counter that went backwards
    /// (the node restarted) counts from zero.
    pub fn since(&self, before: &Counters) -> Counters {
        let d = |a: i64, b: i64| if a >= b { a - b } else { a };
        Counters {
            keyspace: self
                .keyspace
                .iter()
                .map(|(t, n)| {
                    (
                        t.clone(),
                        d(*n, before.keyspace.get(t).copied().unwrap_or(0)),
                    )
                })
                .collect(),
            batches: d(self.batches, before.batches),
            paxos: d(self.paxos, before.paxos),
        }
    }

    /// Several nodes' counts, added up.
    pub fn add(&mut self, other: &Counters) {
        for (t, n) in &other.keyspace {
            *self.keyspace.entry(t.clone()).or_default() += n;
        }
        self.batches += other.batches;
        self.paxos += other.paxos;
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn figure(
    name: &str,
    unit: &str,
    parts: BTreeMap<String, f64>,
    orders: u64,
    server_wide: bool,
) -> CapacityFigure {
    let total: f64 = parts.values().sum();
    CapacityFigure {
        store: "cassandra".into(),
        name: name.into(),
        unit: unit.into(),
        total: Some(round(total)),
        per_order: (orders > 0).then(|| round(total / orders as f64)),
        source: CapacitySource::ServerCounter,
        server_wide,
        missing: None,
        attempts: None,
        reported_attempts: None,
        unanswered: None,
        modelled_total: None,
        reported_total: None,
        parts,
    }
}

/// The figures between two readings (pure: tested below).
pub fn figures(before: &Counters, after: &Counters, orders: u64) -> Vec<CapacityFigure> {
    let mutations = after
        .keyspace
        .iter()
        .map(|(t, n)| {
            let d = n - before.keyspace.get(t).copied().unwrap_or(0);
            (t.clone(), d.max(0) as f64)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    let one = |k: &str, d: i64| BTreeMap::from([(k.to_string(), d.max(0) as f64)]);
    vec![
        figure("mutations", "local writes", mutations, orders, false),
        figure(
            "batchlog_writes",
            "system.batches writes",
            one("system.batches", after.batches - before.batches),
            orders,
            true,
        ),
        figure(
            "paxos_writes",
            "system.paxos writes",
            one("system.paxos", after.paxos - before.paxos),
            orders,
            true,
        ),
    ]
}

/// The figures of a server whose counters could not be read: never zeros.
pub fn not_reported(server: &str) -> Vec<CapacityFigure> {
    ["mutations", "batchlog_writes", "paxos_writes"]
        .into_iter()
        .map(|name| CapacityFigure {
            total: None,
            per_order: None,
            source: CapacitySource::NotReported,
            missing: Some(format!("not reported by {server}")),
            parts: BTreeMap::new(),
            ..figure(name, "", BTreeMap::new(), 0, true)
        })
        .collect()
}

/// What the figures cannot say, for the result's notes.
pub fn notes(cluster: bool) -> Vec<String> {
    let mut n = vec![
        "cassandra: counts of system_views.local_write_latency read before and after the load; batchlog and Paxos writes are the whole node's (system.batches, system.paxos), so other runs' batches and LWTs on a shared server in the same window are included; Paxos is counted as writes of Paxos state (prepare, propose, commit), not as rounds; a server restarted during the run counts from its restart".to_string(),
    ];
    if cluster {
        n.push("cassandra: on the cluster every node's counters are read and their differences summed: each replica's local writes count (a write at replication factor 3 counts three times; system.batches is written on the nodes holding the batchlog, not on the coordinator)".into());
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_are_differences_per_order() {
        let before = Counters {
            keyspace: BTreeMap::from([("orders".into(), 0), ("events".into(), 0)]),
            batches: 100,
            paxos: 30,
        };
        let after = Counters {
            keyspace: BTreeMap::from([
                ("orders".into(), 10),
                ("events".into(), 10),
                ("order_outbox".into(), 0),
            ]),
            batches: 120,
            paxos: 60,
        };
        let f = figures(&before, &after, 10);
        assert_eq!(f[0].name, "mutations");
        assert_eq!(f[0].per_order, Some(2.0));
        assert!(!f[0].server_wide, "the run's own keyspace");
        assert_eq!(f[0].parts.len(), 2, "tables not written are left out");
        assert_eq!(f[1].per_order, Some(2.0));
        assert!(f[1].server_wide);
        assert_eq!(f[2].total, Some(30.0));
        assert_eq!(f[2].per_order, Some(3.0));
        // A counter that went backwards (a restarted node) is no negative cost.
        let f = figures(&after, &before, 10);
        assert_eq!(f[1].total, Some(0.0));
    }

    #[test]
    fn the_nodes_differences_add_up_and_a_restarted_node_counts_from_zero() {
        let node = |orders: i64, batches: i64| Counters {
            keyspace: BTreeMap::from([("orders".into(), orders)]),
            batches,
            paxos: 0,
        };
        let mut sum = Counters::default();
        // c1 wrote 10 orders and no batchlog; c2 10 orders and 5 batchlog rows;
        // c3 restarted: its counters read 4 after 50 before, so 4 since.
        sum.add(&node(110, 7).since(&node(100, 7)));
        sum.add(&node(10, 5).since(&node(0, 0)));
        sum.add(&node(4, 0).since(&node(50, 9)));
        assert_eq!(sum.keyspace["orders"], 24);
        assert_eq!(sum.batches, 5);
        let f = figures(&Counters::default(), &sum, 4);
        assert_eq!(f[0].per_order, Some(6.0));
        assert_eq!(f[1].total, Some(5.0));
    }
}
