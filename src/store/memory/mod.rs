//! The in-memory store: the same side interface as the real stores, inside this
//! process, with switches for a side that is down, slow, or loses its answers.
//! It claims nothing about any database: it exists so that the driver, the
//! nemesis's timing, the pattern engine, the relay supervisor, the checker, the
//! verdict and result writing are tested under plain `cargo test` in seconds,
//! and so a user can try a scenario without servers (`store = "memory"`).
//!
//! Tables: `orders` (one record per order id, with an outbox flag) and `events`
//! (one record per event id, so a non-idempotent writer can duplicate); a change
//! log of order writes feeds the `streams` relay.

use async_trait::async_trait;
use futures::FutureExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::spec::{BenchSpec, LocalServer, ReadSupport, ServerSpec, StoreSpec, Support};
use super::{
    ReadOptions, ReadOutcome, Record, ScanSink, ServerInfo, SideStore, Store, StoreContext,
};
use crate::order::{Order, order_key};
use crate::pattern::atomic::{AtomicWrite, AttemptContext, Covers};
use crate::pattern::outcome::{Attempt, Failure};
use crate::pattern::{KeyPolicy, PatternKind};
use crate::relay::{RelaySource, SourceEvent};
use crate::scenario::{Direction, FaultKind, FaultSpec, Side};

pub static SPEC: StoreSpec = StoreSpec {
    name: "memory",
    about: "dualwrite's own in-memory store: no server, faults by switch (engine tests, dry runs)",
    servers: &[ServerSpec {
        name: "memory",
        proxy_prefix: "memory",
        local: None::<LocalServer>,
    }],
    holds_primary: true,
    holds_secondary: true,
    patterns: &[
        (
            PatternKind::Naive,
            Support::Yes {
                how: "insert into orders, then into events",
                options: &[],
            },
        ),
        (
            PatternKind::Transaction,
            Support::Yes {
                how: "both inserts under one lock",
                options: &["secondary_key"],
            },
        ),
        (
            PatternKind::LoggedBatch,
            Support::No("a Cassandra construct; use `transaction` on the in-memory store"),
        ),
        (
            PatternKind::Outbox,
            Support::Yes {
                how: "order with an outbox flag + polling relay",
                options: &[],
            },
        ),
        (
            PatternKind::Streams,
            Support::Yes {
                how: "change log of orders + relay",
                options: &[],
            },
        ),
    ],
    secondary_options: &["secondary_key"],
    secondary_appends: false,
    fault_kinds: &["down", "latency", "timeout"],
    reads: Some(ReadSupport {
        how: "a lookup by order id under the tables' lock",
        consistency: &[],
        not_through_index: &[],
        read_concern: &[],
        read_preference: &[],
        coordinator_servers: &[],
    }),
    connection_options: &[],
    footprint: |_, ns, _| super::spec::Footprint {
        creates: vec![format!("in-memory tables of {ns}, inside this process")],
        drops: vec![format!("the in-memory tables of {ns}")],
    },
    connection_note: "The in-memory store lives inside dualwrite: it has no connection.",
    bench: BenchSpec {
        server: "memory",
        checker_records: 100000,
    },
    connect: |ctx| async move { Ok(Box::new(MemoryStore::new(ctx)) as Box<dyn Store>) }.boxed(),
};

#[derive(Debug, Default)]
struct Tables {
    /// Order id -> (record, outbox pending).
    orders: BTreeMap<u64, (Record, bool)>,
    /// Event id -> record.
    events: BTreeMap<String, Record>,
    /// Keys no order maps to (stray tests), per side.
    foreign: BTreeMap<Side, Vec<String>>,
    /// Every order write in order (the change feed of `streams`).
    log: Vec<Record>,
}

/// What a side's switch does to a request.
#[derive(Debug, Clone, Copy)]
enum Switch {
    /// Refused before anything is sent.
    Down,
    Latency {
        ms: u64,
        jitter_ms: u64,
    },
    /// The request (upstream) or its answer (downstream) is lost; the caller
    /// times out after `op_timeout`.
    Lost {
        direction: Direction,
    },
}

#[derive(Debug, Default)]
struct Switches {
    /// Side -> fault index -> (switch, toxicity).
    on: HashMap<Side, BTreeMap<usize, (Switch, f32)>>,
    draws: u64,
}

