//! The read statistics on hand-built read histories: every count is the one the
//! reads prove, worked out by hand in the comments.

use super::*;
use crate::history::{OpSummary, SideOutcome};

/// A read of order `id` at `delay_ms`, starting at `start_ms` and taking 2 ms.
fn read(
    n: u64,
    id: u64,
    delay_ms: u64,
    write: Outcome,
    start_ms: u64,
    p: Seen,
    s: Seen,
) -> ReadEntry {
    let start_us = start_ms * 1000;
    ReadEntry {
        n,
        id,
        delay_ms,
        write,
        planned_us: start_us,
        start_us,
        end_us: start_us + 2000,
        outcome: ReadEntry::outcome_of(p, s),
        primary: p,
        secondary: s,
        primary_copies: u32::from(p == Seen::Seen),
        secondary_copies: u32::from(s == Seen::Seen),
        primary_error: (!p.answered()).then(|| "refused".into()),
        secondary_error: (!s.answered()).then(|| "refused".into()),
    }
}

/// Equal within hdrhistogram's precision (3 significant digits).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= b * 0.001
}

fn history(ops: &[(u64, Outcome, u32)]) -> History {
    let mut h = History::default();
    for (id, outcome, intended_ms) in ops {
        h.record(
            *id,
            OpSummary::new(*outcome, SideOutcome::Ok, SideOutcome::Async, *intended_ms),
        );
    }
    h
}

use Outcome::{Fail, Ok as Acked, Unknown};
use Seen::{Absent, Fail as NotServed, Seen as Yes, Unknown as Lost};

#[test]
fn a_relay_lag_shows_as_primary_only_reads_that_fall_with_the_delay() {
    // Four acknowledged orders written at 0, 100, 200, 300 ms (answered 10 ms
    // later); the relay publishes each 50 ms after its write. Read at +0 ms (the
    // event is not there yet, except order 3's: the relay was quick) and +100 ms.
    let h = history(&[
        (0, Acked, 0),
        (1, Acked, 100),
        (2, Acked, 200),
        (3, Acked, 300),
    ]);
    let reads = vec![
        read(0, 0, 0, Acked, 10, Yes, Absent),
        read(1, 0, 100, Acked, 110, Yes, Yes),
        read(2, 1, 0, Acked, 110, Yes, Absent),
        read(3, 1, 100, Acked, 210, Yes, Yes),
        read(4, 2, 0, Acked, 210, Yes, Absent),
        read(5, 2, 100, Acked, 310, Yes, Yes),
        read(6, 3, 0, Acked, 310, Yes, Yes),
        read(7, 3, 100, Acked, 410, Yes, Yes),
    ];
    let r = summarize(&reads, &h, &[0, 100, 1000]);
    assert_eq!(r.by_delay.len(), 3, "every planned delay has its entry");
    let d0 = &r.by_delay[0];
    assert_eq!((d0.answered, d0.both, d0.primary_only), (4, 1, 3));
    assert_eq!(d0.partial_fraction, Some(0.75));
    assert_eq!(d0.both_fraction, Some(0.25));
    let d100 = &r.by_delay[1];
    assert_eq!((d100.both, d100.partial_fraction), (4, Some(0.0)));
    assert_eq!(r.by_delay[2].partial_fraction, None, "no read at 1 s");
    assert_eq!(r.partial_fraction_at(0), Some(0.75));
    assert_eq!(r.partial_reads(), 3);
    // First read that saw both, from the write's intended start: orders 0-2 at
    // their +100 ms read (ended 112 ms after the intended start), order 3 at
    // its +0 ms read (ended 12 ms after).
    let t = &r.time_to_consistency_ms;
    assert_eq!(t.count, 4);
    // (hdrhistogram keeps 3 significant digits: 112 ms reads back as 112.063.)
    assert!(close(t.p50, 112.0) && close(t.max, 112.0), "{t:?}");
    assert!(t.mean > 80.0 && t.mean < 90.0, "{t:?}"); // (3 x 112 + 12) / 4 = 87
    assert_eq!(r.never_consistent, 0);
    assert_eq!(r.anomalous_reads(), 0, "{:?}", r.anomalies);
    assert_eq!(
        (r.reads.total, r.reads.ok, r.reads.late),
        (8, 8, 0),
        "{:?}",
        r.reads
    );
    // Reads by start second: all in second 0; 3 partial of 8.
    assert_eq!(r.timeline.len(), 1);
    assert_eq!((r.timeline[0].reads, r.timeline[0].partial), (8, 3));
}

