//! The application's Kafka producer (librdkafka through `rdkafka`): one produce =
//! one attempt, classified by the outcome rule from librdkafka's own verdict on the
//! message (`rd_kafka_message_status`): `NOT_PERSISTED` is librdkafka's guarantee
//! that the message was never appended (never sent, or refused by the broker), so
//! the attempt is `NotApplied`; `POSSIBLY_PERSISTED` (sent, no answer: a timeout,
//! a connection lost with the request on it) is `Indeterminate`; `PERSISTED` is
//! applied. The error code only names the class (docs/HISTORY.md's table).
//!
//! The producer's own retries (a request timed out after `request.timeout.ms`, sent
//! again on a new connection) are invisible to the application; with idempotence
//! off each one that follows a lost answer appends the message again. They are
//! counted from librdkafka's statistics: messages transmitted minus messages
//! produced = resends ([`Producer::counts`]).

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::statistics::Statistics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

use crate::pattern::outcome::{Attempt, Failure};

/// librdkafka's verdict on a message whose delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persisted {
    No,
    Possibly,
    Yes,
}

/// What the delivery report said.
type Delivered = Result<(), (RDKafkaErrorCode, Persisted)>;

/// Delivery reports to the awaiting produce call; statistics kept for the resend count.
pub(crate) struct Reports {
    /// Messages transmitted (first sends and resends) per the last statistics.
    transmitted: AtomicU64,
}

impl ClientContext for Reports {
    fn stats(&self, statistics: Statistics) {
        // Partition -1 is librdkafka's internal "unassigned" queue.
        let sent: u64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0)
            .map(|p| p.txmsgs)
            .sum();
        self.transmitted.store(sent, Ordering::Relaxed);
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<oneshot::Sender<Delivered>>;

    fn delivery(&self, result: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let report = match result {
            Ok(_) => Ok(()),
            Err((e, message)) => {
                let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                Err((code, persisted(message)))
            }
        };
        let _ = tx.send(report);
    }
}

fn persisted(message: &BorrowedMessage<'_>) -> Persisted {
    use rdkafka::bindings::rd_kafka_msg_status_t as S;
    // SAFETY: the message is valid for the duration of the delivery callback.
    match unsafe { rdkafka::bindings::rd_kafka_message_status(message.ptr()) } {
        S::RD_KAFKA_MSG_STATUS_NOT_PERSISTED => Persisted::No,
        S::RD_KAFKA_MSG_STATUS_PERSISTED => Persisted::Yes,
        _ => Persisted::Possibly,
    }
}

/// The outcome rule for one produce: librdkafka's persisted status decides, the
/// error code names the class. Every failure is retryable for the application.
pub(crate) fn classify(code: RDKafkaErrorCode, status: Persisted) -> Attempt {
    let class = format!("{code:?}");
    let detail = format!("{code} (librdkafka: {status:?} persisted)");
    let failure = Failure::new(class, detail).retryable(true);
    match status {
        Persisted::No => Attempt::NotApplied(failure),
        Persisted::Possibly => Attempt::Indeterminate(failure),
        Persisted::Yes => Attempt::Applied,
    }
}

pub(crate) struct Producer {
    inner: ThreadedProducer<Reports>,
    produced: AtomicU64,
    /// The longest a produce waits for its delivery report beyond librdkafka's own
    /// `message.timeout.ms` (which always reports first: this is a guard).
    wait: Duration,
}

impl Producer {
    /// `config` carries the connection and the delivery settings (mod.rs).
    pub(crate) fn new(config: &ClientConfig, op_timeout: Duration) -> anyhow::Result<Self> {
        let inner = config
            .create_with_context(Reports {
                transmitted: AtomicU64::new(0),
            })
            .map_err(|e| anyhow::anyhow!("cannot create a Kafka producer: {e}"))?;
        Ok(Self {
            inner,
            produced: AtomicU64::new(0),
            wait: op_timeout + Duration::from_secs(5),
        })
    }

    /// One produce, awaited until librdkafka reports its delivery.
    pub(crate) async fn produce(&self, topic: &str, key: &str, payload: &[u8]) -> Attempt {
        let (tx, rx) = oneshot::channel();
        let record = BaseRecord::with_opaque_to(topic, Box::new(tx))
            .key(key)
            .payload(payload);
        if let Err((e, _)) = self.inner.send(record) {
            // Refused before leaving the client (queue full, too large, unknown topic).
            return not_sent(&e);
        }
        self.produced.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(self.wait, rx).await {
            Ok(Ok(Ok(()))) => Attempt::Applied,
            Ok(Ok(Err((code, status)))) => classify(code, status),
            Ok(Err(_)) => Attempt::Indeterminate(Failure::new(
                "no-delivery-report",
                "the producer went away before reporting the delivery",
            )),
            Err(_) => Attempt::Indeterminate(Failure::new(
                "timeout",
                format!("no delivery report within {:?}", self.wait),
            )),
        }
    }

    /// Several produces in flight at once, each awaited: applied when all are; else
    /// `NotApplied` only when none can have landed, `Indeterminate` otherwise (a
    /// partly appended batch may have landed in part).
    pub(crate) async fn produce_all(&self, topic: &str, items: &[(String, Vec<u8>)]) -> Attempt {
        let attempts =
            futures::future::join_all(items.iter().map(|(k, p)| self.produce(topic, k, p))).await;
        let mut worst: Option<Attempt> = None;
        let mut landed = false;
        for a in attempts {
            match a {
                Attempt::Applied | Attempt::AlreadyThere(_) => landed = true,
                Attempt::Indeterminate(_) => worst = Some(a),
                Attempt::NotApplied(_) if worst.is_none() => worst = Some(a),
                Attempt::NotApplied(_) => {}
            }
        }
        match worst {
            None => Attempt::Applied,
            Some(Attempt::NotApplied(f)) if landed => Attempt::Indeterminate(f),
            Some(a) => a,
        }
    }

    /// (messages produced, messages resent by the producer itself) so far. Resends
    /// = messages transmitted (librdkafka's `txmsgs`, from the last statistics,
    /// every `statistics.interval.ms`) minus messages produced: exact when every
    /// message was transmitted at least once, a lower bound otherwise.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let produced = self.produced.load(Ordering::Relaxed);
        let sent = self.inner.context().transmitted.load(Ordering::Relaxed);
        (produced, sent.saturating_sub(produced))
    }
}

fn not_sent(e: &KafkaError) -> Attempt {
    let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
    Attempt::NotApplied(Failure::new(format!("{code:?}"), e.to_string()).retryable(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafkas_persisted_status_decides_and_the_code_names_the_class() {
        let c = RDKafkaErrorCode::MessageTimedOut;
        match classify(c, Persisted::No) {
            Attempt::NotApplied(f) => assert_eq!(f.class, "MessageTimedOut"),
            other => panic!("{other:?}"),
        }
        match classify(c, Persisted::Possibly) {
            Attempt::Indeterminate(f) => assert_eq!(f.class, "MessageTimedOut"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(RDKafkaErrorCode::NotEnoughReplicas, Persisted::Yes),
            Attempt::Applied
        );
    }
}
