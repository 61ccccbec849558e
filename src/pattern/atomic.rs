//! Patterns whose application write is one atomic call of one store — a
//! transaction, a logged batch, the order written with its outbox entry, or (for
//! `streams`) the order alone — written once: the store supplies the call
//! ([`AtomicWrite`]), this module supplies the application around it: retries with
//! backoff and jitter on what the store classifies as retryable, `on_conflict`,
//! and the outcome rule.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Instant;

use super::outcome::{Attempt, SideLedger, operation_outcome};
use super::{OnConflict, Pattern};
use crate::backoff;
use crate::history::{OpReport, SideOutcome};
use crate::order::Order;
use crate::store::{SideStore, now_micros};
use crate::writer::Writer;

/// Which sides one atomic write covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Covers {
    /// Both sides in one call (transaction, logged batch).
    Both,
    /// The primary side; the secondary is written later by a relay (outbox, streams).
    PrimaryThenRelay,
}

/// What one attempt may need besides the order.
#[derive(Debug)]
pub struct AttemptContext {
    /// The operation's client timestamp (microseconds), the same for every attempt.
    pub timestamp_us: i64,
    /// When the operation's first attempt started.
    pub started: Instant,
    /// Retries spent so far, by this loop and inside attempts (a transaction's
    /// commit retried on its own counts here too).
    pub retries: u32,
}

/// One call of a store that writes atomically.
#[async_trait]
pub trait AtomicWrite: Send + Sync {
    fn covers(&self) -> Covers;
    /// One attempt; never panics, errors are the attempt's failure.
    async fn attempt(&self, order: &Order, ctx: &mut AttemptContext) -> Attempt;
}

/// `streams`: the application writes the order alone; the change feed does the rest.
pub struct PrimaryAlone(pub Arc<dyn SideStore>);

#[async_trait]
impl AtomicWrite for PrimaryAlone {
    fn covers(&self) -> Covers {
        Covers::PrimaryThenRelay
    }

    async fn attempt(&self, order: &Order, ctx: &mut AttemptContext) -> Attempt {
        self.0.write_order(order, ctx.timestamp_us).await
    }
}

pub struct AtomicWriter {
    pub write: Arc<dyn AtomicWrite>,
    pub pattern: Pattern,
}

#[async_trait]
impl Writer for AtomicWriter {
    async fn write(&self, order: &Order) -> OpReport {
        let mut ctx = AttemptContext {
            timestamp_us: now_micros(),
            started: Instant::now(),
            retries: 0,
        };
        let mut ledger = SideLedger::default();
        let mut dropped = false;
        loop {
            let attempt = self.write.attempt(order, &mut ctx).await;
            let retryable = match &attempt {
                Attempt::Indeterminate(_) => true,
                other => other.failure().is_some_and(|f| f.retryable),
            };
            let conflict = attempt.failure().is_some_and(|f| f.conflict);
            if ledger.add(attempt) {
                break;
            }
            // Log-and-drop: the handler logs the conflict and answers success, so
            // the order is silently lost (a lost ack on both sides).
            if conflict && self.pattern.on_conflict == OnConflict::Drop {
                dropped = true;
                break;
            }
            if retryable && ctx.retries < self.pattern.retries {
                ctx.retries += 1;
                tokio::time::sleep(backoff::delay(self.pattern.backoff, ctx.retries)).await;
                continue;
            }
            break;
        }
        let side = ledger.outcome();
        let (primary, secondary) = match self.write.covers() {
            Covers::Both => (side, side),
            // Whatever may have landed carries its event: the relay may publish it.
            Covers::PrimaryThenRelay if side == SideOutcome::Fail => (side, SideOutcome::Skipped),
            Covers::PrimaryThenRelay => (side, SideOutcome::Async),
        };
        let failure = (!ledger.applied()).then(|| ledger.last_failure()).flatten();
        OpReport {
            outcome: operation_outcome(ledger.applied() || dropped, primary, secondary),
            error: failure.map(|f| f.class.clone()),
            primary,
            secondary,
            retries: ctx.retries,
            detail: failure.map(|f| f.detail.clone()),
        }
    }
}
