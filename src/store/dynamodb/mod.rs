//! DynamoDB (moto locally, or any DynamoDB API endpoint) through Toxiproxy.
//!
//! Tables per run: `<ns>_orders` (key `order_id`) and `<ns>_events` (key
//! `event_id`, see `side.rs`). Each connection (primary, secondary, relay) has its
//! own SDK client bound to its own proxy address, with the SDK's own retries off:
//! retrying is the pattern's (the application's) decision. The sides are in
//! `side.rs`, the atomic writes in `writes.rs`, the Streams relay source in
//! `relay.rs`, the SDK-side fault source in `faults.rs`.

mod faults;
mod relay;
mod side;
mod writes;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use futures::FutureExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use self::faults::{FaultInterceptor, SideFaults};
use self::relay::{Feed, StreamsSource};
use self::side::{DynamoSide, Table, error_text};
use self::writes::{BareClient, OutboxWrite, TransactionWrite};
use super::spec::{BenchSpec, LocalServer, ReadSupport, ServerSpec, StoreSpec, Support};
use super::{Layout, ServerInfo, SideStore, Store, StoreContext};
use crate::pattern::PatternKind;
use crate::pattern::atomic::AtomicWrite;
use crate::relay::RelaySource;
use crate::scenario::{FaultKind, FaultSpec, Side};
use crate::writer::Writer;

pub use self::side::classify;
pub use self::writes::stable_token;

pub static SPEC: StoreSpec = StoreSpec {
    name: "dynamodb",
    about: "the DynamoDB API: moto locally, any DynamoDB endpoint otherwise",
    servers: &[
        ServerSpec {
            name: "moto",
            proxy_prefix: "dynamodb",
            local: Some(LocalServer {
                component: "dynamodb",
                in_memory: true,
            }),
        },
        ServerSpec {
            name: "dynamodb",
            proxy_prefix: "dynamodb",
            local: None,
        },
    ],
    holds_primary: true,
    holds_secondary: true,
    patterns: &[
        (
            PatternKind::Naive,
            Support::Yes {
                how: "PutItem into the orders table, then into the events table",
                options: &[],
            },
        ),
        (
            PatternKind::Transaction,
            Support::Yes {
                how: "one TransactWriteItems with conditions and a deterministic token",
                options: &[
                    "idempotency_token",
                    "on_conflict",
                    "conditions",
                    "secondary_key",
                ],
            },
        ),
        (
            PatternKind::LoggedBatch,
            Support::No("`logged-batch` is a Cassandra construct; use `transaction` or `outbox`"),
        ),
        (
            PatternKind::Outbox,
            Support::Yes {
                how: "outbox attribute on the order item + Streams relay",
                options: &["rearm", "relay.workers"],
            },
        ),
        (
            PatternKind::Streams,
            Support::Yes {
                how: "DynamoDB Streams on orders -> relay -> the secondary side",
                options: &["relay.workers"],
            },
        ),
    ],
    secondary_options: &["secondary_key"],
    secondary_appends: false,
    fault_kinds: &["sdk-error"],
    reads: Some(ReadSupport {
        how: "GetItem by key (the events table by its stable event id; by a GSI on order_id when event ids are fresh)",
        consistency: &["eventually", "strong"],
        not_through_index: &["strong"],
        read_concern: &[],
        read_preference: &[],
    }),
    bench: BenchSpec {
        server: "moto",
        checker_records: 3000,
    },
    connect: |ctx| {
        async move { Ok(Box::new(DynamoStore::connect(ctx)?) as Box<dyn Store>) }.boxed()
    },
};

pub struct DynamoStore {
    ctx: StoreContext,
    /// The workload's clients, one per connection this store serves.
    clients: BTreeMap<Side, Client>,
    /// Set-up, probe, scans, planting and clean-up: not part of the workload, so
    /// neither its op_timeout nor its injected SDK faults apply.
    admin: BTreeMap<Side, Client>,
    /// SDK-side fault state per connection, shared with its interceptors.
    faults: BTreeMap<Side, Arc<SideFaults>>,
    info: ServerInfo,
}

