//! The relay: the background worker of async patterns (outbox relay, stream
//! consumer). It is part of the system under test, so it can be crashed on purpose:
//! by the fault schedule (`relay-crash`: aborted, restarted after the window) or by
//! its own crash policy (between publishing and marking/checkpointing).
//!
//! Stores supply a [`RelayWorker`]; this module supervises it and records deliveries
//! for time-to-consistency.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::order::splitmix64;
use crate::pattern::RelayOptions;

/// The longest one `pending` check may take (each store bounds its own calls
/// too; this is the supervisor's guarantee whatever the store does).
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a worker returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayExit {
    /// A simulated crash (after publishing, before marking/checkpointing).
    Crashed,
    /// Nothing more to do (only used by tests; normal workers run until aborted).
    Stopped,
}

#[async_trait]
pub trait RelayWorker: Send + Sync {
    /// Runs worker number `worker` until it crashes or is aborted. Progress that must
    /// survive a crash (checkpoints, claims) lives in the store or in `self`, never
    /// only in this future.
    async fn run(&self, worker: u32, ctx: RelayContext) -> anyhow::Result<RelayExit>;

    /// Events written to the primary but not yet published (0 = drained).
    async fn pending(&self) -> anyhow::Result<u64>;
}

/// Handed to each worker run.
#[derive(Clone)]
pub struct RelayContext {
    delivered: mpsc::UnboundedSender<(u64, Instant)>,
    options: RelayOptions,
    events: Arc<AtomicU64>,
    seed: u64,
}

impl RelayContext {
    /// Reports that the order's event reached the secondary side.
    pub fn delivered(&self, order_id: u64) {
        let _ = self.delivered.send((order_id, Instant::now()));
    }

    /// Asked after publishing and before marking: whether to crash here.
    pub fn should_crash(&self) -> bool {
        let n = self.events.fetch_add(1, Ordering::Relaxed) + 1;
        if self.options.crash_every > 0 && n.is_multiple_of(self.options.crash_every) {
            return true;
        }
        if self.options.crash_probability > 0.0 {
            let draw = splitmix64(self.seed ^ n) as f64 / u64::MAX as f64;
            return draw < self.options.crash_probability;
        }
        false
    }

    pub fn options(&self) -> &RelayOptions {
        &self.options
    }
}

/// Relay figures for the result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RelayStats {
    pub workers: u32,
    pub delivered: u64,
    /// Simulated crashes from the crash policy.
    pub self_crashes: u64,
    /// Crashes from `relay-crash` faults.
    pub fault_crashes: u64,
    pub errors: u64,
    /// Pending events when the load stopped.
    pub pending_at_load_end: u64,
    /// Pending events when the checker started (0 = drained).
    pub pending_at_check: u64,
    pub drained: bool,
    /// Time from the load's end until drained, milliseconds.
    pub drain_ms: u64,
}

/// Supervises the workers of one relay.
pub struct Relay {
    worker: Arc<dyn RelayWorker>,
    options: RelayOptions,
    seed: u64,
    tasks: Vec<JoinHandle<()>>,
    tx: mpsc::UnboundedSender<(u64, Instant)>,
    rx: mpsc::UnboundedReceiver<(u64, Instant)>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    self_crashes: AtomicU64,
    errors: AtomicU64,
    events: Arc<AtomicU64>,
    last_error: Mutex<Option<String>>,
}

impl Relay {
    pub fn start(worker: Arc<dyn RelayWorker>, options: RelayOptions, seed: u64) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut relay = Self {
            worker,
            options,
            seed,
            tasks: Vec::new(),
            tx,
            rx,
            shared: Arc::default(),
        };
        relay.spawn();
        relay
    }

    fn spawn(&mut self) {
        for i in 0..self.options.workers {
            let worker = self.worker.clone();
            let shared = self.shared.clone();
            let ctx = RelayContext {
                delivered: self.tx.clone(),
                options: self.options.clone(),
                events: shared.events.clone(),
                seed: self.seed ^ u64::from(i),
            };
            let pause = self.options.poll_interval;
            self.tasks.push(tokio::spawn(async move {
                loop {
                    match worker.run(i, ctx.clone()).await {
                        Ok(RelayExit::Crashed) => {
                            shared.self_crashes.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(RelayExit::Stopped) => return,
                        Err(e) => {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                            *shared.last_error.lock().unwrap() = Some(format!("{e:#}"));
                        }
                    }
                    // A restarted process does not come back instantly.
                    tokio::time::sleep(pause.max(Duration::from_millis(50))).await;
                }
            }));
        }
    }

    /// A `relay-crash` fault: every worker dies now, mid-flight.
    pub fn crash(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// Restart after a `relay-crash` window.
    pub fn restart(&mut self) {
        if self.tasks.is_empty() {
            self.spawn();
        }
    }

    pub fn is_running(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// Events not yet published, asked of the store within [`PENDING_TIMEOUT`]: a
    /// black-holed relay path makes this an error, never a hang.
    pub async fn pending(&self) -> anyhow::Result<u64> {
        self.pending_within(PENDING_TIMEOUT).await
    }

    async fn pending_within(&self, limit: Duration) -> anyhow::Result<u64> {
        match tokio::time::timeout(limit, self.worker.pending()).await {
            Ok(r) => r,
            Err(_) => anyhow::bail!("the relay's pending count did not answer within {limit:?}"),
        }
    }

    /// Waits until nothing is pending, for at most `limit`. Returns whether drained.
    pub async fn wait_drained(&self, limit: Duration) -> (bool, u64) {
        let deadline = Instant::now() + limit;
        let mut last = u64::MAX;
        loop {
            // A check never outlives the settle deadline by more than a moment.
            let left = deadline.saturating_duration_since(Instant::now());
            let limit = left.clamp(Duration::from_millis(500), PENDING_TIMEOUT);
            match self.pending_within(limit).await {
                Ok(0) => return (true, 0),
                Ok(n) => last = n,
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                return (false, last);
            }
            tokio::time::sleep(
                self.options
                    .poll_interval
                    .clamp(Duration::from_millis(20), Duration::from_millis(250)),
            )
            .await;
        }
    }

    /// Stops the workers and returns every delivery seen (order id, when).
    pub fn stop(mut self) -> (Vec<(u64, Instant)>, RelayStats) {
        self.crash();
        drop(self.tx);
        let mut deliveries = Vec::new();
        while let Ok(d) = self.rx.try_recv() {
            deliveries.push(d);
        }
        let stats = RelayStats {
            workers: self.options.workers,
            delivered: deliveries.len() as u64,
            self_crashes: self.shared.self_crashes.load(Ordering::Relaxed),
            errors: self.shared.errors.load(Ordering::Relaxed),
            ..RelayStats::default()
        };
        (deliveries, stats)
    }

    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay whose store never answers the pending count (a black-holed path
    /// whose driver has no timeout of its own).
    struct Unanswered;

    #[async_trait]
    impl RelayWorker for Unanswered {
        async fn run(&self, _worker: u32, _ctx: RelayContext) -> anyhow::Result<RelayExit> {
            Ok(RelayExit::Stopped)
        }
        async fn pending(&self) -> anyhow::Result<u64> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn the_drain_wait_ends_at_its_deadline_even_if_pending_never_answers() {
        let relay = Relay::start(Arc::new(Unanswered), RelayOptions::default(), 1);
        let started = Instant::now();
        let (drained, pending) = relay.wait_drained(Duration::from_secs(1)).await;
        assert!(!drained);
        assert_eq!(pending, u64::MAX);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}
