//! The relay: the background worker of async patterns (outbox relay, stream
//! consumer). It is part of the system under test, so it can be crashed on purpose:
//! by the fault schedule (`relay-crash`: aborted, restarted after the window) or by
//! its own crash policy (between publishing and marking/checkpointing).
//!
//! The relay loop is written once: a store supplies where events come from (its
//! change feed or outbox: a [`RelaySource`]), any side is where they go (the
//! sink, a `SideStore`), and [`work`] is what a worker does with them — publish,
//! the crash point, mark. [`Relay`] supervises the workers and records deliveries
//! for time to consistency.

use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::order::splitmix64;
use crate::pattern::outcome::Attempt;
use crate::pattern::{KeyPolicy, RelayOptions};
pub use crate::result::RelayStats;
use crate::store::{Record, SideStore};

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

/// The cause of a publication of an order whose outbox flag an application retry
/// set again after the relay had cleared it.
pub const REARMED: &str = "outbox re-armed by an application retry";

/// An event a source hands to a worker: what to publish, and the source's own
/// note of where it came from (a shard and sequence number, a claimed outbox key,
/// a resume token), given back to [`RelaySource::done`].
#[derive(Debug, Clone)]
pub struct SourceEvent {
    pub record: Record,
    pub position: String,
}

/// Where a relay reads from: a store's change feed or outbox. Progress that must
/// survive a crash (checkpoints, claims, resume tokens) lives in the source or in
/// the store, never only in a worker's future; what a worker holds in flight
/// (iterators, open streams) is dropped by [`RelaySource::start`].
#[async_trait]
pub trait RelaySource: Send + Sync {
    /// A worker (re)starts: forget what worker `worker` of `workers` had in flight.
    async fn start(&self, worker: u32, workers: u32) -> anyhow::Result<()>;

    /// The next events for this worker, claimed where the source needs claims;
    /// empty when there is nothing to do now.
    async fn next(&self, worker: u32) -> anyhow::Result<Vec<SourceEvent>>;

    /// These events are published: mark them / move the checkpoint past them.
    async fn done(&self, worker: u32, events: &[SourceEvent]) -> anyhow::Result<()>;

    /// Whether `next` hands out batches meant to be published and marked as one
    /// (one call each), rather than event by event.
    fn batches(&self) -> bool {
        false
    }

    /// Events written to the primary but not yet published (0 = drained).
    async fn pending(&self) -> anyhow::Result<u64>;

    /// Orders the source handed out again for a reason of its own, with the reason
    /// (an outbox flag set again after it was cleared: [`REARMED`]).
    fn causes(&self) -> Vec<(u64, &'static str)> {
        Vec::new()
    }
}

/// What one worker does until it crashes or fails: take events from the source,
/// publish each to the sink (keyed by the order when idempotent, fresh otherwise),
/// then — the crash point — mark it done. A crash between publishing and marking
/// leaves the event to be published again after the restart: a duplicate unless
/// the relay is idempotent.
pub async fn work(
    source: &dyn RelaySource,
    sink: &dyn SideStore,
    worker: u32,
    ctx: &RelayContext,
) -> anyhow::Result<RelayExit> {
    let options = ctx.options();
    let key = if options.idempotent {
        KeyPolicy::Stable
    } else {
        KeyPolicy::Fresh
    };
    source.start(worker, options.workers).await?;
    loop {
        let mut events = source.next(worker).await?;
        if events.is_empty() {
            tokio::time::sleep(options.poll_interval).await;
            continue;
        }
        if source.batches() {
            // Draw the crash point first: a crash at event k falls between
            // publishing k and marking it, so events up to k are published, those
            // before k marked, and k is handed out again after the restart.
            let crash_at = (0..events.len()).find(|_| ctx.should_crash());
            if let Some(k) = crash_at {
                events.truncate(k + 1);
            }
            let records: Vec<Record> = events.iter().map(|e| e.record).collect();
            let ids: Vec<u64> = records.iter().map(|r| r.order_id).collect();
            ctx.in_flight(&ids);
            published(sink.write_events(&records, key).await, "a batch")?;
            for r in &records {
                ctx.delivered(r.order_id);
            }
            if let Some(crashed) = crash_at.and_then(|_| events.pop()) {
                ctx.crashed_on(crashed.record.order_id);
            }
            if !events.is_empty() {
                source.done(worker, &events).await?;
            }
            ctx.in_flight(&[]);
            if crash_at.is_some() {
                return Ok(RelayExit::Crashed);
            }
            continue;
        }
        for event in events {
            let order = event.record.order_id;
            ctx.in_flight(&[order]);
            let attempt = sink
                .write_event(&event.record, key, crate::store::now_micros())
                .await;
            published(attempt, &event.position)?;
            ctx.delivered(order);
            if ctx.should_crash() {
                ctx.crashed_on(order);
                return Ok(RelayExit::Crashed);
            }
            source.done(worker, std::slice::from_ref(&event)).await?;
            ctx.in_flight(&[]);
        }
    }
}

/// A publish counts when applied, or already there (a stable key an earlier,
/// crashed incarnation published); anything else ends the worker with an error
/// and the supervisor restarts it from the source's saved progress.
fn published(attempt: Attempt, what: &str) -> anyhow::Result<()> {
    match attempt {
        Attempt::Applied | Attempt::AlreadyThere(_) => Ok(()),
        Attempt::NotApplied(f) | Attempt::Indeterminate(f) => {
            anyhow::bail!("publishing {what}: {} ({})", f.class, f.detail)
        }
    }
}