pub struct MemoryStore {
    ctx: StoreContext,
    tables: Arc<Mutex<Tables>>,
    switches: Arc<Mutex<Switches>>,
    op_timeout: Duration,
    seed: u64,
}

impl MemoryStore {
    pub fn new(ctx: StoreContext) -> Self {
        Self {
            op_timeout: ctx.scenario.workload.op_timeout,
            seed: ctx.scenario.seed,
            ctx,
            tables: Arc::default(),
            switches: Arc::default(),
        }
    }

    fn handle(&self, side: Side) -> MemorySide {
        MemorySide {
            side,
            tables: self.tables.clone(),
            switches: self.switches.clone(),
            op_timeout: self.op_timeout,
            seed: self.seed,
        }
    }
}

/// One side's view: which switch applies, and the shared tables.
#[derive(Clone)]
pub struct MemorySide {
    side: Side,
    tables: Arc<Mutex<Tables>>,
    switches: Arc<Mutex<Switches>>,
    op_timeout: Duration,
    seed: u64,
}

/// What the switches decided for one request.
enum Fate {
    Pass,
    Refused,
    /// Applied (downstream) or not (upstream); either way the caller hears nothing.
    Lost {
        applied: bool,
    },
}

impl MemorySide {
    /// Runs one request through this side's switches: waits out latency, then
    /// applies `write` unless the request is refused or lost on its way.
    async fn request(&self, write: impl FnOnce(&mut Tables) -> Attempt) -> Attempt {
        let (fate, delay) = self.fate();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fate {
            Fate::Pass => write(&mut self.tables.lock().unwrap()),
            Fate::Refused => Attempt::NotApplied(
                Failure::new("refused", format!("{} side is down", self.side)).retryable(true),
            ),
            Fate::Lost { applied } => {
                if applied {
                    // What the store answered does not matter: the caller never hears it.
                    let _ = write(&mut self.tables.lock().unwrap());
                }
                tokio::time::sleep(self.op_timeout).await;
                Attempt::Indeterminate(Failure::new(
                    "timeout",
                    format!("no answer within {} ms", self.op_timeout.as_millis()),
                ))
            }
        }
    }

    fn fate(&self) -> (Fate, Duration) {
        let mut switches = self.switches.lock().unwrap();
        let active: Vec<(Switch, f32)> = switches
            .on
            .get(&self.side)
            .map(|m| m.values().copied().collect())
            .unwrap_or_default();
        let mut delay = Duration::ZERO;
        let mut fate = Fate::Pass;
        for (switch, toxicity) in active {
            switches.draws += 1;
            let draw =
                crate::order::splitmix64(self.seed ^ switches.draws) as f64 / u64::MAX as f64;
            if draw >= f64::from(toxicity) {
                continue;
            }
            match switch {
                Switch::Down => fate = Fate::Refused,
                Switch::Latency { ms, jitter_ms } => {
                    let jitter = if jitter_ms == 0 {
                        0
                    } else {
                        crate::order::splitmix64(switches.draws) % (2 * jitter_ms + 1)
                    };
                    delay += Duration::from_millis((ms + jitter).saturating_sub(jitter_ms));
                }
                Switch::Lost { direction } if !matches!(fate, Fate::Refused) => {
                    fate = Fate::Lost {
                        applied: direction == Direction::Downstream,
                    }
                }
                Switch::Lost { .. } => {}
            }
        }
        (fate, delay)
    }

    fn source_ok(&self) -> anyhow::Result<()> {
        match self.fate().0 {
            Fate::Pass => Ok(()),
            Fate::Refused => anyhow::bail!("{} side is down", self.side),
            Fate::Lost { .. } => anyhow::bail!("{} side lost the answer", self.side),
        }
    }
}

fn event_key(record: &Record, key: KeyPolicy) -> String {
    match key {
        KeyPolicy::Stable => format!("e-{}", order_key(record.order_id)),
        KeyPolicy::Fresh => format!(
            "e-{}-{:016x}",
            order_key(record.order_id),
            rand::random::<u64>()
        ),
    }
}

fn insert_order(t: &mut Tables, record: Record, outbox: bool) {
    t.orders.insert(record.order_id, (record, outbox));
    t.log.push(record);
}

#[async_trait]
impl SideStore for MemorySide {
    fn describe(&self) -> String {
        match self.side {
            Side::Primary => "memory table orders".into(),
            _ => "memory table events".into(),
        }
    }

