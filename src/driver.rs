//! The driver: issues operations at the target rate on an absolute schedule (open
//! loop: the schedule never waits for slow answers), up to a concurrency cap. Every
//! operation's intended start is recorded and latency is measured from it, so a
//! stalled store shows up as latency instead of silently lowering the rate
//! (no coordinated omission).
//!
//! Two parts. The workers, a fixed set of long-lived futures polled in the caller's
//! task, one per unit of the concurrency cap: a worker takes the next operation id,
//! waits for its intended start if it is early, runs it, and takes the next. A free
//! worker is a free slot, so an operation that finds every worker busy starts late
//! and is counted as delayed. The completer, a thread of its own, records what the
//! workers hand it (figures, timeline, history line, live counters), in batches
//! when the workers are saturated. No task is spawned and no message is sent per
//! operation: a task and a channel message per operation were a quarter of the
//! driver's instructions in callgrind, and recording beside issuing uses a second
//! core.

use anyhow::Context;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use hdrhistogram::Histogram;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

use crate::history::{History, HistoryWriter, OpReport, OpSummary, Outcome, SideOutcome};
use crate::order::Order;
pub use crate::result::Second;
use crate::writer::Writer as PatternClient;

/// An operation that starts later than this after its intended time counts as
/// delayed (the timer's own granularity is about 1 ms).
pub const DELAYED_MS: u64 = 10;

/// What the driver needs from a scenario.
#[derive(Debug, Clone)]
pub struct DriveSpec {
    pub seed: u64,
    pub rate: f64,
    pub ops: u64,
    pub concurrency: usize,
    pub customers: u64,
    pub payload_bytes: usize,
    /// Backstop for one whole logical operation (clients time out their own calls).
    pub op_deadline: Duration,
}

/// Live counters for the progress line.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub issued: AtomicU64,
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub unknown: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct DriverStats {
    pub issued: u64,
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
    pub retries: u64,
    /// Operations that started more than DELAYED_MS after their intended time
    /// (concurrency cap reached, or the scheduler fell behind).
    pub delayed: u64,
    pub max_start_delay_ms: f64,
    /// Issued operations per second of issuing time.
    pub achieved_tps: f64,
    pub load_s: f64,
    pub latency_us: Histogram<u64>,
    /// Service time: from the actual start to the end (what a closed-loop client sees).
    pub service_us: Histogram<u64>,
    pub timeline: Vec<Second>,
    pub errors: std::collections::BTreeMap<String, u64>,
    /// The first full error text seen for each error class.
    pub error_samples: std::collections::BTreeMap<String, String>,
}

/// One finished operation as a worker hands it over: clock readings only, the
/// arithmetic on them is the completer's.
struct Finished {
    id: u64,
    start: Instant,
    end: Instant,
    report: OpReport,
}

/// One finished operation as it is recorded. Times are nanoseconds since `t0`.
struct Completion {
    id: u64,
    intended_ns: u64,
    start_ns: u64,
    end_ns: u64,
    report: OpReport,
}

/// The absolute schedule: operation `id` is due `id / rate` after `t0`.
#[derive(Clone, Copy)]
struct Schedule {
    t0: Instant,
    period_ns: f64,
}

impl Schedule {
    fn due_ns(&self, id: u64) -> u64 {
        (id as f64 * self.period_ns) as u64
    }

    fn since_t0_ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_nanos() as u64
    }
}

/// The clock, through tokio's so that tests with a paused clock see their own
/// time (without tokio's `test-util` feature this is `Instant::now()`).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// What the workers share. Workers are polled by one task, so the lock is never
/// contended; it is there because the driver's future must be `Send`.
struct Shared<'a> {
    client: &'a dyn PatternClient,
    spec: &'a DriveSpec,
    schedule: Schedule,
    live: &'a LiveCounters,
    /// The next operation id to take.
    next: AtomicU64,
    /// Set by the completer when the history can no longer be written: issuing stops.
    halted: Arc<AtomicBool>,
    /// Completions not yet handed to the completer.
    batch: Mutex<Vec<Finished>>,
    /// Unbounded: a full queue would hold a worker back while tokio's paused clock
    /// (tests) cannot see why, and the completer needs fewer instructions per
    /// operation than the workers, so it keeps up.
    completer: mpsc::UnboundedSender<Vec<Finished>>,
}

