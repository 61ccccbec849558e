//! The checker: after the run and the settle period, compares full scans of both
//! sides with each other and with the history, and counts each category of
//! divergence (docs/RESULTS.md "checker"). Pure arithmetic over sorted records: stores only scan.
//!
//! Memory: 24 bytes per scanned record, 8 per operation, plus a bitmap.

use std::collections::BTreeMap;

use crate::fault::FaultWindow;
use crate::history::{History, OpSummary, Outcome};
pub use crate::result::{Attribution, CATEGORIES, CheckerReport, Landed};
use crate::scenario::Field;
use crate::store::{Record, ScanSink};

/// Sample ids kept per category.
pub const SAMPLES: usize = 10;

/// A [`ScanSink`] that keeps every record (24 bytes each).
#[derive(Debug, Default)]
pub struct CollectedScan {
    pub records: Vec<Record>,
    pub foreign: u64,
    pub foreign_samples: Vec<String>,
}

impl ScanSink for CollectedScan {
    fn record(&mut self, record: Record) {
        self.records.push(record);
    }
    fn foreign(&mut self, key: &str) {
        self.foreign += 1;
        if self.foreign_samples.len() < SAMPLES {
            self.foreign_samples.push(key.to_string());
        }
    }
}

/// Known causes of extra copies, by order id (a relay's crash between publishing
/// it and marking it, an outbox flag set again): a duplicate of such an order is
/// attributed to its cause rather than to whatever window its write fell in.
pub type Causes = BTreeMap<u64, String>;

/// Compares both sides with each other and with the history.
pub fn check(
    mut primary: CollectedScan,
    mut secondary: CollectedScan,
    history: &History,
    fields: &[Field],
    windows: &[FaultWindow],
    causes: &Causes,
) -> CheckerReport {
    primary.records.sort_unstable();
    secondary.records.sort_unstable();
    let mut r = CheckerReport {
        scanned_primary: primary.records.len() as u64 + primary.foreign,
        scanned_secondary: secondary.records.len() as u64 + secondary.foreign,
        strays: primary.foreign + secondary.foreign,
        ..CheckerReport::default()
    };
    for key in primary
        .foreign_samples
        .iter()
        .chain(&secondary.foreign_samples)
    {
        sample(&mut r, "strays", key.clone());
    }
    let mut seen = vec![0u64; history.len().div_ceil(64)];
    let (p, s) = (&primary.records, &secondary.records);
    let (mut i, mut j) = (0, 0);
    while i < p.len() || j < s.len() {
        let id = match (p.get(i), s.get(j)) {
            (Some(a), Some(b)) => a.order_id.min(b.order_id),
            (Some(a), None) => a.order_id,
            (None, Some(b)) => b.order_id,
            (None, None) => unreachable!(),
        };
        let p_start = i;
        while i < p.len() && p[i].order_id == id {
            i += 1;
        }
        let s_start = j;
        while j < s.len() && s[j].order_id == id {
            j += 1;
        }
        let (on_p, on_s) = (&p[p_start..i], &s[s_start..j]);
        let Some(op) = history.get(id) else {
            r.strays += (on_p.len() + on_s.len()) as u64;
            sample(&mut r, "strays", crate::order::order_key(id));
            continue;
        };
        seen[id as usize / 64] |= 1 << (id % 64);
        let mut hit: Vec<&'static str> = Vec::new();
        if on_p.len() > 1 || on_s.len() > 1 {
            r.duplicates += (on_p.len().saturating_sub(1) + on_s.len().saturating_sub(1)) as u64;
            hit.push("duplicates");
        }
        match (on_p.first(), on_s.first()) {
            (Some(_), None) => {
                r.orphans += 1;
                hit.push("orphans");
            }
            (None, Some(_)) => {
                r.ghosts += 1;
                hit.push("ghosts");
            }
            (Some(a), Some(b)) => {
                if fields.iter().any(|f| differs(*f, a, b)) {
                    r.mismatches += 1;
                    hit.push("mismatches");
                }
            }
            (None, None) => unreachable!(),
        }
        match op.outcome() {
            Some(Outcome::Ok) if on_p.is_empty() || on_s.is_empty() => {
                r.lost_acks += 1;
                hit.push("lost_acks");
            }
            Some(Outcome::Fail) => r.ambiguous_fail.add(!on_p.is_empty(), !on_s.is_empty()),
            Some(Outcome::Unknown) => r.ambiguous_unknown.add(!on_p.is_empty(), !on_s.is_empty()),
            _ => {}
        }
        record_hits(&mut r, id, op, &hit, windows, causes);
    }
    // Operations found on neither side.
    for (id, op) in history.iter() {
        if seen[id as usize / 64] & (1 << (id % 64)) != 0 {
            continue;
        }
        match op.outcome() {
            Some(Outcome::Ok) => {
                r.lost_acks += 1;
                record_hits(&mut r, id, op, &["lost_acks"], windows, causes);
            }
            Some(Outcome::Fail) => r.ambiguous_fail.add(false, false),
            Some(Outcome::Unknown) => r.ambiguous_unknown.add(false, false),
            None => {}
        }
    }
    r.divergence = r.orphans + r.ghosts + r.duplicates + r.mismatches + r.lost_acks;
    r
}