    async fn write_order(&self, order: &Order, _timestamp_us: i64) -> Attempt {
        let record = Record::of(order);
        self.request(|t| {
            insert_order(t, record, false);
            Attempt::Applied
        })
        .await
    }

    async fn write_event(&self, record: &Record, key: KeyPolicy, _timestamp_us: i64) -> Attempt {
        let id = event_key(record, key);
        let record = *record;
        self.request(move |t| {
            t.events.insert(id, record);
            Attempt::Applied
        })
        .await
    }

    async fn read(&self, record: &Record, _how: &ReadOptions) -> ReadOutcome {
        let (side, id) = (self.side, record.order_id);
        let mut copies = 0;
        let attempt = self
            .request(|t| {
                copies = match side {
                    Side::Primary => u32::from(t.orders.contains_key(&id)),
                    _ => {
                        // Stable event ids are `e-<key>`, fresh ones `e-<key>-<hex>`.
                        let stable = format!("e-{}", order_key(id));
                        t.events
                            .range(stable.clone()..)
                            .take_while(|(k, _)| k.starts_with(&stable))
                            .filter(|(k, _)| {
                                k.len() == stable.len() || k[stable.len()..].starts_with('-')
                            })
                            .count() as u32
                    }
                };
                Attempt::Applied
            })
            .await;
        match attempt {
            Attempt::Applied => ReadOutcome::Ok(copies),
            failed => ReadOutcome::failed(failed),
        }
    }

    async fn scan(&self, sink: &mut dyn ScanSink) -> anyhow::Result<()> {
        let t = self.tables.lock().unwrap();
        match self.side {
            Side::Primary => t.orders.values().for_each(|(r, _)| sink.record(*r)),
            _ => t.events.values().for_each(|r| sink.record(*r)),
        }
        for key in t.foreign.get(&self.side).into_iter().flatten() {
            sink.foreign(key);
        }
        Ok(())
    }

    async fn plant(&self, record: Record, copies: u32) -> anyhow::Result<()> {
        let mut t = self.tables.lock().unwrap();
        for _ in 0..copies.max(1) {
            match self.side {
                Side::Primary => insert_order(&mut t, record, false),
                _ => {
                    t.events
                        .insert(event_key(&record, KeyPolicy::Fresh), record);
                }
            }
        }
        Ok(())
    }

    async fn plant_foreign(&self, key: &str) -> anyhow::Result<()> {
        let mut t = self.tables.lock().unwrap();
        t.foreign
            .entry(self.side)
            .or_default()
            .push(key.to_string());
        Ok(())
    }
}

/// `transaction` (both records under one lock) and `outbox` (the order with its
/// pending flag), through the primary side's switches.
struct MemoryAtomic {
    primary: MemorySide,
    kind: PatternKind,
    secondary_key: KeyPolicy,
}

#[async_trait]
impl AtomicWrite for MemoryAtomic {
    fn covers(&self) -> Covers {
        if self.kind == PatternKind::Outbox {
            Covers::PrimaryThenRelay
        } else {
            Covers::Both
        }
    }

    async fn attempt(&self, order: &Order, _ctx: &mut AttemptContext) -> Attempt {
        let record = Record::of(order);
        let (outbox, key) = (self.kind == PatternKind::Outbox, self.secondary_key);
        self.primary
            .request(move |t| {
                if !outbox && t.orders.contains_key(&record.order_id) {
                    return Attempt::AlreadyThere(Failure::new(
                        "already-exists",
                        "the order is already there",
                    ));
                }
                insert_order(t, record, outbox);
                if !outbox {
                    t.events.insert(event_key(&record, key), record);
                }
                Attempt::Applied
            })
            .await
    }
}

/// The relay's source: pending outbox flags, or the change log (a checkpoint per
/// source, an in-flight cursor per worker dropped on restart).
struct MemorySource {
    relay: MemorySide,
    outbox: bool,
    /// Change log position published and marked (survives crashes).
    checkpoint: Mutex<usize>,
    /// Worker -> next log position to hand out (in flight; reset on start).
    cursors: Mutex<HashMap<u32, usize>>,
}

#[async_trait]
impl RelaySource for MemorySource {
    async fn start(&self, worker: u32, _workers: u32) -> anyhow::Result<()> {
        let at = *self.checkpoint.lock().unwrap();
        self.cursors.lock().unwrap().insert(worker, at);
        Ok(())
    }