/// Completions handed to the completer at once when the driver is saturated.
const BATCH: usize = 256;

impl Shared<'_> {
    /// Queues a completion for the completer. A saturated driver hands them over
    /// in batches; one that just waited (for a start time or for the store) hands
    /// them over at once, so the progress line and the streamed history keep up.
    fn complete(&self, f: Finished, waited: bool) {
        let batch = {
            let mut batch = self.batch.lock().unwrap_or_else(|e| e.into_inner());
            batch.push(f);
            if batch.len() >= BATCH {
                Some(std::mem::replace(&mut *batch, Vec::with_capacity(BATCH)))
            } else {
                waited.then(|| std::mem::take(&mut *batch))
            }
        };
        if let Some(batch) = batch {
            // Fails only when the completer is gone, and drive reports why.
            let _ = self.completer.send(batch);
        }
    }

    fn flush(&self) {
        let batch = std::mem::take(&mut *self.batch.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            let _ = self.completer.send(batch);
        }
    }
}

/// What the completer hands back: the figures, the writer, and the first error
/// writing the history.
type Completed = (Accumulator, Option<HistoryWriter>, Option<std::io::Error>);

/// Records every completion: figures, history line, live counters. Its own
/// thread, so recording runs beside issuing on another core.
fn completer(
    mut rx: mpsc::UnboundedReceiver<Vec<Finished>>,
    schedule: Schedule,
    mut acc: Accumulator,
    mut writer: Option<HistoryWriter>,
    live: Arc<LiveCounters>,
    halted: Arc<AtomicBool>,
) -> Completed {
    let mut failed = None;
    while let Some(batch) = rx.blocking_recv() {
        for f in batch {
            let c = Completion {
                id: f.id,
                intended_ns: schedule.due_ns(f.id),
                start_ns: schedule.since_t0_ns(f.start),
                end_ns: schedule.since_t0_ns(f.end),
                report: f.report,
            };
            match c.report.outcome {
                Outcome::Ok => &live.ok,
                Outcome::Fail => &live.fail,
                Outcome::Unknown => &live.unknown,
            }
            .fetch_add(1, Ordering::Relaxed);
            acc.add(&c);
            if let Some(w) = writer.as_mut()
                && let Err(e) = w.append_parts(
                    c.id,
                    c.intended_ns / 1000,
                    c.start_ns / 1000,
                    c.end_ns / 1000,
                    &c.report,
                )
            {
                failed = Some(e);
                writer = None;
                halted.store(true, Ordering::Relaxed);
            }
        }
    }
    (acc, writer, failed)
}

/// True once the stop signal is set. The common case (no new value) is one atomic
/// load; the value itself sits behind a lock.
fn stop_set(stop: &mut watch::Receiver<bool>) -> bool {
    match stop.has_changed() {
        Ok(false) => false,
        _ => *stop.borrow_and_update(),
    }
}

