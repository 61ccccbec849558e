//! DynamoDB (moto locally, or any DynamoDB API endpoint) through Toxiproxy.
//!
//! Tables per run: `<ns>_orders` (key `order_id`) and `<ns>_events` (key `event_id`,
//! with `order_id` as an attribute, so a non-idempotent writer can duplicate).
//! Each side has its own SDK client bound to its own proxy address, with the SDK's
//! own retries off: retrying is the pattern's (the application's) decision.
//! The pattern clients live in `dynamodb_clients.rs`, the Streams relay in
//! `dynamodb_relay.rs`, the SDK-side fault source in `dynamodb_faults.rs`.

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::dynamodb_clients::{
    BareClient, DynamoWriter, NaiveClient, PrimaryOnlyClient, TransactionClient,
};
use super::dynamodb_faults::{FaultInterceptor, SideFaults, injected_in};
use super::dynamodb_relay::{RelaySource, StreamsRelay};
use super::{PatternClient, Record, ScanSink, ServerInfo, Store, StoreContext};
use crate::history::SideOutcome;
use crate::order::{Order, order_key, parse_order_key};
use crate::pattern::{KeyPolicy, PatternKind};
use crate::relay::RelayWorker;
use crate::scenario::{FaultKind, FaultSpec, Side};

pub struct DynamoStore {
    ctx: StoreContext,
    clients: BTreeMap<Side, Client>,
    /// Set-up, probe, scans, planting and clean-up: not part of the workload, so
    /// neither its op_timeout nor its injected SDK faults apply.
    admin: BTreeMap<Side, Client>,
    /// SDK-side fault state per side, shared with that side's interceptors.
    faults: BTreeMap<Side, Arc<SideFaults>>,
    info: ServerInfo,
}

/// Table names of one run.
#[derive(Debug, Clone)]
pub struct Tables {
    pub orders: String,
    pub events: String,
}

impl DynamoStore {
    pub async fn connect(ctx: StoreContext) -> anyhow::Result<Self> {
        let op_timeout = ctx.scenario.workload.op_timeout;
        let faults: BTreeMap<Side, Arc<SideFaults>> = Side::ALL
            .into_iter()
            .map(|side| (side, SideFaults::new(ctx.scenario.seed ^ side as u64)))
            .collect();
        let clients = Side::ALL
            .into_iter()
            .map(|side| {
                let client = sdk_client(ctx.endpoint(side), op_timeout, Some(&faults[&side]));
                (side, client)
            })
            .collect();
        let admin = Side::ALL
            .into_iter()
            .map(|side| (side, sdk_client(ctx.endpoint(side), ADMIN_TIMEOUT, None)))
            .collect();
        Ok(Self {
            ctx,
            clients,
            admin,
            faults,
            info: ServerInfo::default(),
        })
    }

    pub fn tables(&self) -> Tables {
        tables(&self.ctx.namespace)
    }

    pub fn client_for(&self, side: Side) -> &Client {
        &self.clients[&side]
    }
}

pub fn tables(namespace: &str) -> Tables {
    Tables {
        orders: format!("{namespace}_orders"),
        events: format!("{namespace}_events"),
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

/// A DynamoDB client for one endpoint, with the side's SDK fault source installed.
/// Bound on one page of a checker scan.
const SCAN_PAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one administrative call (probe, create/delete table, plant).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(8);

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

/// How a failed call is seen by the application: `Fail` when the request certainly
/// did not apply, `Unknown` when it may have.
pub fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: &SdkError<E, HttpResponse>,
) -> (SideOutcome, String) {
    // An `sdk-error` fault raised before sending: certainly not applied.
    if let Some(injected) = injected_in(err) {
        return (SideOutcome::Fail, injected.code);
    }
    match err {
        SdkError::ConstructionFailure(_) => (SideOutcome::Fail, "construction".into()),
        SdkError::TimeoutError(_) => (SideOutcome::Unknown, "timeout".into()),
        SdkError::DispatchFailure(d) => {
            if chain_mentions(err, "refused") {
                (SideOutcome::Fail, "refused".into())
            } else if d.is_timeout() {
                // The connect timeout: nothing was sent.
                (SideOutcome::Fail, "connect-timeout".into())
            } else {
                (SideOutcome::Unknown, "io".into())
            }
        }
        SdkError::ResponseError(_) => (SideOutcome::Unknown, "response".into()),
        SdkError::ServiceError(s) if s.raw().status().as_u16() >= 500 => {
            // The server broke mid-request (moto answers HTML 500s under concurrent
            // transactions): the write may or may not have been applied.
            let class = match s.err().code() {
                Some(code) => code.to_string(),
                None => format!("http-{}", s.raw().status().as_u16()),
            };
            (SideOutcome::Unknown, class)
        }
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("ServiceError").to_string();
            // A 5xx leaves the write's fate unknown; a 4xx says it was not applied.
            let unknown = code == "InternalServerError" || code.contains("ServiceUnavailable");
            (
                if unknown {
                    SideOutcome::Unknown
                } else {
                    SideOutcome::Fail
                },
                code,
            )
        }
        _ => (SideOutcome::Unknown, "other".into()),
    }
}

