//! The readers (`[readers]`): a read workload beside the writes. Every write's
//! answer is told to the readers ([`Heard`] wraps the run's writer); the readers
//! follow some of those orders — within their read rate, and a sample of the
//! ones whose write failed or is unknown — and read both sides of each at every
//! delay after the answer, through the sides' own connections (the same proxies,
//! under the same faults as the writes). Every read is an operation of its own,
//! streamed to `reads.jsonl` ([`entry`]); what the reads add up to is
//! [`stats`], a pure function of them and the history.

pub mod entry;
pub mod stats;

use async_trait::async_trait;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};

use self::entry::{ReadEntry, ReadsWriter, Seen};
use crate::history::{OpReport, Outcome};
use crate::order::{Order, splitmix64};
use crate::result::Followed;
use crate::scenario::Readers;
use crate::store::{ReadOptions, ReadOutcome, Record, SideStore};
use crate::writer::Writer;

/// A read that starts later than this after its planned time counts as late.
pub const LATE_MS: u64 = 10;

/// A write's answer, as the readers hear it.
#[derive(Debug, Clone, Copy)]
struct Answer {
    id: u64,
    outcome: Outcome,
    at: Instant,
}

enum Message {
    Answer(Answer),
    /// The load is over: no answer comes after this.
    End,
}

/// The run's writer, telling the readers of each answer the moment it returns.
pub struct Heard {
    inner: Arc<dyn Writer>,
    tx: mpsc::UnboundedSender<Message>,
}

#[async_trait]
impl Writer for Heard {
    async fn write(&self, order: &Order) -> OpReport {
        let report = self.inner.write(order).await;
        let _ = self.tx.send(Message::Answer(Answer {
            id: order.id,
            outcome: report.outcome,
            at: Instant::now(),
        }));
        report
    }
}

/// What the readers need besides their scenario section.
pub struct ReaderSpec {
    pub readers: Readers,
    pub primary: Arc<dyn SideStore>,
    pub secondary: Arc<dyn SideStore>,
    pub primary_options: ReadOptions,
    pub secondary_options: ReadOptions,
    /// To rebuild each order's record (its customer keys some sides).
    pub seed: u64,
    pub customers: u64,
    /// Backstop for one side's read (stores time out their own calls first).
    pub read_deadline: Duration,
}

/// The running readers.
pub struct ReaderHandle {
    tx: mpsc::UnboundedSender<Message>,
    task: tokio::task::JoinHandle<anyhow::Result<(Vec<ReadEntry>, Followed)>>,
}

impl ReaderHandle {
    /// The load is over: the readers finish the reads already planned (none
    /// after an interrupt) and return every read and whom they followed.
    pub async fn finish(self) -> anyhow::Result<(Vec<ReadEntry>, Followed)> {
        let _ = self.tx.send(Message::End);
        self.task.await?
    }
}

/// Starts the readers; returns the writer to drive (the run's, heard by the
/// readers) and the handle that ends them.
pub fn start(
    spec: ReaderSpec,
    writer: Arc<dyn Writer>,
    t0: Instant,
    out: Option<ReadsWriter>,
    interrupt: watch::Receiver<bool>,
) -> (Arc<dyn Writer>, ReaderHandle) {
    let (tx, rx) = mpsc::unbounded_channel();
    let heard = Arc::new(Heard {
        inner: writer,
        tx: tx.clone(),
    });
    let task = tokio::spawn(schedule(Arc::new(spec), t0, rx, out, interrupt));
    (heard, ReaderHandle { tx, task })
}

/// One planned read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Planned {
    at: Instant,
    n: u64,
    id: u64,
    delay_ms: u64,
    write: u8,
}

fn outcome_code(o: Outcome) -> u8 {
    match o {
        Outcome::Ok => 0,
        Outcome::Fail => 1,
        Outcome::Unknown => 2,
    }
}

