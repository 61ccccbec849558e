//! Readers on the three-node cluster, each side's reads sent to a chosen node
//! (`[readers.<side>] coordinator`): reads at ONE on a replica cut off from the
//! others, and the two partitions of a cross-partition batch read through two
//! nodes. Every assertion is what the cut proves: while it holds, no packet of
//! c1 or c2 reaches c3, so c3 cannot show an order written after it began.

use dualwrite::history::Outcome;
use dualwrite::reader::entry::{ReadEntry, Seen};

use super::lock;
use super::runs::{scenario, window};
use crate::common::*;

impl ReadRun {
    /// The cut, in microseconds since the load began: from when it was surely in
    /// force (1 s after it was applied) to its healing.
    fn cut_us(&self) -> (u64, u64) {
        let w = window(&self.run.result, "partition");
        let start = ((w.start_s.expect("applied") + 1.0) * 1e6) as u64;
        let end = (w.end_s.expect("healed") * 1e6) as u64;
        (start, end)
    }

    /// Reads that ran while the cut held, of orders acknowledged and written
    /// after it began: none of their records can be on c3.
    fn behind_the_cut(&self) -> Vec<&ReadEntry> {
        let (start, end) = self.cut_us();
        self.reads
            .iter()
            .filter(|r| r.write == Outcome::Ok && r.start_us >= start && r.end_us < end)
            .filter(|r| self.op(r.id).start_us >= start)
            .collect()
    }

    /// Partial reads of acknowledged orders, over every delay.
    fn partial_acknowledged(&self) -> u64 {
        self.readers()
            .by_delay
            .iter()
            .map(|d| d.primary_only + d.secondary_only)
            .sum()
    }

    /// Each read agrees with the history: its write's outcome is the history's,
    /// and no side shows an order before its write began.
    fn agrees_with_the_history(&self) {
        for r in &self.reads {
            let op = self.op(r.id);
            assert_eq!(r.write, op.outcome, "{r:?} vs {op:?}");
            if r.primary == Seen::Seen || r.secondary == Seen::Seen {
                assert!(op.start_us <= r.end_us, "seen before written: {r:?} {op:?}");
            }
        }
    }
}

/// The scenario's text with its readers' sides (and name) replaced.
fn variant(s: &Scratch, base: &str, name: &str, from: &str, to: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(scenario(base)).unwrap();
    assert!(text.contains(from), "{base} has no `{from}`");
    let text = text
        .replace(&format!("name = \"{base}\""), &format!("name = \"{name}\""))
        .replace(from, to);
    s.write(&format!("{name}.toml"), &text)
}

/// Naive at ONE through c1, c3 cut off, readers at ONE through c3: every
/// answered read of an order written after the cut, while the cut holds, sees
/// neither side — a read-your-write violation each, counted exactly; the final
/// scan at ALL finds nothing missing. Read at QUORUM through c3 instead, the same
/// reads are not served (fail or unknown), never answered "absent".
#[test]
fn reads_at_one_on_a_cut_replica_miss_every_order_written_after_the_cut() {
    let _guard = lock();
    let s = Scratch::new();
    let one = ReadRun::new(&s, &scenario("cassandra-cluster-readers-one-partition"));
    let c = one.run.checker();
    assert_eq!(
        (c.orphans, c.ghosts, c.lost_acks),
        (0, 0, 0),
        "{}",
        one.explain()
    );
    one.agrees_with_the_history();
    // The cost counts every replica: each of the two writes lands on the three
    // nodes (on c3 by hints after the healing).
    let capacity = one.run.result.capacity.as_ref().expect("capacity");
    let mutations = capacity
        .figures
        .iter()
        .find(|f| f.name == "mutations")
        .and_then(|f| f.total)
        .expect("mutations counted on every node");
    let ok = one.run.count(|e| e.outcome == Outcome::Ok);
    let agreed = one
        .run
        .result
        .replicas
        .as_ref()
        .and_then(|r| r.agreed_after_ms);
    // Once the replicas agreed, each acknowledged write is on all three: at
    // least 6 per order (more where a replica applied a write whose answer timed
    // out and then got its hint too; one node's count would be 2).
    if agreed.is_some() {
        assert!(mutations >= 6.0 * ok as f64, "{ok} ok: {capacity:?}");
    }
    eprintln!("mutations {mutations} for {ok} acknowledged orders (agreed: {agreed:?})");
    let behind = one.behind_the_cut();
    let answered: Vec<&&ReadEntry> = behind.iter().filter(|r| r.outcome == Outcome::Ok).collect();
    assert!(
        !answered.is_empty(),
        "no answered read behind the cut: {}",
        one.explain()
    );
    for r in &answered {
        assert_eq!(
            (r.primary, r.secondary),
            (Seen::Absent, Seen::Absent),
            "c3 showed an order written after the cut: {r:?}"
        );
    }
    // The anomaly, counted exactly: every answered read of an acknowledged order
    // whose primary was absent (behind the cut, and any other c3 had not yet got).
    let x = one.readers();
    let ryw = one
        .reads
        .iter()
        .filter(|r| r.write == Outcome::Ok && r.primary == Seen::Absent)
        .count() as u64;
    assert_eq!(x.anomalies["read_your_write"].reads, ryw);
    assert!(ryw >= answered.len() as u64);
    assert_eq!(one.run.code, 1, "FAIL by the readers: {}", one.explain());
    assert!(
        one.run
            .result
            .verdict_reasons
            .iter()
            .any(|r| r.starts_with("read_anomalies")),
        "{:?}",
        one.run.result.verdict_reasons
    );
    eprintln!(
        "ONE through c3: {} reads, {} behind the cut ({} answered, all absent on both sides); read_your_write {ryw}; by delay {:?}",
        one.reads.len(),
        behind.len(),
        answered.len(),
        x.by_delay
            .iter()
            .map(|d| (d.delay_ms, d.answered, d.neither, d.both))
            .collect::<Vec<_>>()
    );

    let quorum = ReadRun::new(
        &s,
        &variant(
            &s,
            "cassandra-cluster-readers-one-partition",
            "cluster-readers-quorum-on-c3",
            "consistency = \"one\"\ncoordinator = \"c3\"",
            "consistency = \"quorum\"\ncoordinator = \"c3\"",
        ),
    );
    quorum.agrees_with_the_history();
    let behind = quorum.behind_the_cut();
    assert!(!behind.is_empty(), "{}", quorum.explain());
    for r in &behind {
        assert_ne!(r.outcome, Outcome::Ok, "c3 cannot reach a quorum: {r:?}");
        assert!(
            !r.primary.answered() && !r.secondary.answered(),
            "a side answered while c3 was cut off: {r:?}"
        );
    }
    eprintln!(
        "QUORUM through c3: {} reads behind the cut, none served (errors {:?})",
        behind.len(),
        quorum.readers().errors
    );
}