fn chain_mentions(err: &(dyn std::error::Error + 'static), needle: &str) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        if e.to_string().to_ascii_lowercase().contains(needle)
            || format!("{e:?}").to_ascii_lowercase().contains(needle)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

pub fn error_text<E: std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    err: &SdkError<E, R>,
) -> String {
    let mut text = err.to_string();
    let mut cur = std::error::Error::source(err);
    while let Some(e) = cur {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cur = e.source();
    }
    text
}

pub fn order_item(order: &Order) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("order_id".to_string(), AttributeValue::S(order.key())),
        (
            "customer_id".to_string(),
            AttributeValue::N(order.customer_id.to_string()),
        ),
        (
            "amount_cents".to_string(),
            AttributeValue::N(order.amount_cents.to_string()),
        ),
        (
            "payload".to_string(),
            AttributeValue::S(order.payload.clone()),
        ),
    ])
}

/// The event id: derived from the order (a replay overwrites) or fresh per attempt.
pub fn event_id(order_id: u64, policy: KeyPolicy) -> String {
    match policy {
        KeyPolicy::Stable => format!("e-{}", order_key(order_id)),
        KeyPolicy::Fresh => format!("e-{}-{:016x}", order_key(order_id), rand::random::<u64>()),
    }
}

pub fn event_item(record: &Record, event_id: String) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("event_id".to_string(), AttributeValue::S(event_id)),
        (
            "order_id".to_string(),
            AttributeValue::S(order_key(record.order_id)),
        ),
        (
            "customer_id".to_string(),
            AttributeValue::N(record.customer_id.to_string()),
        ),
        (
            "amount_cents".to_string(),
            AttributeValue::N(record.amount_cents.to_string()),
        ),
    ])
}

/// Reads a record's compared fields back from an item.
pub fn record_of(item: &HashMap<String, AttributeValue>) -> Option<Record> {
    let order_id = item
        .get("order_id")?
        .as_s()
        .ok()
        .and_then(|s| parse_order_key(s))?;
    let n = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX)
    };
    Some(Record {
        order_id,
        customer_id: n("customer_id"),
        amount_cents: n("amount_cents"),
    })
}

/// Backoff with jitter (×0.5 to ×1.5), doubling per attempt, capped at 1 s.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(10));
    let jitter = 0.5 + rand::random::<f64>();
    exp.mul_f64(jitter).min(Duration::from_secs(1))
}

