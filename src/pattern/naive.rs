//! `naive`, written once for every pair of sides: write the order to the primary
//! side, then its record to the secondary side, each a separate call that can fail
//! on its own. What happens when the second fails is the application's policy
//! (`on_secondary_failure`): log it and answer ok (the silent orphan), answer
//! failure, or retry with backoff first.

use async_trait::async_trait;
use std::sync::Arc;

use super::outcome::{SideLedger, operation_outcome};
use super::{OnSecondaryFailure, Pattern};
use crate::backoff;
use crate::history::{OpReport, SideOutcome};
use crate::order::Order;
use crate::store::{Record, SideStore, now_micros};
use crate::writer::Writer;

pub struct NaiveWriter {
    pub primary: Arc<dyn SideStore>,
    pub secondary: Arc<dyn SideStore>,
    pub pattern: Pattern,
}

#[async_trait]
impl Writer for NaiveWriter {
    async fn write(&self, order: &Order) -> OpReport {
        // One client timestamp per operation: a store that versions cells by it
        // (Cassandra) merges a retry into the same write.
        let ts = now_micros();
        let mut primary = SideLedger::default();
        primary.add(self.primary.write_order(order, ts).await);
        if !primary.applied() {
            return report(&primary, None, false, 0);
        }
        let record = Record::of(order);
        let policy = self.pattern.on_secondary_failure;
        let mut secondary = SideLedger::default();
        let mut retries = 0;
        loop {
            let attempt = self
                .secondary
                .write_event(&record, self.pattern.secondary_key, ts)
                .await;
            if secondary.add(attempt) {
                break;
            }
            if policy == OnSecondaryFailure::Retry && retries < self.pattern.retries {
                retries += 1;
                tokio::time::sleep(backoff::delay(self.pattern.backoff, retries)).await;
                continue;
            }
            break;
        }
        // Log-and-continue: the error is logged and the caller hears "ok".
        let told_ok = secondary.applied() || policy == OnSecondaryFailure::LogAndContinue;
        report(&primary, Some(&secondary), told_ok, retries)
    }
}

/// The operation's report from its sides' ledgers (`None` = not attempted).
fn report(
    primary: &SideLedger,
    secondary: Option<&SideLedger>,
    told_ok: bool,
    retries: u32,
) -> OpReport {
    let p = primary.outcome();
    let s = secondary.map_or(SideOutcome::Skipped, SideLedger::outcome);
    // The error of the side that did not apply (none when both did, even after retries).
    let failure = match secondary {
        Some(s) if !s.applied() => s.last_failure(),
        Some(_) => None,
        None => primary.last_failure(),
    };
    OpReport {
        outcome: operation_outcome(told_ok, p, s),
        error: failure.map(|f| f.class.clone()),
        primary: p,
        secondary: s,
        retries,
        detail: failure.map(|f| f.detail.clone()),
    }
}