#[test]
fn unanswered_reads_are_counted_apart_from_what_answered_reads_saw() {
    // The secondary is down: its reads are refused (fail) or lost (unknown).
    // Only the answered read counts in the fractions.
    let h = history(&[(0, Acked, 0), (1, Acked, 0), (2, Acked, 0)]);
    let reads = vec![
        read(0, 0, 0, Acked, 10, Yes, NotServed),
        read(1, 1, 0, Acked, 10, Yes, Lost),
        read(2, 2, 0, Acked, 1500, Yes, Absent),
    ];
    let r = summarize(&reads, &h, &[0]);
    let d = &r.by_delay[0];
    assert_eq!((d.reads, d.answered, d.fail, d.unknown), (3, 1, 1, 1));
    assert_eq!((d.primary_only, d.partial_fraction), (1, Some(1.0)));
    assert_eq!((r.reads.fail, r.reads.unknown), (1, 1));
    assert_eq!(r.errors["secondary refused"], 2);
    // Never seen on both sides: all three (two never answered, one orphan).
    assert_eq!(r.never_consistent, 3);
    assert_eq!(r.never_consistent_samples[0], "o000000000000");
    assert_eq!(r.time_to_consistency_ms.count, 0);
    // Seconds 0 (two unanswered) and 1 (one partial).
    assert_eq!(r.timeline.len(), 2);
    assert_eq!((r.timeline[0].unanswered, r.timeline[0].answered), (2, 0));
    assert_eq!((r.timeline[1].answered, r.timeline[1].partial), (1, 1));
}

#[test]
fn anomalies_are_named_with_their_orders() {
    let h = history(&[
        (0, Acked, 0),
        (1, Unknown, 0),
        (2, Fail, 0),
        (3, Acked, 0),
        (4, Unknown, 0),
    ]);
    let reads = vec![
        // Order 0, acknowledged, not on its primary: a read-your-write violation.
        read(0, 0, 0, Acked, 10, Absent, Absent),
        // Order 1 (unknown): the event without the order, a visible ghost (not a
        // read-your-write violation: the write was not acknowledged).
        read(1, 1, 0, Unknown, 10, Absent, Yes),
        // Order 2 failed for certain, yet its order is visible.
        read(2, 2, 0, Fail, 10, Yes, Absent),
        // Order 3: seen on the secondary at 10-12 ms, gone in a read started at 20 ms.
        read(3, 3, 0, Acked, 10, Yes, Yes),
        read(4, 3, 10, Acked, 20, Yes, Absent),
        // Order 4: a read concurrent with one that saw it (started at 11 ms,
        // before that one ended at 12 ms) proves nothing.
        read(5, 4, 0, Unknown, 10, Yes, Yes),
        read(6, 4, 1, Unknown, 11, Yes, Absent),
    ];
    let r = summarize(&reads, &h, &[0]);
    let a = |name: &str| &r.anomalies[name];
    assert_eq!(
        r.anomalies.len(),
        4,
        "every name present: {:?}",
        r.anomalies
    );
    assert_eq!(
        (
            a("read_your_write").reads,
            a("read_your_write").samples.clone()
        ),
        (1, vec!["o000000000000".to_string()])
    );
    assert_eq!(a("visible_ghost").samples, ["o000000000001"]);
    assert_eq!(a("failed_write_visible").samples, ["o000000000002"]);
    assert_eq!(
        (a("non_monotonic").reads, a("non_monotonic").orders),
        (1, 1)
    );
    assert_eq!(a("non_monotonic").samples, ["o000000000003"]);
    assert_eq!(r.anomalous_reads(), 4);
    // A failed or unknown write's reads are reported apart.
    assert_eq!(
        r.unacknowledged_by_delay
            .iter()
            .map(|d| d.reads)
            .sum::<u64>(),
        4
    );
    assert_eq!(r.by_delay.iter().map(|d| d.reads).sum::<u64>(), 3);
}

#[test]
fn a_transaction_seen_whole_has_no_partial_read_and_late_reads_are_counted() {
    let h = history(&[(0, Acked, 0), (1, Unknown, 0)]);
    let mut late = read(2, 0, 0, Acked, 100, Yes, Yes);
    late.planned_us = 50_000; // started 50 ms after its planned time
    let reads = vec![
        read(0, 0, 10, Acked, 10, Yes, Yes),
        read(1, 1, 0, Unknown, 10, Absent, Absent),
        late,
    ];
    let r = summarize(&reads, &h, &[0, 10]);
    assert_eq!(r.partial_reads(), 0);
    assert_eq!(r.unacknowledged_by_delay[0].neither, 1);
    assert_eq!(r.unacknowledged_by_delay[0].neither_fraction, Some(1.0));
    assert_eq!((r.reads.late, r.reads.max_late_ms), (1, 50.0));
    // Latency from the planned start: 2, 2 and 52 ms.
    assert!(close(r.latency_ms.max, 52.0), "{:?}", r.latency_ms);
}