/// A cross-partition batch at QUORUM through c1, c3 cut off; the orders
/// partition read at QUORUM through c1, orders_by_customer at ONE through c3:
/// the batch is whole or absent at ALL, yet every answered read of an order
/// written after the cut, while it holds, sees half of it (primary only). Read
/// at QUORUM through c1 on both sides, no read of an acknowledged batch is
/// partial.
#[test]
fn a_cross_partition_batch_read_through_two_nodes_shows_half_of_it_while_a_replica_is_cut_off() {
    let _guard = lock();
    let s = Scratch::new();
    let split = ReadRun::new(
        &s,
        &scenario("cassandra-cluster-readers-batch-cross-partition"),
    );
    let c = split.run.checker();
    assert_eq!((c.orphans, c.ghosts), (0, 0), "{}", split.explain());
    split.agrees_with_the_history();
    let x = split.readers();
    // QUORUM after a QUORUM acknowledgement: the primary is always there.
    assert_eq!(
        x.anomalies["read_your_write"].reads,
        0,
        "{}",
        split.explain()
    );
    for r in split.reads.iter().filter(|r| r.write == Outcome::Ok) {
        assert_ne!(r.primary, Seen::Absent, "{r:?}");
    }
    let behind = split.behind_the_cut();
    let answered: Vec<&&ReadEntry> = behind.iter().filter(|r| r.outcome == Outcome::Ok).collect();
    // Batches stall until c1 convicts c3 (the batchlog wants two other nodes
    // while it thinks c3 alive: about 20 s here). Once a second's worth of
    // batches written after the cut began was acknowledged early enough for
    // the 0, 1 and 5 s reads to fall inside it, the readers must have read some.
    let (cut_start, cut_end) = split.cut_us();
    let readable = split.run.count(|e| {
        e.outcome == Outcome::Ok && e.start_us >= cut_start && e.end_us + 6_000_000 < cut_end
    });
    eprintln!(
        "{readable} batches written after the cut were acknowledged 6 s or more before its end"
    );
    if readable >= 20 {
        assert!(
            !answered.is_empty(),
            "no answered read behind the cut: {}",
            split.explain()
        );
    }
    for r in &answered {
        assert_eq!(
            (r.primary, r.secondary),
            (Seen::Seen, Seen::Absent),
            "{r:?}"
        );
    }
    let partial = split.partial_acknowledged();
    assert!(partial >= answered.len() as u64);
    assert_eq!(
        split.run.code,
        1,
        "FAIL by the readers: {}",
        split.explain()
    );
    eprintln!(
        "batch read through c1 (QUORUM) and c3 (ONE): {} reads, {} answered behind the cut, all half; partial reads of acknowledged orders {partial}; by delay {:?}",
        split.reads.len(),
        answered.len(),
        x.by_delay
            .iter()
            .map(|d| (d.delay_ms, d.answered, d.partial_fraction))
            .collect::<Vec<_>>()
    );

    let whole = ReadRun::new(
        &s,
        &variant(
            &s,
            "cassandra-cluster-readers-batch-cross-partition",
            "cluster-readers-batch-quorum",
            "consistency = \"one\"\ncoordinator = \"c3\"",
            "consistency = \"quorum\"\ncoordinator = \"c1\"",
        ),
    );
    let c = whole.run.checker();
    assert_eq!((c.orphans, c.ghosts), (0, 0), "{}", whole.explain());
    whole.agrees_with_the_history();
    assert_eq!(whole.partial_acknowledged(), 0, "{}", whole.explain());
    let answered = whole
        .reads
        .iter()
        .filter(|r| r.write == Outcome::Ok && r.outcome == Outcome::Ok)
        .collect::<Vec<_>>();
    assert!(!answered.is_empty(), "{}", whole.explain());
    for r in &answered {
        assert_eq!((r.primary, r.secondary), (Seen::Seen, Seen::Seen), "{r:?}");
    }
    eprintln!(
        "batch read at QUORUM through c1 on both sides: {} answered reads of acknowledged batches, none partial",
        answered.len()
    );
}