fn outcome_of(code: u8) -> Outcome {
    match code {
        0 => Outcome::Ok,
        1 => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

/// Which orders to follow: a read budget filled at the read rate (up to one
/// second's worth, at least one order's), spent one read per delay; unacknowledged
/// orders only within their sample.
struct Budget {
    rate: Option<f64>,
    cost: f64,
    cap: f64,
    tokens: f64,
    last: Option<Instant>,
    unacknowledged: f64,
    seed: u64,
    followed: Followed,
}

impl Budget {
    fn new(readers: &Readers, seed: u64) -> Self {
        let cost = readers.delays.len() as f64;
        let cap = readers.rate.map_or(0.0, |r| r.max(cost));
        Self {
            rate: readers.rate,
            cost,
            cap,
            tokens: cap,
            last: None,
            unacknowledged: readers.unacknowledged,
            seed,
            followed: Followed::default(),
        }
    }

    fn follow(&mut self, a: &Answer) -> bool {
        if a.outcome != Outcome::Ok {
            let draw = splitmix64(self.seed ^ a.id.wrapping_mul(0xD1B5_4A32_D192_ED03)) as f64
                / u64::MAX as f64;
            if draw >= self.unacknowledged {
                self.followed.not_sampled += 1;
                return false;
            }
        }
        if let Some(rate) = self.rate {
            if let Some(last) = self.last {
                let dt = a.at.saturating_duration_since(last).as_secs_f64();
                self.tokens = (self.tokens + rate * dt).min(self.cap);
            }
            self.last = Some(self.last.map_or(a.at, |l| l.max(a.at)));
            if self.tokens < self.cost {
                self.followed.over_budget += 1;
                return false;
            }
            self.tokens -= self.cost;
        }
        if a.outcome == Outcome::Ok {
            self.followed.acknowledged += 1;
        } else {
            self.followed.unacknowledged += 1;
        }
        true
    }
}

/// Plans reads as answers arrive and starts each when due, up to the
/// concurrency cap; one collector writes every completed read.
async fn schedule(
    spec: Arc<ReaderSpec>,
    t0: Instant,
    mut rx: mpsc::UnboundedReceiver<Message>,
    mut out: Option<ReadsWriter>,
    mut interrupt: watch::Receiver<bool>,
) -> anyhow::Result<(Vec<ReadEntry>, Followed)> {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<ReadEntry>();
    let collector = tokio::spawn(async move {
        let mut reads = Vec::new();
        while let Some(e) = done_rx.recv().await {
            if let Some(w) = out.as_mut() {
                w.append(&e)?;
            }
            reads.push(e);
        }
        if let Some(w) = out {
            w.finish()?;
        }
        anyhow::Ok(reads)
    });
    let permits = Arc::new(Semaphore::new(spec.readers.concurrency));
    let mut budget = Budget::new(&spec.readers, spec.seed);
    let mut heap: BinaryHeap<Reverse<Planned>> = BinaryHeap::new();
    let mut next_n = 0u64;
    let mut ended = false;
    // A closed interrupt channel can no longer interrupt.
    let mut watching = true;
    loop {
        if *interrupt.borrow() {
            heap.clear();
            ended = true;
        }
        if ended && heap.is_empty() {
            break;
        }
        let due = heap.peek().map(|Reverse(p)| p.at);
        tokio::select! {
            biased;
            changed = interrupt.changed(), if watching => watching = changed.is_ok(),
            m = rx.recv(), if !ended => match m {
                Some(Message::Answer(a)) => {
                    if budget.follow(&a) {
                        for d in &spec.readers.delays {
                            heap.push(Reverse(Planned {
                                at: a.at + *d,
                                n: next_n,
                                id: a.id,
                                delay_ms: d.as_millis() as u64,
                                write: outcome_code(a.outcome),
                            }));
                            next_n += 1;
                        }
                    }
                }
                Some(Message::End) | None => ended = true,
            },
            _ = sleep_until_due(due) => {
                let Some(Reverse(p)) = heap.pop() else { continue };
                let permit = permits.clone().acquire_owned().await?;
                let (spec, done) = (spec.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let _ = done.send(read_both(&spec, p, t0).await);
                    drop(permit);
                });
            }
        }
    }
    // Every read in flight holds a permit: taking them all waits for the last.
    let _all = permits
        .acquire_many(spec.readers.concurrency as u32)
        .await?;
    drop(done_tx);
    let reads = collector.await??;
    Ok((reads, budget.followed))
}

async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One read: both sides at once, each bounded by the deadline.
async fn read_both(spec: &ReaderSpec, p: Planned, t0: Instant) -> ReadEntry {
    let record = Record::of(&Order::generate(spec.seed, p.id, spec.customers, 0));
    let start = Instant::now();
    let side = |store: &Arc<dyn SideStore>, options: &ReadOptions| {
        let (store, options) = (store.clone(), options.clone());
        let deadline = spec.read_deadline;
        async move {
            match tokio::time::timeout(deadline, store.read(&record, &options)).await {
                Ok(r) => r,
                Err(_) => ReadOutcome::Unknown(crate::pattern::outcome::Failure::new(
                    "deadline",
                    format!("no answer within {} ms", deadline.as_millis()),
                )),
            }
        }
    };
    let (primary, secondary) = tokio::join!(
        side(&spec.primary, &spec.primary_options),
        side(&spec.secondary, &spec.secondary_options)
    );
    let end = Instant::now();
    let us = |at: Instant| at.saturating_duration_since(t0).as_micros() as u64;
    let (p_seen, p_copies, p_error) = seen(primary);
    let (s_seen, s_copies, s_error) = seen(secondary);
    ReadEntry {
        n: p.n,
        id: p.id,
        delay_ms: p.delay_ms,
        write: outcome_of(p.write),
        planned_us: us(p.at),
        start_us: us(start),
        end_us: us(end),
        outcome: ReadEntry::outcome_of(p_seen, s_seen),
        primary: p_seen,
        secondary: s_seen,
        primary_copies: p_copies,
        secondary_copies: s_copies,
        primary_error: p_error,
        secondary_error: s_error,
    }
}

fn seen(r: ReadOutcome) -> (Seen, u32, Option<String>) {
    match r {
        ReadOutcome::Ok(0) => (Seen::Absent, 0, None),
        ReadOutcome::Ok(n) => (Seen::Seen, n, None),
        ReadOutcome::Fail(f) => (Seen::Fail, 0, Some(f.class)),
        ReadOutcome::Unknown(f) => (Seen::Unknown, 0, Some(f.class)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readers(rate: Option<f64>, unacknowledged: f64) -> Readers {
        Readers {
            rate,
            concurrency: 4,
            delays: vec![Duration::ZERO, Duration::from_millis(100)],
            unacknowledged,
            primary: Default::default(),
            secondary: Default::default(),
        }
    }

    #[test]
    fn the_budget_follows_orders_at_the_read_rate() {
        // 10 reads/s, 2 delays: 5 orders a second once the first second's
        // worth (10 reads = 5 orders) is spent.
        let mut b = Budget::new(&readers(Some(10.0), 1.0), 1);
        let t = Instant::now();
        let mut followed = 0;
        for i in 0..100u64 {
            let a = Answer {
                id: i,
                outcome: Outcome::Ok,
                at: t + Duration::from_millis(i * 20), // 50 answers/s for 2 s
            };
            followed += u64::from(b.follow(&a));
        }
        // 5 from the initial budget + 10 reads/s x 1.98 s / 2 = 9.9 more.
        assert_eq!(followed, 14, "{:?}", b.followed);
        assert_eq!(b.followed.acknowledged, 14);
        assert_eq!(b.followed.over_budget, 86);
    }

    #[test]
    fn without_a_rate_every_order_is_followed_and_unacknowledged_ones_are_sampled() {
        let mut b = Budget::new(&readers(None, 0.5), 7);
        let t = Instant::now();
        for i in 0..1000u64 {
            let outcome = if i % 2 == 0 {
                Outcome::Ok
            } else {
                Outcome::Unknown
            };
            b.follow(&Answer {
                id: i,
                outcome,
                at: t,
            });
        }
        let f = &b.followed;
        assert_eq!(f.acknowledged, 500);
        assert_eq!(f.unacknowledged + f.not_sampled, 500);
        assert!((200..300).contains(&f.unacknowledged), "{f:?}");
        let mut none = Budget::new(&readers(None, 0.0), 7);
        assert!(!none.follow(&Answer {
            id: 1,
            outcome: Outcome::Fail,
            at: t
        }));
    }
}
