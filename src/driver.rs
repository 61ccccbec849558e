//! The driver: issues operations at the target rate on an absolute schedule (open
//! loop: the schedule never waits for slow answers), up to a concurrency cap. Every
//! operation's intended start is recorded and latency is measured from it, so a
//! stalled store shows up as latency instead of silently lowering the rate
//! (no coordinated omission). One consumer task owns the history and the figures.

use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::history::{
    History, HistoryEntry, HistoryWriter, OpReport, OpSummary, Outcome, SideOutcome,
};
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

struct Completion {
    id: u64,
    intended: Instant,
    start: Instant,
    end: Instant,
    report: OpReport,
}

/// Runs the load. Returns the figures and the in-memory history once every issued
/// operation has completed (or hit its deadline).
pub async fn drive(
    client: Arc<dyn PatternClient>,
    spec: DriveSpec,
    t0: Instant,
    mut writer: Option<HistoryWriter>,
    mut stop: watch::Receiver<bool>,
    live: Arc<LiveCounters>,
) -> anyhow::Result<(DriverStats, History, Option<HistoryWriter>)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Completion>();
    let permits = Arc::new(Semaphore::new(spec.concurrency));
    let consumer_live = live.clone();
    let planned = spec.ops;
    let consumer = tokio::spawn(async move {
        let mut acc = Accumulator::new(t0, planned as usize);
        while let Some(c) = rx.recv().await {
            let entry = acc.add(&c);
            match c.report.outcome {
                Outcome::Ok => &consumer_live.ok,
                Outcome::Fail => &consumer_live.fail,
                Outcome::Unknown => &consumer_live.unknown,
            }
            .fetch_add(1, Ordering::Relaxed);
            if let Some(w) = writer.as_mut() {
                w.append(&entry)?;
            }
        }
        anyhow::Ok((acc, writer))
    });

    let period_ns = 1e9 / spec.rate;
    let mut last_start = t0;
    let mut issued = 0u64;
    for id in 0..spec.ops {
        let intended = t0 + Duration::from_nanos((id as f64 * period_ns) as u64);
        if *stop.borrow() {
            break;
        }
        // Fast paths first: behind schedule or with a free permit there is nothing to
        // wait for, and the watch + timer select was the scheduler's main cost at high
        // rates (callgrind).
        if intended > Instant::now() {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                _ = tokio::time::sleep_until(intended.into()) => {}
            }
        }
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            },
        };
        let start = Instant::now();
        last_start = start;
        issued += 1;
        live.issued.fetch_add(1, Ordering::Relaxed);
        let order = Order::generate(spec.seed, id, spec.customers, spec.payload_bytes);
        let client = client.clone();
        let tx = tx.clone();
        let deadline = spec.op_deadline;
        tokio::spawn(async move {
            let report = match tokio::time::timeout(deadline, client.write(&order)).await {
                Ok(r) => r,
                Err(_) => OpReport {
                    outcome: Outcome::Unknown,
                    error: Some("deadline".into()),
                    primary: SideOutcome::Unknown,
                    secondary: SideOutcome::Unknown,
                    retries: 0,
                    detail: None,
                },
            };
            let _ = tx.send(Completion {
                id,
                intended,
                start,
                end: Instant::now(),
                report,
            });
            drop(permit);
        });
    }
    drop(tx);
    let (acc, writer) = consumer.await??;
    let load_s = if issued == 0 {
        0.0
    } else {
        (last_start - t0).as_secs_f64() + period_ns / 1e9
    };
    let (stats, history) = acc.finish(issued, load_s);
    Ok((stats, history, writer))
}

struct Accumulator {
    t0: Instant,
    history: History,
    latency: Histogram<u64>,
    service: Histogram<u64>,
    ok: u64,
    fail: u64,
    unknown: u64,
    retries: u64,
    delayed: u64,
    max_delay: Duration,
    errors: std::collections::BTreeMap<String, u64>,
    error_samples: std::collections::BTreeMap<String, String>,
    seconds: Vec<Second>,
    /// Latency samples (us) of the second being filled, and which second that is.
    current: (u64, Vec<u64>),
}

impl Accumulator {
    fn new(t0: Instant, planned: usize) -> Self {
        Self {
            t0,
            history: History::with_capacity(planned),
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            service: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            ok: 0,
            fail: 0,
            unknown: 0,
            retries: 0,
            delayed: 0,
            max_delay: Duration::ZERO,
            errors: Default::default(),
            error_samples: Default::default(),
            seconds: Vec::new(),
            current: (0, Vec::new()),
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

    fn add(&mut self, c: &Completion) -> HistoryEntry {
        let t0 = self.t0;
        let us = |at: Instant| at.saturating_duration_since(t0).as_micros() as u64;
        let latency = c.end.saturating_duration_since(c.intended).as_micros() as u64;
        self.latency.saturating_record(latency.max(1));
        self.service.saturating_record(
            (c.end.saturating_duration_since(c.start).as_micros() as u64).max(1),
        );
        let delay = c.start.saturating_duration_since(c.intended);
        if delay > Duration::from_millis(DELAYED_MS) {
            self.delayed += 1;
        }
        self.max_delay = self.max_delay.max(delay);
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
        let intended_us = us(c.intended);
        self.second(intended_us / 1_000_000).attempted += 1;
        let end_s = us(c.end) / 1_000_000;
        let s = self.second(end_s);
        match r.outcome {
            Outcome::Ok => s.ok += 1,
            Outcome::Fail => s.fail += 1,
            Outcome::Unknown => s.unknown += 1,
        }
        if end_s != self.current.0 {
            self.close_current();
            self.current.0 = end_s;
        }
        self.current.1.push(latency);
        self.history.record(
            c.id,
            OpSummary::timed(
                r.outcome,
                r.primary,
                r.secondary,
                (intended_us / 1000) as u32,
                (us(c.end) / 1000) as u32,
            ),
        );
        HistoryEntry {
            id: c.id,
            intended_us,
            start_us: us(c.start),
            end_us: us(c.end),
            outcome: r.outcome,
            error: r.error.clone(),
            primary: r.primary,
            secondary: r.secondary,
            retries: r.retries,
        }
    }

    fn close_current(&mut self) {
        let (t, mut samples) = std::mem::take(&mut self.current);
        if samples.is_empty() {
            return;
        }
        samples.sort_unstable();
        let pick =
            |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
        let (p50, p99) = (pick(0.5), pick(0.99));
        let s = self.second(t);
        s.p50_ms = p50;
        s.p99_ms = p99;
    }

    fn finish(mut self, issued: u64, load_s: f64) -> (DriverStats, History) {
        let history = std::mem::take(&mut self.history);
        let mut me = self;
        me.close_current();
        let stats = DriverStats {
            issued,
            ok: me.ok,
            fail: me.fail,
            unknown: me.unknown,
            retries: me.retries,
            delayed: me.delayed,
            max_start_delay_ms: me.max_delay.as_secs_f64() * 1000.0,
            achieved_tps: if load_s > 0.0 {
                issued as f64 / load_s
            } else {
                0.0
            },
            load_s,
            latency_us: me.latency,
            timeline: me.seconds,
            errors: me.errors,
            error_samples: me.error_samples,
            service_us: me.service,
        };
        (stats, history)
    }
}