/// Handed to each worker run.
#[derive(Clone)]
pub struct RelayContext {
    delivered: mpsc::UnboundedSender<(u64, Instant)>,
    options: RelayOptions,
    events: Arc<AtomicU64>,
    seed: u64,
    worker: u32,
    shared: Arc<Shared>,
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

    /// The events this worker is publishing and has not marked yet: what a crash
    /// now would publish twice.
    fn in_flight(&self, orders: &[u64]) {
        self.shared
            .in_flight
            .lock()
            .unwrap()
            .insert(self.worker, orders.to_vec());
    }

    /// The worker crashes between publishing `order` and marking it.
    fn crashed_on(&self, order: u64) {
        self.shared.in_flight.lock().unwrap().remove(&self.worker);
        let n = self.shared.self_crashes.load(Ordering::Relaxed) + 1;
        self.shared
            .causes
            .lock()
            .unwrap()
            .insert(order, format!("relay self-crash #{n}"));
    }
}

/// Supervises the workers of one relay.
pub struct Relay {
    source: Arc<dyn RelaySource>,
    sink: Arc<dyn SideStore>,
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
    /// Worker -> orders published and not yet marked.
    in_flight: Mutex<std::collections::HashMap<u32, Vec<u64>>>,
    /// Orders a crash left published and unmarked -> which crash.
    causes: Mutex<crate::checker::Causes>,
}

impl Relay {
    pub fn start(
        source: Arc<dyn RelaySource>,
        sink: Arc<dyn SideStore>,
        options: RelayOptions,
        seed: u64,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut relay = Self {
            source,
            sink,
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
            let source = self.source.clone();
            let sink = self.sink.clone();
            let shared = self.shared.clone();
            let ctx = RelayContext {
                delivered: self.tx.clone(),
                options: self.options.clone(),
                events: shared.events.clone(),
                seed: self.seed ^ u64::from(i),
                worker: i,
                shared: shared.clone(),
            };
            let pause = self.options.poll_interval;
            self.tasks.push(tokio::spawn(async move {
                loop {
                    match work(source.as_ref(), sink.as_ref(), i, &ctx).await {
                        Ok(RelayExit::Crashed) => {
                            shared.self_crashes.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(RelayExit::Stopped) => return,
                        Err(e) => {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                            *shared.last_error.lock().unwrap() = Some(format!("{e:#}"));
                            // What it had published and not marked is published again.
                            let left = shared.in_flight.lock().unwrap().remove(&i);
                            let mut causes = shared.causes.lock().unwrap();
                            for order in left.into_iter().flatten() {
                                causes.insert(order, "relay restart after an error".into());
                            }
                        }
                    }
                    // A restarted process does not come back instantly.
                    tokio::time::sleep(pause.max(Duration::from_millis(50))).await;
                }
            }));
        }
    }

    /// A `relay-crash` fault (`label` names its window): every worker dies now,
    /// mid-flight; what each had published and not marked is the window's doing.
    pub fn crash(&mut self, label: &str) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let in_flight = std::mem::take(&mut *self.shared.in_flight.lock().unwrap());
        let mut causes = self.shared.causes.lock().unwrap();
        for order in in_flight.into_values().flatten() {
            causes.insert(order, label.to_string());
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
        match tokio::time::timeout(limit, self.source.pending()).await {
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

    /// Orders whose extra publication has a known cause (a crash that left it
    /// published and unmarked, the outbox flag set again).
    pub fn causes(&self) -> crate::checker::Causes {
        let mut causes = self.shared.causes.lock().unwrap().clone();
        for (order, cause) in self.source.causes() {
            causes.insert(order, cause.to_string());
        }
        causes
    }

    /// Stops the workers and returns every delivery seen (order id, when).
    pub fn stop(&mut self) -> (Vec<(u64, Instant)>, RelayStats) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let mut deliveries = Vec::new();
        while let Ok(d) = self.rx.try_recv() {
            deliveries.push(d);
        }
        let stats = RelayStats {
            workers: self.options.workers,
            delivered: deliveries.len() as u64,
            self_crashes: self.shared.self_crashes.load(Ordering::Relaxed),
            errors: self.shared.errors.load(Ordering::Relaxed),
            rearmed: self
                .source
                .causes()
                .iter()
                .filter(|(_, c)| *c == REARMED)
                .count() as u64,
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

    /// A source whose store never answers the pending count (a black-holed path
    /// whose driver has no timeout of its own), and has nothing to hand out.
    struct Unanswered;

    #[async_trait]
    impl RelaySource for Unanswered {
        async fn start(&self, _worker: u32, _workers: u32) -> anyhow::Result<()> {
            Ok(())
        }
        async fn next(&self, _worker: u32) -> anyhow::Result<Vec<SourceEvent>> {
            Ok(Vec::new())
        }
        async fn done(&self, _worker: u32, _events: &[SourceEvent]) -> anyhow::Result<()> {
            Ok(())
        }
        async fn pending(&self) -> anyhow::Result<u64> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn the_drain_wait_ends_at_its_deadline_even_if_pending_never_answers() {
        let sink = crate::store::memory::tests::side(crate::scenario::Side::Secondary);
        let relay = Relay::start(Arc::new(Unanswered), sink, RelayOptions::default(), 1);
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