    async fn next(&self, worker: u32) -> anyhow::Result<Vec<SourceEvent>> {
        self.relay.source_ok()?;
        let t = self.relay.tables.lock().unwrap();
        if self.outbox {
            return Ok(t
                .orders
                .values()
                .filter(|(_, pending)| *pending)
                .take(100)
                .map(|(r, _)| SourceEvent {
                    record: *r,
                    position: order_key(r.order_id),
                })
                .collect());
        }
        let mut cursors = self.cursors.lock().unwrap();
        let at = cursors.entry(worker).or_default();
        let events: Vec<SourceEvent> = t.log[(*at).min(t.log.len())..]
            .iter()
            .take(100)
            .enumerate()
            .map(|(i, r)| SourceEvent {
                record: *r,
                position: (*at + i + 1).to_string(),
            })
            .collect();
        *at += events.len();
        Ok(events)
    }

    async fn done(&self, _worker: u32, events: &[SourceEvent]) -> anyhow::Result<()> {
        self.relay.source_ok()?;
        if self.outbox {
            let mut t = self.relay.tables.lock().unwrap();
            for e in events {
                if let Some((_, pending)) = t.orders.get_mut(&e.record.order_id) {
                    *pending = false;
                }
            }
        } else if let Some(last) = events.last() {
            let mut cp = self.checkpoint.lock().unwrap();
            *cp = (*cp).max(last.position.parse().unwrap_or(0));
        }
        Ok(())
    }

    async fn pending(&self) -> anyhow::Result<u64> {
        let t = self.relay.tables.lock().unwrap();
        Ok(if self.outbox {
            t.orders.values().filter(|(_, p)| *p).count() as u64
        } else {
            (t.log.len() - (*self.checkpoint.lock().unwrap()).min(t.log.len())) as u64
        })
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn probe(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn server_info(&self) -> ServerInfo {
        ServerInfo {
            product: "memory".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: BTreeMap::new(),
            not_exercised: vec![
                "any database: the in-memory store tests dualwrite itself, not a store".into(),
            ],
        }
    }

    async fn prepare(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn side(&self, side: Side) -> anyhow::Result<Arc<dyn SideStore>> {
        Ok(Arc::new(self.handle(side)))
    }

    async fn atomic_write(&self) -> anyhow::Result<Arc<dyn AtomicWrite>> {
        let pattern = &self.ctx.scenario.pattern;
        Ok(Arc::new(MemoryAtomic {
            primary: self.handle(Side::Primary),
            kind: pattern.kind,
            secondary_key: pattern.secondary_key,
        }))
    }

    async fn relay_source(&self) -> anyhow::Result<Arc<dyn RelaySource>> {
        Ok(Arc::new(MemorySource {
            relay: self.handle(Side::Relay),
            outbox: self.ctx.scenario.pattern.kind == PatternKind::Outbox,
            checkpoint: Mutex::new(0),
            cursors: Mutex::default(),
        }))
    }

    async fn set_fault(&self, fault: &FaultSpec, active: bool) -> anyhow::Result<()> {
        let switch = match &fault.kind {
            FaultKind::Down => Switch::Down,
            FaultKind::Latency {
                latency_ms,
                jitter_ms,
            } => Switch::Latency {
                ms: *latency_ms,
                jitter_ms: *jitter_ms,
            },
            FaultKind::Timeout { .. } => Switch::Lost {
                direction: fault.direction,
            },
            other => anyhow::bail!("the in-memory store has no `{}` fault", other.name()),
        };
        let mut s = self.switches.lock().unwrap();
        let side = s.on.entry(fault.side).or_default();
        if active {
            side.insert(fault.index, (switch, fault.toxicity));
        } else {
            side.remove(&fault.index);
        }
        Ok(())
    }

    async fn drop_namespace(&self) -> anyhow::Result<()> {
        *self.tables.lock().unwrap() = Tables::default();
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One side of a fresh in-memory store with default switches.
    pub(crate) fn side(side: Side) -> Arc<dyn SideStore> {
        let s = MemoryStore {
            ctx: StoreContext {
                scenario: Arc::new(crate::scenario::tests::memory_scenario("")),
                namespace: "test".into(),
                server: "memory".into(),
                endpoints: BTreeMap::new(),
                stack_state: Default::default(),
            },
            tables: Arc::default(),
            switches: Arc::default(),
            op_timeout: Duration::from_millis(100),
            seed: 1,
        };
        Arc::new(s.handle(side))
    }
}
