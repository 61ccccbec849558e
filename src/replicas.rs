//! The checker on a store whose records live on several replicas (the Cassandra
//! cluster): beside the final scan, which reads every replica merged (the
//! eventual truth the verdict counts), what each replica held on its own — at
//! the load's end while the faults were still in force, and at check time — and
//! how long after the faults the replicas came to agree.
//!
//! A replica's view is each side's table read on that node alone (`Replicas::scan`),
//! and the checker's counts over that view: what a reader at ONE on that node
//! sees. Comparing the views is pure arithmetic ([`snapshot`]); this module also
//! drives the reads ([`ReplicaCheck`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checker::{self, CollectedScan};
use crate::history::History;
use crate::result::{ReplicaSnapshot, ReplicaTrace, ReplicaView};
use crate::scenario::{Field, Side};
use crate::store::{Record, Replicas, SideStore, Stores};

/// Sample keys kept per kind in a view.
const SAMPLES: usize = 10;
/// Between two rounds of per-replica scans while waiting for agreement.
const POLL: Duration = Duration::from_millis(500);

/// One replica's read of both sides, or why it could not be read.
pub type ReplicaRead = (String, Result<(CollectedScan, CollectedScan), String>);

/// Where one side's per-replica view comes from.
#[derive(Clone)]
enum Source {
    /// The side lives on the replicated store: read on each node alone.
    Replicas(Arc<dyn Replicas>),
    /// The side lives elsewhere (two stores): its one scan stands for every node.
    Whole(Arc<dyn SideStore>),
}

/// Reads every replica of the run's replicated store.
#[derive(Clone)]
pub struct ReplicaCheck {
    nodes: Vec<String>,
    final_read: String,
    primary: Source,
    secondary: Source,
}

impl ReplicaCheck {
    /// `None` unless a side lives on a store with replicas.
    pub async fn of(stores: &Stores) -> anyhow::Result<Option<Self>> {
        let (p, s) = (stores.primary.replicas(), stores.secondary.replicas());
        let Some(any) = p.clone().or(s.clone()) else {
            return Ok(None);
        };
        let source = |r: Option<Arc<dyn Replicas>>, side: Side| async move {
            anyhow::Ok(match r {
                Some(r) => Source::Replicas(r),
                None => Source::Whole(stores.of(side).side(side).await?),
            })
        };
        Ok(Some(Self {
            nodes: any.nodes(),
            final_read: any.final_read(),
            primary: source(p, Side::Primary).await?,
            secondary: source(s, Side::Secondary).await?,
        }))
    }

    pub fn final_read(&self) -> &str {
        &self.final_read
    }

    /// Waits until the final read can be served (every replica up again).
    pub async fn ready(&self, limit: Duration) -> anyhow::Result<Duration> {
        match (&self.primary, &self.secondary) {
            (Source::Replicas(r), _) | (_, Source::Replicas(r)) => r.ready(limit).await,
            _ => Ok(Duration::ZERO),
        }
    }

    async fn read_side(
        source: &Source,
        node: &str,
        side: Side,
        timeout: Duration,
    ) -> Result<CollectedScan, String> {
        let mut scan = CollectedScan::default();
        let r = match source {
            Source::Replicas(r) => r.scan(node, side, timeout, &mut scan).await,
            Source::Whole(s) => s.scan(&mut scan).await,
        };
        r.map(|()| scan).map_err(|e| {
            // The driver's pool errors repeat their cause several times over.
            let text = format!("{e:#}");
            let short: String = text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(240)
                .collect();
            format!("{side} side on {node}: {short}")
        })
    }

    /// Every replica's read of both sides, each within `timeout` (a paused node
    /// does not answer; a killed one refuses at once).
    pub async fn read(&self, timeout: Duration) -> Vec<ReplicaRead> {
        let mut out = Vec::new();
        for node in &self.nodes {
            let p = Self::read_side(&self.primary, node, Side::Primary, timeout).await;
            // A node that did not answer for one side will not for the other.
            let both = match p {
                Ok(p) => Self::read_side(&self.secondary, node, Side::Secondary, timeout)
                    .await
                    .map(|s| (p, s)),
                Err(e) => Err(e),
            };
            out.push((node.clone(), both));
        }
        out
    }

