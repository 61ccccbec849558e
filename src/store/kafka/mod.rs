//! Apache Kafka as the second system: a topic holds the secondary side (the
//! orders' events), written by the application (`naive`) or by a relay from the
//! primary store's outbox or change feed (`outbox`, `streams`). Kafka holds no
//! primary side, so every pattern here has another store as its primary.
//!
//! The client is `rdkafka` (librdkafka 2.12, built from source): it has
//! transactions and `read_committed` consumers, which exactly-once relaying needs
//! (docs/KAFKA.md says why not the pure-Rust `rskafka`). Topics per run:
//! `<namespace>.events` (the side, `side.rs`) and `<namespace>.relay-positions`
//! (compacted: the exactly-once relay's committed source positions,
//! `exactly_once.rs`); both deleted at the end.
//!
//! Every connection goes through the side's proxy: the broker advertises one
//! listener per side as that side's proxy address (scripts/lib/kafka.sh), so the
//! connections librdkafka opens after bootstrap stay on it. Producer settings:
//! `acks=all`; `enable.idempotence` from the pattern's `idempotence`;
//! `message.timeout.ms` = op_timeout (the delivery report always comes by then);
//! `socket.timeout.ms` (librdkafka's client-side timeout of a request; the Java
//! client's `request.timeout.ms`) and `request.timeout.ms` (the broker's ack
//! timeout) = a third of it, at least 1 s (shorter ones time requests out on a
//! merely busy machine), so a lost answer is retried by the producer itself
//! within an operation — a duplicate unless idempotent (`produce.rs`).

mod exactly_once;
mod produce;
mod read;
mod side;

use async_trait::async_trait;
use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use self::exactly_once::ExactlyOnce;
use self::produce::Producer;
use self::side::KafkaSide;
use super::spec::{BenchSpec, Footprint, LocalServer, ServerSpec, StoreSpec, Support};
use super::{ServerInfo, SideStore, Store, StoreContext};
use crate::pattern::PatternKind;
use crate::relay::ExactlyOnceSink;
use crate::scenario::Side;

const NOT_PRIMARY: Support = Support::No(
    "Kafka holds only the secondary side (a topic); put the primary side in dynamodb, cassandra or mongodb ([target.primary] store = ...) and the secondary in kafka",
);

pub static SPEC: StoreSpec = StoreSpec {
    name: "kafka",
    about: "Apache Kafka through librdkafka (one KRaft broker locally): a topic as the secondary side",
    servers: &[ServerSpec {
        name: "kafka",
        proxy_prefix: "kafka",
        local: Some(LocalServer {
            component: "kafka",
            in_memory: false,
        }),
    }],
    holds_primary: false,
    holds_secondary: true,
    patterns: &[
        (PatternKind::Naive, NOT_PRIMARY),
        (PatternKind::Transaction, NOT_PRIMARY),
        (PatternKind::LoggedBatch, NOT_PRIMARY),
        (PatternKind::Outbox, NOT_PRIMARY),
        (PatternKind::Streams, NOT_PRIMARY),
    ],
    secondary_options: &["idempotence", "relay.delivery"],
    secondary_appends: true,
    fault_kinds: &[],
    // A topic has no point read by order: readers read tables and collections.
    reads: None,
    // Plain connections only: the broker's listeners here have no TLS or SASL.
    connection_options: &[],
    connection_note: "Kafka is reached in plain text without a login (the local broker's listeners); TLS and SASL are not supported yet.",
    footprint: |_, ns, _| Footprint {
        creates: vec![
            format!("topic {} (1 partition)", events_topic(ns)),
            format!(
                "topic {} (compacted: an exactly-once relay's committed source positions)",
                positions_topic(ns)
            ),
        ],
        drops: vec![format!(
            "topics {} and {}",
            events_topic(ns),
            positions_topic(ns)
        )],
    },
    bench: BenchSpec {
        server: "kafka",
        checker_records: 20000,
    },
    connect: |ctx| {
        async move { Ok(Box::new(KafkaStore::connect(ctx).await?) as Box<dyn Store>) }.boxed()
    },
};

/// How often librdkafka reports statistics (the resend count is read from them).
const STATS_INTERVAL_MS: u32 = 200;

pub struct KafkaStore {
    ctx: StoreContext,
    endpoint: String,
    producer: Arc<Producer>,
    admin: AdminClient<DefaultClientContext>,
    info: ServerInfo,
}

/// The run's topic names.
fn events_topic(namespace: &str) -> String {
    format!("{namespace}.events")
}

fn positions_topic(namespace: &str) -> String {
    format!("{namespace}.relay-positions")
}

/// Connection settings every client of a side shares.
fn connection(endpoint: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", endpoint)
        .set("client.id", "dualwrite")
        .set("broker.address.family", "v4")
        .set("socket.connection.setup.timeout.ms", "3000")
        // Back quickly after an outage (the default backs off up to 10 s).
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500");
    c
}

