//! The exactly-once relay sink (`relay.delivery = "exactly-once"`, docs/KAFKA.md).
//!
//! Each relay worker has a transactional producer (`transactional.id` =
//! `dualwrite.<namespace>.relay.w<worker>`). A publication is one transaction: the
//! events to `<namespace>.events`, and for each one its source position (the
//! stream's shard and sequence number, the outbox key the relay marks) as a
//! message keyed by the position to `<namespace>.relay-positions`, a compacted
//! topic. Both become visible to `read_committed` readers together, or not at all.
//!
//! A (re)started worker first initialises its transactions under the same id,
//! which fences its earlier incarnation (a transaction that one left open is
//! aborted; a commit it had under way completes first), and only then reads the
//! positions topic: everything an earlier incarnation committed is in it, and
//! nothing more can be. The relay loop skips those positions (marks them without
//! publishing), so a crash between publishing and marking leaves no duplicate.

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::read::read_topic;
use super::side::payload;
use crate::order::order_key;
use crate::pattern::outcome::{Attempt, Failure};
use crate::relay::{ExactlyOnceSink, SourceEvent};

/// Bounds of the transactional calls (each runs on a blocking thread).
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const COMMIT_TIMEOUT: Duration = Duration::from_secs(15);
const ABORT_TIMEOUT: Duration = Duration::from_secs(10);
const LOAD_LIMIT: Duration = Duration::from_secs(60);

type TxProducer = ThreadedProducer<DefaultProducerContext>;

struct Worker {
    producer: Arc<TxProducer>,
    /// Source positions committed, as of this incarnation's start and since.
    positions: HashSet<String>,
}

pub(crate) struct ExactlyOnce {
    pub(crate) config: ClientConfig,
    pub(crate) endpoint: String,
    pub(crate) events: String,
    pub(crate) positions: String,
    pub(crate) namespace: String,
    workers: Mutex<HashMap<u32, Worker>>,
}

impl ExactlyOnce {
    /// `config`: the connection settings shared with the side's producer.
    pub(crate) fn new(
        config: ClientConfig,
        endpoint: String,
        events: String,
        positions: String,
        namespace: String,
    ) -> Self {
        Self {
            config,
            endpoint,
            events,
            positions,
            namespace,
            workers: Mutex::default(),
        }
    }

    fn producer(&self, worker: u32) -> anyhow::Result<Arc<TxProducer>> {
        self.workers
            .lock()
            .unwrap()
            .get(&worker)
            .map(|w| w.producer.clone())
            .ok_or_else(|| anyhow::anyhow!("relay worker {worker} did not start"))
    }
}

/// Runs a blocking librdkafka call off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

#[async_trait]
impl ExactlyOnceSink for ExactlyOnce {
    async fn start(&self, worker: u32) -> anyhow::Result<()> {
        let mut config = self.config.clone();
        config
            .set(
                "transactional.id",
                format!("dualwrite.{}.relay.w{worker}", self.namespace),
            )
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("transaction.timeout.ms", "20000")
            .set("message.timeout.ms", "15000");
        let producer: TxProducer = config
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create the relay's Kafka producer: {e}"))?;
        let producer = Arc::new(producer);
        let p = producer.clone();
        // Fences the earlier incarnation: its open transaction is aborted.
        blocking(move || p.init_transactions(INIT_TIMEOUT))
            .await?
            .map_err(|e| anyhow::anyhow!("initialising the relay's transactions: {e}"))?;
        let (endpoint, topic) = (self.endpoint.clone(), self.positions.clone());
        let committed = blocking(move || read_topic(&endpoint, &topic, LOAD_LIMIT)).await??;
        let positions: HashSet<String> = committed
            .into_iter()
            .filter_map(|(key, _)| key.map(|k| String::from_utf8_lossy(&k).into_owned()))
            .collect();
        let old = self.workers.lock().unwrap().insert(
            worker,
            Worker {
                producer,
                positions,
            },
        );
        if let Some(old) = old {
            // Dropping a producer purges and flushes for up to 500 ms: not here.
            drop(tokio::task::spawn_blocking(move || drop(old)));
        }
        Ok(())
    }

    fn published(&self, worker: u32, position: &str) -> bool {
        self.workers
            .lock()
            .unwrap()
            .get(&worker)
            .is_some_and(|w| w.positions.contains(position))
    }

    async fn publish(&self, worker: u32, events: &[SourceEvent]) -> Attempt {
        let producer = match self.producer(worker) {
            Ok(p) => p,
            Err(e) => return Attempt::NotApplied(Failure::new("not-started", e.to_string())),
        };
        let messages: Vec<(String, Vec<u8>, String)> = events
            .iter()
            .map(|e| {
                (
                    order_key(e.record.order_id),
                    payload(&e.record),
                    e.position.clone(),
                )
            })
            .collect();
        let (events_topic, positions_topic) = (self.events.clone(), self.positions.clone());
        let outcome =
            blocking(move || transaction(&producer, &events_topic, &positions_topic, &messages))
                .await;
        let attempt = match outcome {
            Ok(a) => a,
            Err(e) => Attempt::Indeterminate(Failure::new("join", e.to_string())),
        };
        if attempt == Attempt::Applied
            && let Some(w) = self.workers.lock().unwrap().get_mut(&worker)
        {
            w.positions
                .extend(events.iter().map(|e| e.position.clone()));
        }
        attempt
    }
}

/// One transaction: begin, the events and their positions, commit. An error
/// before the commit, or a commit the broker refused, aborts: certainly not
/// visible. A commit whose outcome is unknown (a timeout, a fatal error such as
/// being fenced) is indeterminate; the restarted worker's position load decides.
fn transaction(
    producer: &TxProducer,
    events: &str,
    positions: &str,
    messages: &[(String, Vec<u8>, String)],
) -> Attempt {
    let failure = |what: &str, e: &KafkaError| {
        let class = e
            .rdkafka_error_code()
            .map_or_else(|| "kafka".to_string(), |c| format!("{c:?}"));
        Failure::new(class, format!("{what}: {e}"))
    };
    let abort = |what: &str, e: &KafkaError| {
        if producer.abort_transaction(ABORT_TIMEOUT).is_ok() {
            Attempt::NotApplied(failure(what, e))
        } else {
            Attempt::Indeterminate(failure(what, e))
        }
    };
    if let Err(e) = producer.begin_transaction() {
        // Nothing was produced in this transaction.
        return Attempt::NotApplied(failure("begin", &e));
    }
    for (key, payload, position) in messages {
        if let Err((e, _)) = producer.send(BaseRecord::to(events).key(key).payload(payload)) {
            return abort("produce", &e);
        }
        let marker = BaseRecord::to(positions)
            .key(position)
            .payload(key.as_bytes());
        if let Err((e, _)) = producer.send(marker) {
            return abort("produce", &e);
        }
    }
    match producer.commit_transaction(COMMIT_TIMEOUT) {
        Ok(()) => Attempt::Applied,
        Err(e) => {
            if matches!(&e, KafkaError::Transaction(t) if t.txn_requires_abort()) {
                abort("commit", &e)
            } else {
                Attempt::Indeterminate(failure("commit", &e))
            }
        }
    }
}