/// Table names of one run.
pub fn tables(namespace: &str) -> (String, String) {
    (format!("{namespace}_orders"), format!("{namespace}_events"))
}

impl DynamoStore {
    pub fn connect(ctx: StoreContext) -> anyhow::Result<Self> {
        let op_timeout = ctx.scenario.workload.op_timeout;
        let sides: Vec<Side> = ctx.sides().collect();
        let faults: BTreeMap<Side, Arc<SideFaults>> = sides
            .iter()
            .map(|side| (*side, SideFaults::new(ctx.scenario.seed ^ *side as u64)))
            .collect();
        let clients = sides
            .iter()
            .map(|side| {
                let client = sdk_client(ctx.endpoint(*side), op_timeout, Some(&faults[side]));
                (*side, client)
            })
            .collect();
        let admin = sides
            .iter()
            .map(|side| (*side, sdk_client(ctx.endpoint(*side), ADMIN_TIMEOUT, None)))
            .collect();
        Ok(Self {
            ctx,
            clients,
            admin,
            faults,
            info: ServerInfo::default(),
        })
    }

    fn client(&self, side: Side) -> anyhow::Result<&Client> {
        self.clients.get(&side).ok_or_else(|| {
            anyhow::anyhow!("this dynamodb store does not serve the {side} connection")
        })
    }

    /// The admin client of any connection this store serves (set-up and scans).
    fn admin(&self) -> &Client {
        self.admin
            .values()
            .next()
            .expect("a store serves at least one connection")
    }
}

/// The SDK settings every client of this store shares, for one endpoint.
/// Credentials come from the environment when set (never from scenario files); the
/// local stack accepts any.
pub fn sdk_config(endpoint: &str, op_timeout: Duration) -> aws_config::SdkConfig {
    let credentials = match (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Ok(id), Ok(secret)) => Credentials::new(
            id,
            secret,
            std::env::var("AWS_SESSION_TOKEN").ok(),
            None,
            "environment",
        ),
        _ => Credentials::new(
            "dualwrite-local",
            "dualwrite-local",
            None,
            None,
            "local-stack",
        ),
    };
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(aws_credential_provider(credentials))
        .endpoint_url(url)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(op_timeout)
                .operation_timeout(op_timeout)
                .build(),
        )
        .build()
}

fn aws_credential_provider(
    credentials: Credentials,
) -> aws_sdk_dynamodb::config::SharedCredentialsProvider {
    aws_sdk_dynamodb::config::SharedCredentialsProvider::new(credentials)
}

/// Bound on one administrative call (probe, create/delete table, plant).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(8);
/// The least bound on one call of the relay (as the MongoDB relay's).
const RELAY_TIMEOUT: Duration = Duration::from_secs(2);

/// A DynamoDB client for one endpoint, with the side's SDK fault source installed.
pub fn sdk_client(
    endpoint: &str,
    op_timeout: Duration,
    faults: Option<&Arc<SideFaults>>,
) -> Client {
    let mut config = aws_sdk_dynamodb::config::Builder::from(&sdk_config(endpoint, op_timeout));
    if let Some(f) = faults {
        config = config.interceptor(FaultInterceptor::new(f.clone()));
    }
    Client::from_conf(config.build())
}

/// A DynamoDB Streams client for one endpoint (moto serves Streams on the same one).
pub fn streams_client(
    endpoint: &str,
    op_timeout: Duration,
    faults: Option<&Arc<SideFaults>>,
) -> aws_sdk_dynamodbstreams::Client {
    let mut config =
        aws_sdk_dynamodbstreams::config::Builder::from(&sdk_config(endpoint, op_timeout));
    if let Some(f) = faults {
        config = config.interceptor(FaultInterceptor::new(f.clone()));
    }
    aws_sdk_dynamodbstreams::Client::from_conf(config.build())
}