fn differs(field: Field, a: &Record, b: &Record) -> bool {
    match field {
        Field::CustomerId => a.customer_id != b.customer_id,
        Field::AmountCents => a.amount_cents != b.amount_cents,
    }
}

fn sample(r: &mut CheckerReport, category: &str, id: String) {
    let v = r.samples.entry(category.to_string()).or_default();
    if v.len() < SAMPLES {
        v.push(id);
    }
}

fn record_hits(
    r: &mut CheckerReport,
    id: u64,
    op: &OpSummary,
    hit: &[&'static str],
    windows: &[FaultWindow],
    causes: &Causes,
) {
    let intended_ms = op.intended_ms;
    if hit.is_empty() {
        return;
    }
    r.divergent_ops += 1;
    let second = intended_ms as usize / 1000;
    if r.divergent_by_second.len() <= second {
        r.divergent_by_second.resize(second + 1, 0);
    }
    r.divergent_by_second[second] += 1;
    // The history keeps whole milliseconds (truncated): the end's millisecond
    // counts as a whole, so an operation ending 0.9 ms into a window is in it.
    let (from, to) = (
        u64::from(intended_ms),
        u64::from(op.end_ms.max(intended_ms)) + 1,
    );
    let active: Vec<String> = windows
        .iter()
        .filter(|w| w.overlaps_ms(from, to))
        .map(FaultWindow::label)
        .collect();
    let tails: Vec<String> = windows
        .iter()
        .filter(|w| !w.overlaps_ms(from, to) && w.tail_overlaps_ms(from, to))
        .map(FaultWindow::label)
        .collect();
    for category in hit {
        sample(r, category, crate::order::order_key(id));
        let a = r.attribution.entry(category.to_string()).or_default();
        // A duplicate is made when it is published, not when the order was
        // written: a known cause of the extra copy comes first.
        let cause = (*category == "duplicates")
            .then(|| causes.get(&id))
            .flatten();
        if let Some(cause) = cause {
            *a.causes.entry(cause.clone()).or_default() += 1;
        } else if !active.is_empty() {
            for label in &active {
                *a.windows.entry(label.clone()).or_default() += 1;
            }
        } else if !tails.is_empty() {
            for label in &tails {
                *a.recovery.entry(label.clone()).or_default() += 1;
            }
        } else {
            a.outside += 1;
        }
    }
}

/// Each window's recovery tail from the history: when the faulted side next
/// acknowledged a write after the window ended (process faults: either side).
pub fn recovery_tails(windows: &mut [FaultWindow], history: &History) {
    use crate::history::SideOutcome;
    use crate::scenario::Side;
    for w in windows.iter_mut() {
        let Some(end_s) = w.end_s else { continue };
        let end_ms = (end_s * 1000.0) as u32;
        let side_ok = |op: &OpSummary| match w.side {
            None => op.primary() == SideOutcome::Ok || op.secondary() == SideOutcome::Ok,
            Some(Side::Primary) => op.primary() == SideOutcome::Ok,
            Some(Side::Secondary) => op.secondary() == SideOutcome::Ok,
            // The relay's writes are not operations of the history.
            Some(Side::Relay) => false,
        };
        w.recovered_s = history
            .iter()
            .filter(|(_, op)| op.end_ms >= end_ms && side_ok(op))
            .map(|(_, op)| op.end_ms)
            .min()
            .map(|ms| f64::from(ms) / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::SideOutcome;

    fn rec(id: u64, amount: u64) -> Record {
        Record {
            order_id: id,
            customer_id: 1,
            amount_cents: amount,
        }
    }

    fn scan(records: Vec<Record>) -> CollectedScan {
        CollectedScan {
            records,
            ..Default::default()
        }
    }

    #[test]
    fn counts_every_category_exactly() {
        let mut h = History::default();
        for id in 0..8 {
            let outcome = if id == 6 {
                Outcome::Unknown
            } else {
                Outcome::Ok
            };
            h.record(
                id,
                OpSummary::new(outcome, SideOutcome::Ok, SideOutcome::Ok, id as u32 * 1000),
            );
        }
        // 0: fine; 1: orphan (+lost ack); 2: ghost (+lost ack); 3: duplicate on secondary;
        // 4: mismatch; 5: missing on both (lost ack); 6: unknown, landed on primary only
        // (orphan, not a lost ack); 7: fine. 99: stray.
        let p = scan(vec![
            rec(0, 1),
            rec(1, 1),
            rec(3, 1),
            rec(4, 1),
            rec(6, 1),
            rec(7, 1),
            rec(99, 1),
        ]);
        let s = scan(vec![
            rec(7, 1),
            rec(0, 1),
            rec(2, 1),
            rec(3, 1),
            rec(3, 1),
            rec(4, 2),
        ]);
        let windows = vec![FaultWindow {
            fault: 0,
            window: 0,
            kind: "down".into(),
            side: Some(crate::scenario::Side::Secondary),
            direction: "downstream".into(),
            toxicity: 1.0,
            proxy: None,
            server: None,
            nodes: None,
            planned_start_s: 1.0,
            planned_end_s: 2.0,
            start_s: Some(1.0),
            end_s: Some(2.0),
            recovered_s: None,
            error: None,
        }];
        let r = check(
            p,
            s,
            &h,
            &[Field::CustomerId, Field::AmountCents],
            &windows,
            &Causes::new(),
        );
        assert_eq!(r.orphans, 2);
        assert_eq!(r.ghosts, 1);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.mismatches, 1);
        assert_eq!(r.lost_acks, 3);
        assert_eq!(r.strays, 1);
        assert_eq!(r.divergence, 8);
        assert_eq!(r.divergent_ops, 6);
        assert_eq!(
            r.ambiguous_unknown,
            Landed {
                primary_only: 1,
                ..Landed::default()
            }
        );
        assert_eq!(r.samples["orphans"], vec!["o000000000001", "o000000000006"]);
        assert_eq!(r.attribution["orphans"].windows["#0.0 down@secondary"], 1);
        assert_eq!(r.attribution["orphans"].outside, 1);
    }

    #[test]
    fn comparing_no_fields_ignores_differences() {
        let mut h = History::default();
        h.record(
            0,
            OpSummary::new(Outcome::Ok, SideOutcome::Ok, SideOutcome::Ok, 0),
        );
        let r = check(
            scan(vec![rec(0, 1)]),
            scan(vec![rec(0, 2)]),
            &h,
            &[],
            &[],
            &Causes::new(),
        );
        assert_eq!(r.divergence, 0);
    }
}