    /// Traced reads proving each node's scan read that node alone.
    pub async fn traces(&self) -> BTreeMap<String, ReplicaTrace> {
        let mut out = BTreeMap::new();
        let (r, side) = match (&self.primary, &self.secondary) {
            (Source::Replicas(r), _) => (r, Side::Primary),
            (_, Source::Replicas(r)) => (r, Side::Secondary),
            _ => return out,
        };
        for node in &self.nodes {
            let trace = match r.trace(node, side).await {
                Ok(t) => ReplicaTrace {
                    proven: t.proven(),
                    address: t.node_address,
                    coordinator: t.coordinator,
                    events: t.events,
                    sources: t.sources,
                },
                Err(e) => ReplicaTrace {
                    address: format!("(trace failed: {e:#})"),
                    ..ReplicaTrace::default()
                },
            };
            out.insert(node.clone(), trace);
        }
        out
    }

    /// Polls until every replica holds the same records, or until `deadline`.
    /// Returns when agreement was first seen, and the rounds of reads done.
    pub async fn wait_agreement(&self, deadline: Instant) -> (Option<Instant>, u32) {
        let mut polls = 0;
        loop {
            polls += 1;
            let reads = self.read(Duration::from_secs(10)).await;
            let seen = Instant::now();
            if agree(&reads) {
                return (Some(seen), polls);
            }
            if seen + POLL >= deadline {
                return (None, polls);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Whether every replica answered and all hold the same records on both sides.
pub fn agree(reads: &[ReplicaRead]) -> bool {
    let mut views = Vec::new();
    for (_, r) in reads {
        match r {
            Ok((p, s)) => views.push((
                sorted(&p.records),
                sorted(&s.records),
                p.foreign + s.foreign,
            )),
            Err(_) => return false,
        }
    }
    views.windows(2).all(|w| w[0] == w[1])
}

fn sorted(records: &[Record]) -> Vec<Record> {
    let mut v = records.to_vec();
    v.sort_unstable();
    v
}

/// One replica's records of both sides, grouped by order id.
type Grouped = [BTreeMap<u64, Vec<Record>>; 2];

/// The records of one side grouped by order id.
fn by_id(records: &[Record]) -> BTreeMap<u64, Vec<Record>> {
    let mut m: BTreeMap<u64, Vec<Record>> = BTreeMap::new();
    for r in records {
        m.entry(r.order_id).or_default().push(*r);
    }
    for v in m.values_mut() {
        v.sort_unstable();
    }
    m
}

/// Compares the replicas' reads with each other and with the history: each
/// replica's view holds what it lacks of what another holds, what it holds in
/// another form, and the checker's counts over it alone.
pub fn snapshot(
    reads: Vec<ReplicaRead>,
    history: &History,
    fields: &[Field],
    t_s: f64,
    faults_in_force: Vec<String>,
) -> ReplicaSnapshot {
    let agree = agree(&reads);
    let grouped: Vec<Option<Grouped>> = reads
        .iter()
        .map(|(_, r)| {
            r.as_ref()
                .ok()
                .map(|(p, s)| [by_id(&p.records), by_id(&s.records)])
        })
        .collect();
    let mut replicas = Vec::new();
    for (i, (node, read)) in reads.into_iter().enumerate() {
        let (p, s) = match read {
            Ok(scans) => scans,
            Err(e) => {
                replicas.push(ReplicaView {
                    node,
                    error: Some(e),
                    ..ReplicaView::default()
                });
                continue;
            }
        };
        let mine = grouped[i].as_ref().expect("read ok");
        let mut view = ReplicaView {
            node,
            scanned_primary: p.records.len() as u64 + p.foreign,
            scanned_secondary: s.records.len() as u64 + s.foreign,
            ..ReplicaView::default()
        };
        let mut differing = std::collections::BTreeSet::new();
        for (side, name) in [(0, "missing_primary"), (1, "missing_secondary")] {
            let mut missing = std::collections::BTreeSet::new();
            for other in grouped.iter().enumerate().filter(|(j, _)| *j != i) {
                let Some(other) = other.1 else { continue };
                for (id, records) in &other[side] {
                    match mine[side].get(id) {
                        None => {
                            missing.insert(*id);
                        }
                        Some(held) if held != records => {
                            differing.insert(*id);
                        }
                        Some(_) => {}
                    }
                }
            }
            let n = missing.len() as u64;
            if side == 0 {
                view.missing_primary = n;
            } else {
                view.missing_secondary = n;
            }
            let keys: Vec<String> = missing
                .iter()
                .take(SAMPLES)
                .map(|id| crate::order::order_key(*id))
                .collect();
            if !keys.is_empty() {
                view.samples.insert(name.to_string(), keys);
            }
        }
        view.differing = differing.len() as u64;
        let c = checker::check(p, s, history, fields, &[], &checker::Causes::new());
        view.orphans = c.orphans;
        view.ghosts = c.ghosts;
        view.duplicates = c.duplicates;
        view.mismatches = c.mismatches;
        view.lost_acks = c.lost_acks;
        view.divergence = c.divergence;
        for (category, keys) in c.samples {
            if category != "strays" {
                view.samples.insert(category, keys);
            }
        }
        replicas.push(view);
    }
    ReplicaSnapshot {
        t_s: (t_s * 1000.0).round() / 1000.0,
        faults_in_force,
        agree,
        replicas,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpSummary, Outcome, SideOutcome};

    fn rec(id: u64, amount: u64) -> Record {
        Record {
            order_id: id,
            customer_id: 1,
            amount_cents: amount,
        }
    }

    fn read(node: &str, p: Vec<Record>, s: Vec<Record>) -> ReplicaRead {
        let scan = |records| CollectedScan {
            records,
            ..CollectedScan::default()
        };
        (node.to_string(), Ok((scan(p), scan(s))))
    }

    #[test]
    fn each_replica_is_counted_on_its_own() {
        let mut h = History::default();
        for id in 0..4 {
            h.record(
                id,
                OpSummary::new(Outcome::Ok, SideOutcome::Ok, SideOutcome::Ok, 0),
            );
        }
        let all = || vec![rec(0, 1), rec(1, 1), rec(2, 1), rec(3, 1)];
        // c3 lacks orders 2 and 3 on the secondary (a cut replica behind), and
        // holds order 1 with another amount.
        let reads = vec![
            read("c1", all(), all()),
            read("c2", all(), all()),
            read("c3", all(), vec![rec(0, 1), rec(1, 9)]),
        ];
        let snap = snapshot(
            reads,
            &h,
            &[Field::AmountCents],
            2.5,
            vec!["#0.0 partition@c3".into()],
        );
        assert!(!snap.agree);
        let c3 = &snap.replicas[2];
        assert_eq!((c3.missing_primary, c3.missing_secondary), (0, 2));
        assert_eq!(c3.differing, 1);
        assert_eq!((c3.orphans, c3.lost_acks, c3.mismatches), (2, 2, 1));
        assert_eq!(
            c3.samples["missing_secondary"],
            vec!["o000000000002", "o000000000003"]
        );
        // c1 lacks nothing and sees no divergence, but holds order 1 differently from c3.
        let c1 = &snap.replicas[0];
        assert_eq!(
            (c1.missing_primary, c1.missing_secondary, c1.divergence),
            (0, 0, 0)
        );
        assert_eq!(c1.differing, 1);
    }

    #[test]
    fn an_unreadable_replica_never_agrees() {
        let mut reads = vec![read("c1", vec![rec(0, 1)], vec![rec(0, 1)])];
        reads.push(("c2".to_string(), Err("no answer within 5s".into())));
        assert!(!agree(&reads));
        let snap = snapshot(reads, &History::default(), &[], 1.0, Vec::new());
        assert_eq!(
            snap.replicas[1].error.as_deref(),
            Some("no answer within 5s")
        );
        // The same records in another order agree.
        let reads = vec![
            read("c1", vec![rec(0, 1), rec(1, 1)], vec![]),
            read("c2", vec![rec(1, 1), rec(0, 1)], vec![]),
        ];
        assert!(agree(&reads));
    }
}
