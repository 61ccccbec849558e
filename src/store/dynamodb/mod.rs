//! DynamoDB (moto locally, or any DynamoDB API endpoint) through Toxiproxy.
//!
//! Tables per run: `<ns>_orders` (key `order_id`) and `<ns>_events` (key
//! `event_id`, see `side.rs`). Each connection (primary, secondary, relay) has its
//! own SDK client bound to its own proxy address, with the SDK's own retries off:
//! retrying is the pattern's (the application's) decision. The sides are in
//! `side.rs`, the atomic writes in `writes.rs`, the Streams relay source in
//! `relay.rs`, the SDK-side fault source in `faults.rs`.

mod capacity;
mod conn;
mod faults;
mod relay;
mod side;
mod writes;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use futures::FutureExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use self::capacity::CapacityCounter;
pub use self::conn::DynamoConn;
use self::faults::SideFaults;
use self::relay::{Feed, StreamsSource};
use self::side::{DynamoSide, Table, error_text};
use self::writes::{BareClient, OutboxWrite, TransactionWrite};
use super::spec::{BenchSpec, Footprint, LocalServer, ReadSupport, ServerSpec, StoreSpec, Support};
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
        coordinator_servers: &[],
    }),
    connection_options: &["region", "profile", "tls", "tls_ca_file", "tls_server_name"],
    footprint: |scenario, ns, sides| {
        let (orders, events) = tables(ns);
        let mut layout = Footprint::default();
        if sides.contains(&Side::Primary) {
            let stream = if scenario.pattern.kind.is_async() {
                ", stream of new and old images"
            } else {
                ""
            };
            layout
                .creates
                .push(format!("table {orders} (key order_id, on-demand{stream})"));
            layout.drops.push(format!("table {orders}"));
        }
        if sides.contains(&Side::Secondary) {
            layout
                .creates
                .push(format!("table {events} (key event_id, on-demand)"));
            layout.drops.push(format!("table {events}"));
        }
        layout
    },
    connection_note: "DynamoDB signs requests with AWS credentials from the SDK (environment, `profile` of the shared config and credentials files, SSO, web identity, container or instance role), never a user and password or a client certificate.",
    bench: BenchSpec {
        server: "moto",
        checker_records: 3000,
    },
    connect: |ctx| {
        async move { Ok(Box::new(DynamoStore::connect(ctx).await?) as Box<dyn Store>) }.boxed()
    },
};

pub struct DynamoStore {
    ctx: StoreContext,
    /// Each connection's endpoint, credentials and region.
    conns: BTreeMap<Side, DynamoConn>,
    /// The workload's clients, one per connection this store serves.
    clients: BTreeMap<Side, Client>,
    /// Set-up, probe, scans, planting and clean-up: not part of the workload, so
    /// neither its op_timeout nor its injected SDK faults apply.
    admin: BTreeMap<Side, Client>,
    /// SDK-side fault state per connection, shared with its interceptors.
    faults: BTreeMap<Side, Arc<SideFaults>>,
    /// Capacity used by the workload's and the relay's clients (`capacity.rs`).
    capacity: Arc<CapacityCounter>,
    /// The run's tables that existed before it (never deleted).
    before: std::sync::Mutex<Vec<String>>,
    info: ServerInfo,
}

/// Table names of one run.
pub fn tables(namespace: &str) -> (String, String) {
    (format!("{namespace}_orders"), format!("{namespace}_events"))
}

impl DynamoStore {
    pub async fn connect(ctx: StoreContext) -> anyhow::Result<Self> {
        let op_timeout = ctx.scenario.workload.op_timeout;
        let sides: Vec<Side> = ctx.sides().collect();
        let faults: BTreeMap<Side, Arc<SideFaults>> = sides
            .iter()
            .map(|side| (*side, SideFaults::new(ctx.scenario.seed ^ *side as u64)))
            .collect();
        let mut conns = BTreeMap::new();
        for side in &sides {
            let conn = DynamoConn::new(ctx.endpoint(*side), *side, &ctx.scenario).await?;
            conns.insert(*side, conn);
        }
        let (_, events) = tables(&ctx.namespace);
        let indexes = if order_index(&ctx.scenario) {
            vec![(events, "order_id".to_string())]
        } else {
            Vec::new()
        };
        // moto's ConsumedCapacity is constants, not DynamoDB's accounting.
        let capacity = CapacityCounter::new(indexes, ctx.server != "moto");
        let clients = sides
            .iter()
            .map(|side| {
                let client = conns[side].counted_client(
                    op_timeout,
                    Some(&faults[side]),
                    Some((&capacity, *side)),
                );
                (*side, client)
            })
            .collect();
        let admin = sides
            .iter()
            .map(|side| (*side, conns[side].client(ADMIN_TIMEOUT, None)))
            .collect();
        Ok(Self {
            ctx,
            conns,
            clients,
            admin,
            faults,
            capacity,
            before: Default::default(),
            info: ServerInfo::default(),
        })
    }

