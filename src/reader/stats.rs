//! What the reads add up to: a pure function of the reads and the history (so it
//! can be recomputed from `reads.jsonl` and `history.jsonl`). Per delay, the
//! share of answered reads that saw both sides, the primary only, the secondary
//! only, neither; the reader-side time to consistency; anomalies by name.

use hdrhistogram::Histogram;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::LATE_MS;
use super::entry::{ReadEntry, Seen};
use crate::history::{History, Outcome};
use crate::order::order_key;
use crate::result::{Anomaly, DelayReads, Latency, ReadOps, ReadSecond, ReadersResult};

/// Anomaly names, in report order.
pub const ANOMALIES: [&str; 4] = [
    "read_your_write",
    "visible_ghost",
    "non_monotonic",
    "failed_write_visible",
];

const SAMPLES: usize = 10;

/// The measured part of the readers' result (`plan` and `followed` are the
/// workload's to fill). `delays_ms` lists every planned delay, so a delay no
/// read completed still has its (empty) entry.
pub fn summarize(reads: &[ReadEntry], history: &History, delays_ms: &[u64]) -> ReadersResult {
    let mut acked: BTreeMap<u64, DelayReads> = BTreeMap::new();
    let mut unacked: BTreeMap<u64, DelayReads> = BTreeMap::new();
    for d in delays_ms {
        for m in [&mut acked, &mut unacked] {
            m.insert(
                *d,
                DelayReads {
                    delay_ms: *d,
                    ..DelayReads::default()
                },
            );
        }
    }
    let mut ops = ReadOps::default();
    let mut latency = histogram();
    let mut timeline: Vec<ReadSecond> = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for r in reads {
        ops.total += 1;
        match r.outcome {
            Outcome::Ok => ops.ok += 1,
            Outcome::Fail => ops.fail += 1,
            Outcome::Unknown => ops.unknown += 1,
        }
        let late_us = r.start_us.saturating_sub(r.planned_us);
        if late_us > LATE_MS * 1000 {
            ops.late += 1;
        }
        ops.max_late_ms = ops.max_late_ms.max(late_us as f64 / 1000.0);
        latency.saturating_record(r.end_us.saturating_sub(r.planned_us).max(1));
        for (side, e) in [
            ("primary", &r.primary_error),
            ("secondary", &r.secondary_error),
        ] {
            if let Some(e) = e {
                *errors.entry(format!("{side} {e}")).or_default() += 1;
            }
        }
        let by = if r.write == Outcome::Ok {
            &mut acked
        } else {
            &mut unacked
        };
        let d = by.entry(r.delay_ms).or_insert_with(|| DelayReads {
            delay_ms: r.delay_ms,
            ..DelayReads::default()
        });
        add(d, r);
        if r.write == Outcome::Ok {
            let t = (r.start_us / 1_000_000) as usize;
            while timeline.len() <= t {
                timeline.push(ReadSecond {
                    t: timeline.len() as u64,
                    ..ReadSecond::default()
                });
            }
            let s = &mut timeline[t];
            s.reads += 1;
            if r.answered() {
                s.answered += 1;
                s.partial += u64::from(partial(r));
            } else {
                s.unanswered += 1;
            }
        }
    }
    ops.max_late_ms = (ops.max_late_ms * 1000.0).round() / 1000.0;
    let (ttc, never, never_samples) = time_to_consistency(reads, history);
    ReadersResult {
        reads: ops,
        latency_ms: Latency::from_us(&latency),
        by_delay: acked.into_values().map(fractions).collect(),
        unacknowledged_by_delay: unacked.into_values().map(fractions).collect(),
        time_to_consistency_ms: Latency::from_us(&ttc),
        never_consistent: never,
        never_consistent_samples: never_samples,
        anomalies: anomalies(reads),
        timeline,
        errors,
        ..ReadersResult::default()
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

fn partial(r: &ReadEntry) -> bool {
    r.answered() && ((r.primary == Seen::Seen) != (r.secondary == Seen::Seen))
}

fn add(d: &mut DelayReads, r: &ReadEntry) {
    d.reads += 1;
    match r.outcome {
        Outcome::Fail => d.fail += 1,
        Outcome::Unknown => d.unknown += 1,
        Outcome::Ok => {
            d.answered += 1;
            match (r.primary == Seen::Seen, r.secondary == Seen::Seen) {
                (true, true) => d.both += 1,
                (true, false) => d.primary_only += 1,
                (false, true) => d.secondary_only += 1,
                (false, false) => d.neither += 1,
            }
        }
    }
}

fn fractions(mut d: DelayReads) -> DelayReads {
    let of = |n: u64| {
        (d.answered > 0).then(|| (n as f64 / d.answered as f64 * 10_000.0).round() / 10_000.0)
    };
    d.both_fraction = of(d.both);
    d.primary_only_fraction = of(d.primary_only);
    d.secondary_only_fraction = of(d.secondary_only);
    d.neither_fraction = of(d.neither);
    d.partial_fraction = of(d.primary_only + d.secondary_only);
    d
}

/// For each followed acknowledged order: from its intended start (the history)
/// to the end of the first read that saw both sides; and the orders never seen
/// on both.
fn time_to_consistency(
    reads: &[ReadEntry],
    history: &History,
) -> (Histogram<u64>, u64, Vec<String>) {
    let mut first_both: BTreeMap<u64, Option<u64>> = BTreeMap::new();
    for r in reads.iter().filter(|r| r.write == Outcome::Ok) {
        let slot = first_both.entry(r.id).or_default();
        if r.answered() && r.primary == Seen::Seen && r.secondary == Seen::Seen {
            *slot = Some(slot.map_or(r.end_us, |e| e.min(r.end_us)));
        }
    }
    let mut ttc = histogram();
    let mut never = Vec::new();
    for (id, end) in first_both {
        match (end, history.get(id)) {
            (Some(end), Some(op)) => {
                let intended = u64::from(op.intended_ms) * 1000;
                ttc.saturating_record(end.saturating_sub(intended).max(1));
            }
            (Some(_), None) => {}
            (None, _) => never.push(id),
        }
    }
    let count = never.len() as u64;
    let samples = never.into_iter().take(SAMPLES).map(order_key).collect();
    (ttc, count, samples)
}

/// The anomalies, each a set of reads:
/// - `read_your_write`: an acknowledged order not visible on its primary;
/// - `visible_ghost`: the secondary record visible while the primary's is not;
/// - `non_monotonic`: a side showed the record, and a read that started after
///   that read ended did not;
/// - `failed_write_visible`: a record of a write the history says certainly
///   did not apply (`fail`) is visible on either side.
fn anomalies(reads: &[ReadEntry]) -> BTreeMap<String, Anomaly> {
    let mut found: BTreeMap<&str, (u64, BTreeSet<u64>)> =
        ANOMALIES.iter().map(|n| (*n, Default::default())).collect();
    let mut mark = |name: &'static str, id: u64| {
        let e = found.get_mut(name).expect("a known anomaly");
        e.0 += 1;
        e.1.insert(id);
    };
    for r in reads {
        if r.write == Outcome::Ok && r.primary == Seen::Absent {
            mark("read_your_write", r.id);
        }
        if r.secondary == Seen::Seen && r.primary == Seen::Absent {
            mark("visible_ghost", r.id);
        }
        if r.write == Outcome::Fail && (r.primary == Seen::Seen || r.secondary == Seen::Seen) {
            mark("failed_write_visible", r.id);
        }
    }
    let mut by_order: HashMap<u64, Vec<&ReadEntry>> = HashMap::new();
    for r in reads {
        by_order.entry(r.id).or_default().push(r);
    }
    let mut ids: Vec<u64> = by_order.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let order = by_order.get_mut(&id).expect("listed");
        order.sort_by_key(|r| (r.start_us, r.n));
        // Per side: the earliest end of a read (started earlier) that saw it.
        let mut seen_by: [Option<u64>; 2] = [None, None];
        for r in order.iter() {
            let sides = [r.primary, r.secondary];
            let flipped = (0..2).any(|i| {
                sides[i] == Seen::Absent && seen_by[i].is_some_and(|end| end <= r.start_us)
            });
            if flipped {
                mark("non_monotonic", id);
            }
            for i in 0..2 {
                if sides[i] == Seen::Seen {
                    seen_by[i] = Some(seen_by[i].map_or(r.end_us, |e| e.min(r.end_us)));
                }
            }
        }
    }
    found
        .into_iter()
        .map(|(name, (reads, ids))| {
            (
                name.to_string(),
                Anomaly {
                    reads,
                    orders: ids.len() as u64,
                    samples: ids.iter().take(SAMPLES).map(|id| order_key(*id)).collect(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