/// Resolves when the stop signal is set; never if its sender is gone without
/// setting it (no one can ask any more).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the load. Returns the figures and the in-memory history once every issued
/// operation has completed (or hit its deadline).
pub async fn drive(
    client: Arc<dyn PatternClient>,
    spec: DriveSpec,
    t0: Instant,
    writer: Option<HistoryWriter>,
    stop: watch::Receiver<bool>,
    live: Arc<LiveCounters>,
) -> anyhow::Result<(DriverStats, History, Option<HistoryWriter>)> {
    let schedule = Schedule {
        t0,
        period_ns: 1e9 / spec.rate,
    };
    let halted = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::unbounded_channel();
    let recording = {
        let (acc, live, halted) = (
            Accumulator::new(spec.ops as usize),
            live.clone(),
            halted.clone(),
        );
        std::thread::Builder::new()
            .name("dualwrite-completer".into())
            .spawn(move || completer(rx, schedule, acc, writer, live, halted))
            .context("starting the driver's completer thread")?
    };
    let shared = Shared {
        client: &*client,
        spec: &spec,
        schedule,
        live: &live,
        next: AtomicU64::new(0),
        halted,
        batch: Mutex::new(Vec::new()),
        completer: tx,
    };
    let workers = spec
        .concurrency
        .max(1)
        .min(usize::try_from(spec.ops).unwrap_or(usize::MAX));
    let mut pool: FuturesUnordered<_> = (0..workers)
        .map(|_| worker(&shared, stop.clone()))
        .collect();
    while pool.next().await.is_some() {}
    drop(pool);
    shared.flush();
    drop(shared);

    let (acc, writer, failed) = tokio::task::spawn_blocking(move || recording.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the driver's completer panicked"))?;
    if let Some(e) = failed {
        return Err(anyhow::Error::new(e).context("writing history.jsonl"));
    }
    // Every operation started has completed (or hit its deadline) by now, so the
    // completions count and date the issued operations.
    let (issued, last_start_ns) = (acc.completed, acc.last_start_ns);
    let load_s = if issued == 0 {
        0.0
    } else {
        last_start_ns as f64 / 1e9 + schedule.period_ns / 1e9
    };
    let (stats, history) = acc.finish(issued, load_s);
    Ok((stats, history, writer))
}

/// One unit of the concurrency cap: takes the next operation until there are none
/// left or the stop signal is set.
async fn worker(shared: &Shared<'_>, mut stop: watch::Receiver<bool>) {
    let spec = shared.spec;
    let schedule = shared.schedule;
    if *stop.borrow_and_update() {
        return;
    }
    loop {
        if stop_set(&mut stop) || shared.halted.load(Ordering::Relaxed) {
            return;
        }
        let id = shared.next.fetch_add(1, Ordering::Relaxed);
        if id >= spec.ops {
            return;
        }
        let intended = schedule.t0 + Duration::from_nanos(schedule.due_ns(id));
        let mut start = now();
        let mut waited = intended > start;
        if waited {
            // Idle until then: what has completed goes to the completer now.
            shared.flush();
            tokio::select! {
                biased;
                _ = stop_requested(&mut stop) => return,
                _ = tokio::time::sleep_until(intended.into()) => {}
            }
            start = now();
        }
        shared.live.issued.fetch_add(1, Ordering::Relaxed);
        let order = Order::generate(spec.seed, id, spec.customers, spec.payload_bytes);
        // A panicking client is a bug, but it costs one operation (recorded as
        // unknown, with the message as the sample), not the run.
        let mut write = AssertUnwindSafe(shared.client.write(&order)).catch_unwind();
        // The deadline's timer is made only for a write that does not finish on
        // its first poll (building and dropping it was 10 % of the driver's
        // instructions against the sink). The deadline still counts from the start.
        let first = std::future::poll_fn(|cx| Poll::Ready(write.poll_unpin(cx))).await;
        let written = match first {
            Poll::Ready(r) => Ok(r),
            Poll::Pending => {
                waited = true;
                tokio::time::timeout_at((start + spec.op_deadline).into(), &mut write).await
            }
        };
        let report = match written {
            Ok(Ok(report)) => report,
            Ok(Err(panic)) => unknown("panic", panic_message(&*panic)),
            Err(_) => unknown("deadline", None),
        };
        let end = now();
        shared.complete(
            Finished {
                id,
                start,
                end,
                report,
            },
            waited,
        );
        // Against a store that answers at once (the bench's sink) nothing here
        // would ever be pending: give the runtime its turn (the nemesis shares
        // this task in a run).
        tokio::task::consume_budget().await;
    }
}

fn unknown(error: &str, detail: Option<String>) -> OpReport {
    OpReport {
        outcome: Outcome::Unknown,
        error: Some(error.into()),
        primary: SideOutcome::Unknown,
        secondary: SideOutcome::Unknown,
        retries: 0,
        detail,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> Option<String> {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
}

struct Accumulator {
    /// Completions, and the latest start among them (ns since t0).
    completed: u64,
    last_start_ns: u64,
    history: History,
    latency: Histogram<u64>,
    service: Histogram<u64>,
    ok: u64,
    fail: u64,
    unknown: u64,
    retries: u64,
    delayed: u64,
    max_delay_ns: u64,
    errors: std::collections::BTreeMap<String, u64>,
    error_samples: std::collections::BTreeMap<String, String>,
    seconds: Vec<Second>,
    /// Which second is being filled, and its latency samples (us). The buffer is
    /// reused from second to second.
    current: u64,
    samples: Vec<u64>,
}

impl Accumulator {
    fn new(planned: usize) -> Self {
        Self {
            completed: 0,
            last_start_ns: 0,
            history: History::with_capacity(planned),
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            service: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            ok: 0,
            fail: 0,
            unknown: 0,
            retries: 0,
            delayed: 0,
            max_delay_ns: 0,
            errors: Default::default(),
            error_samples: Default::default(),
            seconds: Vec::new(),
            current: 0,
            samples: Vec::new(),
        }
    }

    fn second(&mut self, t: u64) -> &mut Second {
        let i = t as usize;
        while self.seconds.len() <= i {
            let t = self.seconds.len() as u64;
            self.seconds.push(Second {
                t,
                ..Second::default()
            });
        }
        &mut self.seconds[i]
    }

    fn add(&mut self, c: &Completion) {
        self.completed += 1;
        self.last_start_ns = self.last_start_ns.max(c.start_ns);
        let latency = c.end_ns.saturating_sub(c.intended_ns) / 1000;
        self.latency.saturating_record(latency.max(1));
        self.service
            .saturating_record((c.end_ns.saturating_sub(c.start_ns) / 1000).max(1));
        let delay = c.start_ns.saturating_sub(c.intended_ns);
        if delay > DELAYED_MS * 1_000_000 {
            self.delayed += 1;
        }
        self.max_delay_ns = self.max_delay_ns.max(delay);
        let r = &c.report;
        match r.outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Unknown => self.unknown += 1,
        }
        self.retries += u64::from(r.retries);
        if let Some(e) = &r.error {
            *self.errors.entry(e.clone()).or_default() += 1;
            if let Some(d) = &r.detail
                && !self.error_samples.contains_key(e)
            {
                self.error_samples
                    .insert(e.clone(), d.chars().take(500).collect());
            }
        }
        let (intended_us, end_us) = (c.intended_ns / 1000, c.end_ns / 1000);
        self.second(intended_us / 1_000_000).attempted += 1;
        let end_s = end_us / 1_000_000;
        let s = self.second(end_s);
        match r.outcome {
            Outcome::Ok => s.ok += 1,
            Outcome::Fail => s.fail += 1,
            Outcome::Unknown => s.unknown += 1,
        }
        if end_s != self.current {
            self.close_current();
            self.current = end_s;
        }
        self.samples.push(latency);
        self.history.record(
            c.id,
            OpSummary::timed(
                r.outcome,
                r.primary,
                r.secondary,
                (intended_us / 1000) as u32,
                (end_us / 1000) as u32,
            ),
        );
    }

    /// The current second's p50 and p99: the samples at ranks round((n-1)q) of the
    /// sorted samples, found by selection (a full sort per second cost more).
    fn close_current(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        let mut samples = std::mem::take(&mut self.samples);
        let mut pick = |q: f64| {
            let rank = ((samples.len() - 1) as f64 * q).round() as usize;
            *samples.select_nth_unstable(rank).1 as f64 / 1000.0
        };
        let (p99, p50) = (pick(0.99), pick(0.5));
        samples.clear();
        self.samples = samples;
        let s = self.second(self.current);
        s.p50_ms = p50;
        s.p99_ms = p99;
    }

    fn finish(mut self, issued: u64, load_s: f64) -> (DriverStats, History) {
        self.close_current();
        let stats = DriverStats {
            issued,
            ok: self.ok,
            fail: self.fail,
            unknown: self.unknown,
            retries: self.retries,
            delayed: self.delayed,
            max_start_delay_ms: self.max_delay_ns as f64 / 1e6,
            achieved_tps: if load_s > 0.0 {
                issued as f64 / load_s
            } else {
                0.0
            },
            load_s,
            latency_us: self.latency,
            timeline: self.seconds,
            errors: self.errors,
            error_samples: self.error_samples,
            service_us: self.service,
        };
        (stats, self.history)
    }
}

#[cfg(test)]
mod tests;