    /// The tables of the run this store holds: orders (primary), events (secondary).
    fn own_tables(&self) -> Vec<String> {
        let (orders, events) = tables(&self.ctx.namespace);
        let mut own = Vec::new();
        if self.ctx.serves(Side::Primary) {
            own.push(orders);
        }
        if self.ctx.serves(Side::Secondary) {
            own.push(events);
        }
        own
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

/// Whether the events table gets an index on the order id: readers find events
/// with fresh ids through it.
fn order_index(scenario: &crate::scenario::Scenario) -> bool {
    scenario.readers.is_some()
        && scenario.pattern.secondary_key_policy() == crate::pattern::KeyPolicy::Fresh
}

/// Bound on one administrative call (probe, create/delete table, plant).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(8);
/// The least bound on one call of the relay (as the MongoDB relay's).
const RELAY_TIMEOUT: Duration = Duration::from_secs(2);

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
        // Reachability and credentials were proven by `existing` (DescribeTable on
        // the run's own tables: no account-wide ListTables permission needed).
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

    async fn existing(&self) -> anyhow::Result<Vec<String>> {
        let side = self.ctx.sides().next().unwrap_or(Side::Primary);
        let endpoint = self.ctx.endpoint(side).to_string();
        let mut found = Vec::new();
        for table in self.own_tables() {
            match self
                .admin()
                .describe_table()
                .table_name(&table)
                .send()
                .await
            {
                Ok(_) => found.push(table),
                Err(e) if e.code() == Some("ResourceNotFoundException") => {}
                Err(e) => anyhow::bail!(
                    "DynamoDB at {endpoint} ({side} side) does not answer DescribeTable {table}: {}\n  hint: start the local stack (scripts/stack up) or check [target] in the scenario; credentials from {}",
                    error_text(&e),
                    self.conns[&side].credentials_source
                ),
            }
        }
        *self.before.lock().expect("not poisoned") = found.clone();
        Ok(found.into_iter().map(|t| format!("table {t}")).collect())
    }

    async fn prepare(&self) -> anyhow::Result<()> {
        let (orders, events) = tables(&self.ctx.namespace);
        let stream = self.ctx.scenario.pattern.kind.is_async();
        let order_index = order_index(&self.ctx.scenario);
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
        // The relay is a background worker with its own bound, not the timed
        // workload: a GetRecords page on a busy server takes longer than one write.
        let limit = self.ctx.scenario.workload.op_timeout.max(RELAY_TIMEOUT);
        let faults = &self.faults[&Side::Relay];
        let conn = self
            .conns
            .get(&Side::Relay)
            .ok_or_else(|| anyhow::anyhow!("this dynamodb store does not serve the relay"))?;
        let capacity = Some((&self.capacity, Side::Relay));
        Ok(Arc::new(StreamsSource::new(
            conn.streams_client(limit, Some(faults), capacity),
            conn.counted_client(limit, Some(faults), capacity),
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

    async fn capacity(&self, orders: u64) -> crate::result::CapacityResult {
        let figures = self.capacity.figures(orders);
        let mut notes = Vec::new();
        for f in &figures {
            if let (Some(total), Some(server)) = (f.total, f.reported_total)
                && f.source == crate::result::CapacitySource::Modelled
            {
                notes.push(format!(
                    "dynamodb {}: modelled from DynamoDB's sizing rules ({total} {}); {} answered ConsumedCapacity on {} of {} calls, {server} {} in all, constants rather than DynamoDB's accounting",
                    f.name,
                    f.unit,
                    self.ctx.server,
                    f.reported_attempts.unwrap_or(0),
                    f.attempts.unwrap_or(0),
                    f.unit
                ));
            }
        }
        crate::result::CapacityResult {
            orders,
            figures,
            notes,
        }
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
        let before = self.before.lock().expect("not poisoned").clone();
        for table in self.own_tables() {
            if !before.contains(&table) {
                let _ = self.admin().delete_table().table_name(table).send().await;
            }
        }
        Ok(())
    }
}
