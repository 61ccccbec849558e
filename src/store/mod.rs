//! Stores: one file per store, each holding what that store forces: connection
//! through the side's proxy, namespace set-up, the pattern clients, the relay worker,
//! the full scan for the checker, and planting records for checker tests.
//!
//! Adding a store = one new file implementing [`Store`] + one arm in [`connect`].

pub mod cassandra;
mod cassandra_relay;
pub mod dynamodb;
pub mod dynamodb_clients;
pub mod dynamodb_faults;
pub mod dynamodb_relay;
pub mod mongodb;
mod mongodb_relay;

use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::history::OpReport;
use crate::order::Order;
use crate::relay::RelayWorker;
use crate::scenario::{FaultSpec, Scenario, Side, StoreKind};

/// A record as the checker sees it, from either side. 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub order_id: u64,
    pub customer_id: u64,
    pub amount_cents: u64,
}

impl Record {
    pub fn of(order: &Order) -> Self {
        Self {
            order_id: order.id,
            customer_id: order.customer_id,
            amount_cents: order.amount_cents,
        }
    }
}

/// Receives a full scan of one side.
pub trait ScanSink: Send {
    fn record(&mut self, record: Record);
    /// A record whose key this tool did not write (not an order key).
    fn foreign(&mut self, key: &str);
}

/// Everything a store needs to connect for one run.
#[derive(Debug, Clone)]
pub struct StoreContext {
    pub scenario: Arc<Scenario>,
    /// Unique per run: tables/collections/keyspace are named from it.
    pub namespace: String,
    /// Address (`host:port`) each side connects to: the proxy's listen address.
    pub endpoints: BTreeMap<Side, String>,
}

impl StoreContext {
    pub fn endpoint(&self, side: Side) -> &str {
        self.endpoints
            .get(&side)
            .map(String::as_str)
            .unwrap_or("127.0.0.1:0")
    }
}

/// What the server is and can do, recorded in every result.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ServerInfo {
    pub product: String,
    pub version: String,
    /// Capability name -> supported.
    pub capabilities: BTreeMap<String, bool>,
    /// Behaviours this server cannot exercise (so a zero means less than it seems).
    pub not_exercised: Vec<String>,
}

/// Performs one logical operation of a pattern: one order written to both sides.
#[async_trait]
pub trait PatternClient: Send + Sync {
    /// Never panics; errors are data in the report.
    async fn write(&self, order: &Order) -> OpReport;
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Probes the server, fills [`Store::server_info`], and fails with a clear
    /// message when the scenario needs a capability the server lacks.
    async fn probe(&mut self) -> anyhow::Result<()>;

    fn server_info(&self) -> ServerInfo;

    /// Creates the run's tables/collections (idempotent).
    async fn prepare(&self) -> anyhow::Result<()>;

    /// The client for the scenario's pattern.
    async fn client(&self) -> anyhow::Result<Arc<dyn PatternClient>>;

    /// The relay worker for async patterns (`None` for synchronous ones).
    async fn relay(&self) -> anyhow::Result<Option<Arc<dyn RelayWorker>>>;

    /// Full scan of one side (primary or secondary), every record to `sink`.
    async fn scan(&self, side: Side, sink: &mut dyn ScanSink) -> anyhow::Result<()>;

    /// Writes a record directly to one side, bypassing any pattern (checker tests).
    /// `copies` > 1 writes the same logical order several times where the side allows it.
    async fn plant(&self, side: Side, record: Record, copies: u32) -> anyhow::Result<()>;

    /// Writes a record with a key this tool never writes (stray tests).
    async fn plant_foreign(&self, side: Side, key: &str) -> anyhow::Result<()>;

    /// Store-side fault sources (SDK errors, fail points); network faults go to Toxiproxy.
    async fn set_fault(&self, fault: &FaultSpec, active: bool) -> anyhow::Result<()> {
        let _ = active;
        anyhow::bail!(
            "fault kind `{}` is not supported on this store",
            fault.kind.name()
        )
    }

    /// Benchmark only: a client doing the pattern's raw writes with no policy logic
    /// (`writes` = 1: the primary only, the single-write baseline; 2: both sides),
    /// to measure dualwrite's own overhead. `None` where not built.
    async fn bare_client(&self, writes: u8) -> Option<Arc<dyn PatternClient>> {
        let _ = writes;
        None
    }

    /// Drops the run's namespace.
    async fn drop_namespace(&self) -> anyhow::Result<()>;
}

/// Connects to the scenario's store. Errors here are infrastructure errors (exit 3).
pub async fn connect(ctx: StoreContext) -> anyhow::Result<Box<dyn Store>> {
    let mut store: Box<dyn Store> = match ctx.scenario.target.store {
        StoreKind::DynamoDb => Box::new(dynamodb::DynamoStore::connect(ctx).await?),
        StoreKind::Cassandra => Box::new(cassandra::CassandraStore::connect(ctx).await?),
        StoreKind::MongoDb => Box::new(mongodb::MongoStore::connect(ctx).await?),
    };
    store.probe().await?;
    Ok(store)
}

/// Where each side connects: the proxy's listen address (asked from Toxiproxy), or
/// the side's direct endpoint.
pub async fn resolve_endpoints(
    target: &crate::scenario::Target,
    toxiproxy: &crate::fault::toxiproxy::Toxiproxy,
) -> anyhow::Result<BTreeMap<Side, String>> {
    let mut endpoints = BTreeMap::new();
    for side in Side::ALL {
        let address = match target.endpoint(side) {
            crate::scenario::SideEndpoint::Proxy(name) => toxiproxy.proxy(name).await?.listen,
            crate::scenario::SideEndpoint::Direct(e) => e.clone(),
        };
        // Toxiproxy may report a wildcard listen address; connect on loopback.
        endpoints.insert(
            side,
            address
                .replace("[::]", "127.0.0.1")
                .replace("0.0.0.0", "127.0.0.1"),
        );
    }
    Ok(endpoints)
}

/// Connects to the scenario's store in a fresh namespace, for tests and tools
/// that plant or scan records outside a run.
pub async fn connect_fresh(scenario: Arc<Scenario>) -> anyhow::Result<(Box<dyn Store>, String)> {
    let toxiproxy = crate::fault::toxiproxy::Toxiproxy::new(&scenario.target.toxiproxy);
    let endpoints = resolve_endpoints(&scenario.target, &toxiproxy).await?;
    let (_, namespace) = crate::run::new_run_id(&scenario.namespace.prefix);
    let store = connect(StoreContext {
        scenario,
        namespace: namespace.clone(),
        endpoints,
    })
    .await?;
    store.prepare().await?;
    Ok((store, namespace))
}