async fn create_table(client: &Client, name: &str, key: &str, stream: bool) -> anyhow::Result<()> {
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
        let endpoint = self.ctx.endpoint(Side::Primary).to_string();
        self.admin[&Side::Primary].list_tables().limit(1).send().await.map_err(|e| {
            anyhow::anyhow!(
                "DynamoDB at {endpoint} (primary side) does not answer: {}\n  hint: start the local stack (scripts/stack up) or check [target] in the scenario",
                error_text(&e)
            )
        })?;
        let server = self.ctx.scenario.target.server.clone();
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
        if moto && self.ctx.scenario.pattern.kind.is_async() {
            // Read in moto's dynamodbstreams/dynamodb models (5.2.5).
            self.info.not_exercised.extend([
                "Streams shard rollover and splits: moto keeps one shard per table, never closed, so the relay's multi-shard and closed-shard paths do not run".to_string(),
                "Streams 24 h retention and 15 min iterator expiry: moto never trims records or expires iterators".to_string(),
            ]);
        }
        Ok(())
    }

    fn server_info(&self) -> ServerInfo {
        self.info.clone()
    }

    async fn prepare(&self) -> anyhow::Result<()> {
        let t = self.tables();
        let client = &self.admin[&Side::Primary];
        let stream = self.ctx.scenario.pattern.kind.is_async();
        create_table(client, &t.orders, "order_id", stream).await?;
        create_table(client, &t.events, "event_id", false).await?;
        Ok(())
    }

    async fn client(&self) -> anyhow::Result<Arc<dyn PatternClient>> {
        let pattern = self.ctx.scenario.pattern.clone();
        let base = DynamoWriter {
            primary: self.clients[&Side::Primary].clone(),
            secondary: self.clients[&Side::Secondary].clone(),
            tables: self.tables(),
            namespace: self.ctx.namespace.clone(),
            pattern,
        };
        Ok(match base.pattern.kind {
            PatternKind::Naive => Arc::new(NaiveClient(base)),
            PatternKind::Transaction => Arc::new(TransactionClient(base)),
            PatternKind::Streams | PatternKind::Outbox => Arc::new(PrimaryOnlyClient(base)),
            other => anyhow::bail!("pattern `{other}` does not apply to dynamodb"),
        })
    }

    async fn relay(&self) -> anyhow::Result<Option<Arc<dyn RelayWorker>>> {
        let pattern = &self.ctx.scenario.pattern;
        let source = match pattern.kind {
            PatternKind::Streams => RelaySource::Changes,
            PatternKind::Outbox => RelaySource::Outbox,
            _ => return Ok(None),
        };
        let endpoint = self.ctx.endpoint(Side::Relay);
        let faults = &self.faults[&Side::Relay];
        let op_timeout = self.ctx.scenario.workload.op_timeout;
        Ok(Some(Arc::new(StreamsRelay::new(
            streams_client(endpoint, op_timeout, Some(faults)),
            self.clients[&Side::Relay].clone(),
            self.tables(),
            source,
            pattern.relay.idempotent,
        ))))
    }

    async fn set_fault(&self, fault: &FaultSpec, active: bool) -> anyhow::Result<()> {
        let FaultKind::SdkError { error, rate, when } = &fault.kind else {
            anyhow::bail!(
                "fault kind `{}` is not supported on dynamodb",
                fault.kind.name()
            );
        };
        let side = &self.faults[&fault.side];
        if active {
            side.activate(fault.index, error, *rate, *when);
        } else {
            side.deactivate(fault.index);
        }
        Ok(())
    }

    async fn scan(&self, side: Side, sink: &mut dyn ScanSink) -> anyhow::Result<()> {
        let t = self.tables();
        let (table, client) = match side {
            Side::Primary => (&t.orders, &self.admin[&Side::Primary]),
            _ => (&t.events, &self.admin[&Side::Secondary]),
        };
        let key = if side == Side::Primary {
            "order_id"
        } else {
            "event_id"
        };
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .customize()
                // A scan page of a large table takes far longer than one write: the
                // checker must not inherit the workload's op_timeout.
                .config_override(
                    aws_sdk_dynamodb::config::Builder::default().timeout_config(
                        TimeoutConfig::builder()
                            .operation_timeout(SCAN_PAGE_TIMEOUT)
                            .operation_attempt_timeout(SCAN_PAGE_TIMEOUT)
                            .build(),
                    ),
                )
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("scan of {table} failed: {}", error_text(&e)))?;
            for item in page.items() {
                match record_of(item) {
                    Some(r) => sink.record(r),
                    None => sink.foreign(
                        item.get(key)
                            .and_then(|v| v.as_s().ok())
                            .map_or("?", |s| s.as_str()),
                    ),
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(()),
            }
        }
    }

    async fn plant(&self, side: Side, record: Record, copies: u32) -> anyhow::Result<()> {
        let t = self.tables();
        for _ in 0..copies.max(1) {
            let (table, item) = match side {
                Side::Primary => {
                    let order = Order {
                        id: record.order_id,
                        customer_id: record.customer_id,
                        amount_cents: record.amount_cents,
                        payload: String::new(),
                    };
                    (&t.orders, order_item(&order))
                }
                _ => (
                    &t.events,
                    event_item(&record, event_id(record.order_id, KeyPolicy::Fresh)),
                ),
            };
            self.admin[&Side::Primary]
                .put_item()
                .table_name(table)
                .set_item(Some(item))
                .send()
                .await?;
        }
        Ok(())
    }

    async fn plant_foreign(&self, side: Side, key: &str) -> anyhow::Result<()> {
        let t = self.tables();
        let (table, attr) = if side == Side::Primary {
            (&t.orders, "order_id")
        } else {
            (&t.events, "event_id")
        };
        self.admin[&Side::Primary]
            .put_item()
            .table_name(table)
            .item(attr, AttributeValue::S(key.to_string()))
            .send()
            .await
            .context("planting a foreign record")?;
        Ok(())
    }

    async fn bare_client(&self, writes: u8) -> Option<Arc<dyn PatternClient>> {
        Some(Arc::new(BareClient {
            primary: self.clients[&Side::Primary].clone(),
            secondary: self.clients[&Side::Secondary].clone(),
            tables: self.tables(),
            writes,
        }))
    }

    async fn drop_namespace(&self) -> anyhow::Result<()> {
        let t = self.tables();
        for table in [&t.orders, &t.events] {
            let _ = self.admin[&Side::Primary]
                .delete_table()
                .table_name(table)
                .send()
                .await;
        }
        Ok(())
    }
}