/// The application's producer settings (see the module comment).
fn producer_config(endpoint: &str, op_timeout: Duration, idempotence: bool) -> ClientConfig {
    let ms = op_timeout.as_millis().max(300) as u64;
    let mut c = connection(endpoint);
    c.set("acks", "all")
        .set(
            "enable.idempotence",
            if idempotence { "true" } else { "false" },
        )
        .set("message.timeout.ms", ms.to_string())
        // librdkafka times a produce request out on the client after
        // socket.timeout.ms (request.timeout.ms is the broker's ack timeout).
        .set("socket.timeout.ms", (ms / 3).max(1000).to_string())
        .set("request.timeout.ms", (ms / 3).max(1000).to_string())
        .set("retry.backoff.ms", "20")
        .set("retry.backoff.max.ms", "200")
        .set("linger.ms", "0")
        .set("statistics.interval.ms", STATS_INTERVAL_MS.to_string());
    c
}

impl KafkaStore {
    pub async fn connect(ctx: StoreContext) -> anyhow::Result<Self> {
        let endpoint = ctx.endpoint(Side::Secondary).to_string();
        let scenario = &ctx.scenario;
        let config = producer_config(
            &endpoint,
            scenario.workload.op_timeout,
            scenario.pattern.idempotence,
        );
        let producer = Arc::new(Producer::new(&config, scenario.workload.op_timeout)?);
        let admin: AdminClient<DefaultClientContext> = connection(&endpoint)
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create a Kafka admin client: {e}"))?;
        Ok(Self {
            ctx,
            endpoint,
            producer,
            admin,
            info: ServerInfo::default(),
        })
    }

    fn events(&self) -> String {
        events_topic(&self.ctx.namespace)
    }

    fn positions(&self) -> String {
        positions_topic(&self.ctx.namespace)
    }

    fn hint(&self) -> String {
        format!(
            "Kafka at {} (secondary side) does not answer\n  hint: is the broker up (scripts/stack up --only kafka) and the proxy enabled? see scripts/PORTS.md",
            self.endpoint
        )
    }
}

#[async_trait]
impl Store for KafkaStore {
    async fn probe(&mut self) -> anyhow::Result<()> {
        let admin_config = connection(&self.endpoint);
        let brokers = tokio::task::spawn_blocking(move || {
            let client: rdkafka::producer::BaseProducer = admin_config.create()?;
            rdkafka::producer::Producer::client(&client)
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|m| m.brokers().len())
        })
        .await?
        .map_err(|e| anyhow::anyhow!("{}: {e}", self.hint()))?;
        if brokers == 0 {
            anyhow::bail!("{}: no broker in its metadata", self.hint());
        }
        self.info = ServerInfo {
            product: self.ctx.server.clone(),
            version: String::new(),
            capabilities: BTreeMap::from([
                ("transactions".to_string(), true),
                ("read_committed".to_string(), true),
                ("idempotent_producer".to_string(), true),
            ]),
            not_exercised: vec![
                "one broker with one replica per partition: leader fail-over, ISR shrinking (NOT_ENOUGH_REPLICAS) and unclean leader election cannot happen; faults sit between the client and the broker, or kill/pause the broker".into(),
            ],
        };
        Ok(())
    }

    fn server_info(&self) -> ServerInfo {
        self.info.clone()
    }

    async fn prepare(&self) -> anyhow::Result<()> {
        let (events_name, positions_name) = (self.events(), self.positions());
        let events = NewTopic::new(&events_name, 1, TopicReplication::Fixed(1));
        let positions = NewTopic::new(&positions_name, 1, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact");
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = tokio::time::timeout(
            Duration::from_secs(40),
            self.admin.create_topics([&events, &positions], &options),
        )
        .await
        .map_err(|_| anyhow::anyhow!("{}: creating topics took over 40s", self.hint()))?
        .map_err(|e| anyhow::anyhow!("{}: {e}", self.hint()))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => anyhow::bail!("creating Kafka topic {topic}: {code}"),
            }
        }
        Ok(())
    }

    async fn side(&self, side: Side) -> anyhow::Result<Arc<dyn SideStore>> {
        if side == Side::Primary {
            anyhow::bail!("a Kafka topic holds only the secondary side");
        }
        Ok(Arc::new(KafkaSide {
            producer: self.producer.clone(),
            endpoint: self.endpoint.clone(),
            topic: self.events(),
        }))
    }

    async fn exactly_once_sink(&self) -> anyhow::Result<Arc<dyn ExactlyOnceSink>> {
        Ok(Arc::new(ExactlyOnce::new(
            connection(&self.endpoint),
            self.endpoint.clone(),
            self.events(),
            self.positions(),
            self.ctx.namespace.clone(),
        )))
    }

    fn client_counts(&self) -> BTreeMap<String, u64> {
        let (produced, resent) = self.producer.counts();
        if produced == 0 {
            return BTreeMap::new();
        }
        BTreeMap::from([
            ("produced@secondary".to_string(), produced),
            ("resent@secondary".to_string(), resent),
        ])
    }

    async fn drop_namespace(&self) -> anyhow::Result<()> {
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let (events, positions) = (self.events(), self.positions());
        let results = tokio::time::timeout(
            Duration::from_secs(40),
            self.admin
                .delete_topics(&[events.as_str(), positions.as_str()], &options),
        )
        .await
        .map_err(|_| anyhow::anyhow!("deleting the run's Kafka topics took over 40s"))??;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => anyhow::bail!("deleting Kafka topic {topic}: {code}"),
            }
        }
        Ok(())
    }
}