/// Creates a table keyed by `key`, with a stream, and with a keys-only index on
/// `order_id` (readers of events with fresh ids) when asked.
async fn create_table(
    client: &Client,
    name: &str,
    key: &str,
    stream: bool,
    order_index: bool,
) -> anyhow::Result<()> {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()?,
        );
    if order_index {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("order_id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(side::ORDER_INDEX)
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("order_id")
                            .key_type(KeyType::Hash)
                            .build()?,
                    )
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()?,
            );
    }
    if stream {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()?,
        );
    }
    match req.send().await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(()), // already there
        Err(e) => Err(anyhow::anyhow!(
            "cannot create table {name}: {}",
            error_text(&e)
        )),
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn probe(&mut self) -> anyhow::Result<()> {
        let side = self.ctx.sides().next().unwrap_or(Side::Primary);
        let endpoint = self.ctx.endpoint(side).to_string();
        self.admin().list_tables().limit(1).send().await.map_err(|e| {
            anyhow::anyhow!(
                "DynamoDB at {endpoint} ({side} side) does not answer: {}\n  hint: start the local stack (scripts/stack up) or check [target] in the scenario",
                error_text(&e)
            )
        })?;
        let server = self.ctx.server.clone();
        let moto = server == "moto";
        self.info = ServerInfo {
            product: server,
            version: String::new(),
            capabilities: BTreeMap::from([
                ("transactions".to_string(), true),
                ("streams".to_string(), true),
                ("client_request_token_idempotency".to_string(), !moto),
                ("transaction_conflicts".to_string(), !moto),
                ("throttling".to_string(), !moto),
            ]),
            not_exercised: if moto {
                vec![
                    "ClientRequestToken idempotency: moto re-executes a replayed token".into(),
                    "TransactionConflictException: moto never raises it (inject it with an sdk-error fault)".into(),
                    "server-side throttling: moto never throttles (use sdk-error faults)".into(),
                    "concurrent TransactWriteItems: moto is not thread-safe there and answers HTTP 500 (classified unknown)".into(),
                ]
            } else {
                Vec::new()
            },
        };
        if moto && self.ctx.scenario.readers.is_some() {
            // Read in moto's dynamodb models (5.2.5): GetItem ignores ConsistentRead.
            self.info.not_exercised.push(
                "eventually consistent reads: moto serves every read from its one copy, so `eventually` reads see what `strong` reads see (a replica lag never shows)".into(),
            );
        }
        if moto && self.ctx.is_primary() && self.ctx.scenario.pattern.kind.is_async() {
            // Read in moto's dynamodbstreams/dynamodb models (5.2.5).
            self.info.not_exercised.extend([
                "Streams shard rollover and splits: moto keeps one shard per table, never closed, so the relay's multi-shard and closed-shard paths do not run".to_string(),
                "Streams 24 h retention and 15 min iterator expiry: moto never trims records or expires iterators".to_string(),
                "Streams of unchanged items: moto writes a MODIFY record for a put that changes nothing (DynamoDB writes none), so an application retry of an unchanged item can be relayed twice here; such duplicates are attributed to that cause".to_string(),
            ]);
        }
        Ok(())
    }

    fn server_info(&self) -> ServerInfo {
        self.info.clone()
    }

    async fn prepare(&self) -> anyhow::Result<()> {
        let (orders, events) = tables(&self.ctx.namespace);
        let stream = self.ctx.scenario.pattern.kind.is_async();
        // Readers find events with fresh ids through an index on the order id.
        let scenario = &self.ctx.scenario;
        let order_index = scenario.readers.is_some()
            && scenario.pattern.secondary_key_policy() == crate::pattern::KeyPolicy::Fresh;
        if self.ctx.serves(Side::Primary) {
            create_table(self.admin(), &orders, "order_id", stream, false).await?;
        }
        if self.ctx.serves(Side::Secondary) {
            create_table(self.admin(), &events, "event_id", false, order_index).await?;
        }
        Ok(())
    }

    async fn side(&self, side: Side) -> anyhow::Result<Arc<dyn SideStore>> {
        let (orders, events) = tables(&self.ctx.namespace);
        let (table, name) = match side {
            Side::Primary => (Table::Orders, orders),
            _ => (Table::Events, events),
        };
        Ok(Arc::new(DynamoSide {
            client: self.client(side)?.clone(),
            admin: self.admin[&side].clone(),
            table,
            name,
            app: None,
        }))
    }

    async fn atomic_write(&self) -> anyhow::Result<Arc<dyn AtomicWrite>> {
        let pattern = &self.ctx.scenario.pattern;
        let (orders, events) = tables(&self.ctx.namespace);
        let client = self.client(Side::Primary)?.clone();
        Ok(match pattern.kind {
            PatternKind::Transaction => Arc::new(TransactionWrite {
                client,
                orders,
                events,
                namespace: self.ctx.namespace.clone(),
                pattern: pattern.clone(),
            }),
            PatternKind::Outbox => Arc::new(OutboxWrite {
                client,
                orders,
                rearm: pattern.rearm,
            }),
            other => anyhow::bail!("pattern `{other}` has no atomic write on dynamodb"),
        })
    }

    async fn relay_source(&self) -> anyhow::Result<Arc<dyn RelaySource>> {
        let source = match self.ctx.scenario.pattern.kind {
            PatternKind::Streams => Feed::Changes,
            PatternKind::Outbox => Feed::Outbox,
            other => anyhow::bail!("pattern `{other}` has no relay"),
        };
        let endpoint = self.ctx.endpoint(Side::Relay);
        // The relay is a background worker with its own bound, not the timed
        // workload: a GetRecords page on a busy server takes longer than one write.
        let limit = self.ctx.scenario.workload.op_timeout.max(RELAY_TIMEOUT);
        let faults = &self.faults[&Side::Relay];
        Ok(Arc::new(StreamsSource::new(
            streams_client(endpoint, limit, Some(faults)),
            sdk_client(endpoint, limit, Some(faults)),
            tables(&self.ctx.namespace).0,
            source,
        )))
    }

    async fn set_fault(&self, fault: &FaultSpec, active: bool) -> anyhow::Result<()> {
        let FaultKind::SdkError { error, rate, when } = &fault.kind else {
            anyhow::bail!(
                "fault kind `{}` is not supported on dynamodb",
                fault.kind.name()
            );
        };
        let side = self.faults.get(&fault.side).ok_or_else(|| {
            anyhow::anyhow!("this dynamodb store does not serve the {} side", fault.side)
        })?;
        if active {
            side.activate(fault.index, error, *rate, *when);
        } else {
            side.deactivate(fault.index);
        }
        Ok(())
    }

    fn injected_faults(&self) -> BTreeMap<String, u64> {
        self.faults
            .iter()
            .map(|(side, f)| {
                (
                    format!("sdk-error@{side}"),
                    f.injected.load(Ordering::Relaxed),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    async fn bare_client(&self, writes: u8) -> Option<Arc<dyn Writer>> {
        let (orders, events) = tables(&self.ctx.namespace);
        Some(
            BareClient {
                primary: self.clients.get(&Side::Primary)?.clone(),
                secondary: self.clients.get(&Side::Secondary)?.clone(),
                orders,
                events,
                writes,
            }
            .writer(),
        )
    }

    async fn app_side(
        &self,
        side: Side,
        layout: Arc<Layout>,
    ) -> anyhow::Result<Arc<dyn SideStore>> {
        Ok(Arc::new(DynamoSide {
            client: self.client(side)?.clone(),
            admin: self.admin[&side].clone(),
            table: if side == Side::Primary {
                Table::Orders
            } else {
                Table::Events
            },
            name: layout.table.clone(),
            app: Some(layout),
        }))
    }

    async fn create_location(&self, _side: Side, layout: &Layout) -> anyhow::Result<()> {
        create_table(self.admin(), &layout.table, &layout.key, false, false).await
    }

    async fn drop_location(&self, _side: Side, layout: &Layout) -> anyhow::Result<()> {
        match self
            .admin()
            .delete_table()
            .table_name(&layout.table)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(anyhow::anyhow!(
                "cannot drop table {}: {}",
                layout.table,
                error_text(&e)
            )),
        }
    }

    async fn drop_namespace(&self) -> anyhow::Result<()> {
        let (orders, events) = tables(&self.ctx.namespace);
        let mine = [(Side::Primary, orders), (Side::Secondary, events)];
        for (side, table) in mine {
            if self.ctx.serves(side) {
                let _ = self.admin().delete_table().table_name(table).send().await;
            }
        }
        Ok(())
    }
}
