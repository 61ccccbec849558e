//! Stores and their sides. A store is a connected system (DynamoDB, Cassandra,
//! MongoDB, the in-memory store); a side is one location in it — a table, a
//! collection — that can write the application's record, scan itself for the
//! checker and plant records for tests ([`SideStore`]). Each store's folder holds
//! only what the store forces: connections through the side's proxy, error
//! classification, its atomic patterns, its change feed or outbox for relays, its
//! own fault sources. Patterns written the same way everywhere live in
//! `crate::pattern`, the relay loop in `crate::relay`.
//!
//! Adding a store = its folder + one entry in [`spec::REGISTRY`].

pub mod cassandra;
pub mod dynamodb;
pub mod kafka;
pub mod layout;
pub mod memory;
pub mod mongodb;
pub mod spec;
pub mod tls;
pub mod tunnel;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::order::Order;
use crate::pattern::KeyPolicy;
use crate::pattern::atomic::AtomicWrite;
use crate::pattern::outcome::{Attempt, Failure};
use crate::relay::{ExactlyOnceSink, RelaySource};
pub use crate::result::ServerInfo;
use crate::scenario::{FaultSpec, ReadConsistency, Scenario, Side, SideEndpoint};
use crate::writer::Writer;
pub use layout::Layout;
pub use spec::{REGISTRY, StoreKind, StoreSpec};

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

/// Microseconds since the epoch: one operation's client timestamp.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// What one read of one side saw. A read changes nothing, so the outcome rule
/// only decides whether it observed: `Ok` when the side answered, `Fail` when the
/// read certainly was not served (never sent, or refused by the server), `Unknown`
/// when it may have been served and the answer was lost.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadOutcome {
    /// The side answered: how many records of the order it holds (0 = not visible).
    Ok(u32),
    Fail(Failure),
    Unknown(Failure),
}

impl ReadOutcome {
    /// A failed read call, classified by the store as it classifies a failed
    /// write: not applied = not served, indeterminate = unknown.
    pub fn failed(attempt: Attempt) -> Self {
        match attempt {
            Attempt::Applied => ReadOutcome::Unknown(Failure::new(
                "read-classified-as-applied",
                "a failed read was classified as applied",
            )),
            Attempt::NotApplied(f) | Attempt::AlreadyThere(f) => ReadOutcome::Fail(f),
            Attempt::Indeterminate(f) => ReadOutcome::Unknown(f),
        }
    }
}

/// How a reader reads one side: the side's read options (validated against the
/// store registry) and how the secondary records are keyed.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub consistency: ReadConsistency,
    /// `Stable`: the secondary record has the order's own event id (a point read
    /// by key); `Fresh`: it is found by the order id (an index where needed).
    pub key: KeyPolicy,
}

/// One side of the data in one store: where the application's records land.
#[async_trait]
pub trait SideStore: Send + Sync {
    /// What and where, for messages: `dynamodb table dw_..._orders`.
    fn describe(&self) -> String;

    /// The application's write of the order (a primary side). One attempt, never
    /// panics: the store classifies its errors by the outcome rule.
    async fn write_order(&self, order: &Order, timestamp_us: i64) -> Attempt;

    /// The order's second record (a secondary side: an event, an index row), keyed
    /// by the order (`Stable`: a replay overwrites) or fresh per write (`Fresh`).
    async fn write_event(&self, record: &Record, key: KeyPolicy, timestamp_us: i64) -> Attempt;

    /// Several events at once (a relay's batch). The first failure stops it; an
    /// `AlreadyThere` of a stable key counts as written.
    async fn write_events(&self, records: &[Record], key: KeyPolicy) -> Attempt {
        for r in records {
            match self.write_event(r, key, now_micros()).await {
                Attempt::Applied | Attempt::AlreadyThere(_) => {}
                failed => return failed,
            }
        }
        Attempt::Applied
    }

    /// A reader's point read of one order (`record` gives its id, and its customer
    /// for a side partitioned by customer), through the side's own connection
    /// (its proxy, its faults, its op_timeout). Never panics, never scans.
    async fn read(&self, record: &Record, how: &ReadOptions) -> ReadOutcome;

    /// Full scan, every record to `sink` (the checker's; not bounded by op_timeout).
    async fn scan(&self, sink: &mut dyn ScanSink) -> anyhow::Result<()>;

    /// Writes a record directly, bypassing any pattern (checker tests). `copies` > 1
    /// writes the same order several times where the side can hold that.
    async fn plant(&self, record: Record, copies: u32) -> anyhow::Result<()>;

    /// Writes a record with a key this tool never writes (stray tests).
    async fn plant_foreign(&self, key: &str) -> anyhow::Result<()>;
}

/// A store whose records live on several replicas (the Cassandra cluster): the
/// checker reads what each replica holds on its own, beside the final scan
/// through [`SideStore::scan`] (which reads every replica: `final_read`).
#[async_trait]
pub trait Replicas: Send + Sync {
    /// The replicas by name (`c1`, `c2`, `c3`).
    fn nodes(&self) -> Vec<String>;

    /// How the final scan reads (`ALL`): the eventual truth the checker counts.
    fn final_read(&self) -> String;

    /// Scans one side's table as `node` alone holds it, within `timeout`.
    async fn scan(
        &self,
        node: &str,
        side: Side,
        timeout: std::time::Duration,
        sink: &mut dyn ScanSink,
    ) -> anyhow::Result<()>;

    /// A traced read of one side's table on `node`: who served it.
    async fn trace(&self, node: &str, side: Side) -> anyhow::Result<ReadTrace>;

    /// Waits up to `limit` until the final read can be served (every replica up
    /// in every coordinator's view); returns how long that took.
    async fn ready(&self, limit: std::time::Duration) -> anyhow::Result<std::time::Duration>;
}

/// What the trace of one per-replica read says.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadTrace {
    /// The address of the node the read was meant for.
    pub node_address: String,
    pub coordinator: Option<String>,
    /// Trace events, and the distinct addresses they ran on.
    pub events: u64,
    pub sources: Vec<String>,
}

impl ReadTrace {
    /// The read ran on its node alone: it coordinated, and every event ran there.
    pub fn proven(&self) -> bool {
        self.coordinator.as_deref() == Some(self.node_address.as_str())
            && self.events > 0
            && self.sources == [self.node_address.clone()]
    }
}

/// Everything a store needs to connect for one run.
#[derive(Debug, Clone)]
pub struct StoreContext {
    pub scenario: Arc<Scenario>,
    /// Unique per run: tables/collections/keyspace are named from it.
    pub namespace: String,
    /// The server behind the endpoints (`moto`, `ferretdb`, ...).
    pub server: String,
    /// Address (`host:port`) of each connection this store serves: the proxy's
    /// listen address. A store serves the sides it holds, and the relay
    /// connection when it is the primary store of an async pattern.
    pub endpoints: BTreeMap<Side, String>,
    /// The local stack's state directory (where the Cassandra cluster's state
    /// file says where its nodes and proxies are).
    pub stack_state: std::path::PathBuf,
}

impl StoreContext {
    pub fn endpoint(&self, side: Side) -> &str {
        self.endpoints
            .get(&side)
            .map(String::as_str)
            .unwrap_or("127.0.0.1:0")
    }

    /// The connections this store serves.
    pub fn sides(&self) -> impl Iterator<Item = Side> + '_ {
        self.endpoints.keys().copied()
    }

    pub fn serves(&self, side: Side) -> bool {
        self.endpoints.contains_key(&side)
    }

    /// Whether this store holds the primary side (and so runs the pattern's
    /// atomic write and relay source).
    pub fn is_primary(&self) -> bool {
        self.serves(Side::Primary)
    }
}

/// A connected store.
#[async_trait]
pub trait Store: Send + Sync {
    /// Probes the server, fills [`Store::server_info`], and fails with a clear
    /// message when the scenario needs a capability the server lacks.
    async fn probe(&mut self) -> anyhow::Result<()>;

    fn server_info(&self) -> ServerInfo;

    /// What of this run's namespace already exists (`keyspace dw_x`, `table
    /// dw_x_orders`), read before anything is created. Remembered, so that
    /// [`Store::drop_namespace`] never drops what the run did not create.
    async fn existing(&self) -> anyhow::Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Creates the run's tables/collections (idempotent).
    async fn prepare(&self) -> anyhow::Result<()>;

    /// The side this store holds (`Primary` or `Secondary`).
    async fn side(&self, side: Side) -> anyhow::Result<Arc<dyn SideStore>>;

    /// The pattern's atomic write, for patterns this store performs atomically
    /// (transaction, logged batch, the order with its outbox entry).
    async fn atomic_write(&self) -> anyhow::Result<Arc<dyn AtomicWrite>> {
        anyhow::bail!(
            "{} has no atomic write for this pattern",
            self.server_info().product
        )
    }

    /// Where the relay of an async pattern reads from (change feed or outbox).
    async fn relay_source(&self) -> anyhow::Result<Arc<dyn RelaySource>> {
        anyhow::bail!("{} has no relay source", self.server_info().product)
    }

    /// A relay sink that commits each publication with its source positions in one
    /// transaction (`relay.delivery = "exactly-once"`), where the store has them.
    async fn exactly_once_sink(&self) -> anyhow::Result<Arc<dyn ExactlyOnceSink>> {
        anyhow::bail!(
            "{} cannot commit a relay's publications with its positions",
            self.server_info().product
        )
    }

    /// What this store's clients did on their own, out of the application's sight
    /// (a producer's resends), by `name@side`: read after the load.
    fn client_counts(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }

    /// Store-side fault sources (SDK errors, fail points); network faults go to Toxiproxy.
    async fn set_fault(&self, fault: &FaultSpec, active: bool) -> anyhow::Result<()> {
        let _ = active;
        anyhow::bail!(
            "fault kind `{}` is not supported on this store",
            fault.kind.name()
        )
    }

    /// Errors this store's own fault sources injected, by `kind@side`.
    fn injected_faults(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }

    /// Reads the store's capacity counters before the load, where they are the
    /// server's (a counter read after minus one read before); counters the
    /// store's own clients keep need nothing here.
    async fn capacity_start(&self) {}

    /// What the run used so far (read after the relay drained), in the store's
    /// own units, per `orders`. A store without counters reports none.
    async fn capacity(&self, orders: u64) -> crate::result::CapacityResult {
        crate::result::CapacityResult {
            orders,
            ..Default::default()
        }
    }

    /// The replicas of this store's sides, when they live on several nodes.
    fn replicas(&self) -> Option<Arc<dyn Replicas>> {
        None
    }

    /// Benchmark only: a writer doing the naive pattern's raw writes with no policy
    /// logic (`writes` = 1: the primary only, the single-write baseline; 2: both
    /// sides), to measure dualwrite's own overhead. `None` where not built.
    async fn bare_client(&self, writes: u8) -> Option<Arc<dyn Writer>> {
        let _ = writes;
        None
    }

    /// Drops what the run created of its namespace (never what existed before).
    async fn drop_namespace(&self) -> anyhow::Result<()>;

    /// `[app]`: the side as the service lays it out (scans and plants; the
    /// service does the writing).
    async fn app_side(
        &self,
        side: Side,
        layout: Arc<Layout>,
    ) -> anyhow::Result<Arc<dyn SideStore>> {
        let _ = (side, layout);
        anyhow::bail!(
            "{} cannot hold a service's records",
            self.server_info().product
        )
    }

    /// `[app]`: creates the side's table or collection (`create = true`), keyed
    /// by `layout.key` (idempotent).
    async fn create_location(&self, side: Side, layout: &Layout) -> anyhow::Result<()> {
        let _ = (side, layout);
        anyhow::bail!(
            "{} cannot create a service's table",
            self.server_info().product
        )
    }

    /// `[app]`: drops the side's table or collection (`drop = true`).
    async fn drop_location(&self, side: Side, layout: &Layout) -> anyhow::Result<()> {
        let _ = (side, layout);
        anyhow::bail!(
            "{} cannot drop a service's table",
            self.server_info().product
        )
    }
}

/// Connects to one store, refuses a namespace that already exists (unless the
/// scenario reuses it), and probes it. Errors here are infrastructure errors (exit 3).
pub async fn connect(kind: StoreKind, ctx: StoreContext) -> anyhow::Result<Box<dyn Store>> {
    guard_loopback(&ctx)?;
    let scenario = ctx.scenario.clone();
    let namespace = ctx.namespace.clone();
    let mut store = (kind.spec().connect)(ctx).await?;
    let existing = store.existing().await?;
    if !existing.is_empty() && !scenario.namespace.reuse {
        anyhow::bail!(
            "refused: the run's namespace `{namespace}` already exists on {kind}: {}; dualwrite only creates, writes and drops its own tables\n  fix: leave [namespace] name unset (a new namespace per run), choose another name, or set [namespace] reuse = true to run in it (nothing that exists before the run is dropped)",
            existing.join(", ")
        );
    }
    store.probe().await?;
    Ok(store)
}

/// A second line of defence behind validation: no connection of a scenario
/// without `allow_remote` leaves the loopback range (a proxy's address is
/// Toxiproxy's answer, so it is checked here too).
fn guard_loopback(ctx: &StoreContext) -> anyhow::Result<()> {
    if ctx.scenario.target.allow_remote {
        return Ok(());
    }
    for (side, endpoint) in &ctx.endpoints {
        if endpoint.is_empty() {
            continue;
        }
        let hosts: Vec<String> = match crate::scenario::MongoUri::parse(endpoint) {
            Ok(uri) if uri.srv => vec![uri.hosts[0].clone()],
            Ok(uri) => uri
                .hosts
                .iter()
                .map(|h| crate::scenario::split_host_port(h).0.to_string())
                .collect(),
            Err(_) if endpoint == crate::scenario::AWS_ENDPOINT => vec![endpoint.clone()],
            Err(_) => vec![crate::scenario::host_of(endpoint)],
        };
        if let Some(host) = hosts.iter().find(|h| !crate::scenario::is_loopback_host(h)) {
            anyhow::bail!(
                "refused: the {side} connection would go to {host}, outside the loopback range, and the scenario does not allow remote endpoints\n  fix: set allow_remote = true in [target] or pass --allow-remote"
            );
        }
    }
    Ok(())
}

/// One store of a run and the connections it serves.
#[derive(Debug, Clone)]
pub struct Placement {
    pub store: StoreKind,
    pub server: String,
    pub sides: Vec<Side>,
}

/// The stores of a scenario, the primary's first: one when both sides share a
/// store (it serves both, and the relay of an asynchronous pattern), else the
/// primary's (with the relay) and the secondary's.
pub fn placements(scenario: &Scenario) -> Vec<Placement> {
    let t = &scenario.target;
    let relay = scenario.pattern.kind.is_async();
    let mut primary_sides = vec![Side::Primary];
    if t.shared_store() {
        primary_sides.push(Side::Secondary);
    }
    if relay {
        primary_sides.push(Side::Relay);
    }
    let mut out = vec![Placement {
        store: t.primary.store,
        server: t.primary.server.clone(),
        sides: primary_sides,
    }];
    if !t.shared_store() {
        out.push(Placement {
            store: t.secondary.store,
            server: t.secondary.server.clone(),
            sides: vec![Side::Secondary],
        });
    }
    out
}

/// The stores of one run: one per system the scenario's sides live in (one when
/// both sides share a store).
pub struct Stores {
    pub primary: Arc<dyn Store>,
    /// The secondary side's store: the same `Arc` as `primary` when shared.
    pub secondary: Arc<dyn Store>,
    pub shared: bool,
    /// `[app]`: each side as the service lays it out (primary, secondary).
    pub app: Option<[Arc<Layout>; 2]>,
}

impl Stores {
    /// Connects every store of the scenario, each to the connections it serves.
    pub async fn connect(
        scenario: &Arc<Scenario>,
        namespace: &str,
        endpoints: &BTreeMap<Side, String>,
        stack_state: &std::path::Path,
    ) -> anyhow::Result<Self> {
        // With [app] the stand-in pattern is synchronous: dualwrite has no relay
        // connection of its own, it only reads both sides (see `placements`).
        let app = match &scenario.app {
            Some(a) => Some([
                Arc::new(Layout::of(&a.primary, Side::Primary, namespace)?),
                Arc::new(Layout::of(&a.secondary, Side::Secondary, namespace)?),
            ]),
            None => None,
        };
        let mut connected: Vec<Arc<dyn Store>> = Vec::new();
        for p in placements(scenario) {
            let ctx = StoreContext {
                scenario: scenario.clone(),
                namespace: namespace.to_string(),
                server: p.server.clone(),
                endpoints: p
                    .sides
                    .iter()
                    .filter_map(|s| endpoints.get(s).map(|e| (*s, e.clone())))
                    .collect(),
                stack_state: stack_state.to_path_buf(),
            };
            connected.push(Arc::from(connect(p.store, ctx).await?));
        }
        let shared = connected.len() == 1;
        let primary = connected[0].clone();
        let secondary = connected.last().expect("at least one store").clone();
        Ok(Self {
            primary,
            secondary,
            shared,
            app,
        })
    }

    /// Every distinct store (one when shared).
    pub fn all(&self) -> Vec<&Arc<dyn Store>> {
        if self.shared {
            vec![&self.primary]
        } else {
            vec![&self.primary, &self.secondary]
        }
    }

    /// The store holding a side (the relay connection belongs to the primary's).
    pub fn of(&self, side: Side) -> &Arc<dyn Store> {
        match side {
            Side::Secondary => &self.secondary,
            _ => &self.primary,
        }
    }

    /// Creates the run's tables; with `[app]`, only the service's tables marked
    /// `create = true` (dualwrite's own would collide with the service's names).
    pub async fn prepare(&self) -> anyhow::Result<()> {
        if let Some([p, s]) = &self.app {
            for (side, layout) in [(Side::Primary, p), (Side::Secondary, s)] {
                if layout.create {
                    self.of(side).create_location(side, layout).await?;
                }
            }
            return Ok(());
        }
        for s in self.all() {
            s.prepare().await?;
        }
        Ok(())
    }

    pub async fn sides(&self) -> anyhow::Result<(Arc<dyn SideStore>, Arc<dyn SideStore>)> {
        if let Some([p, s]) = &self.app {
            return Ok((
                self.primary.app_side(Side::Primary, p.clone()).await?,
                self.secondary.app_side(Side::Secondary, s.clone()).await?,
            ));
        }
        Ok((
            self.primary.side(Side::Primary).await?,
            self.secondary.side(Side::Secondary).await?,
        ))
    }

    /// The server(s), for the result: the primary's, with the secondary's
    /// capabilities and gaps merged in under its product name when different.
    pub fn server_info(&self) -> ServerInfo {
        let mut info = self.primary.server_info();
        if !self.shared {
            let other = self.secondary.server_info();
            info.product = format!("{} + {}", info.product, other.product);
            if !other.version.is_empty() {
                info.version = format!("{} + {}", info.version, other.version);
            }
            for (k, v) in other.capabilities {
                info.capabilities.insert(format!("secondary.{k}"), v);
            }
            info.not_exercised.extend(
                other
                    .not_exercised
                    .into_iter()
                    .map(|n| format!("secondary: {n}")),
            );
        }
        info
    }

    pub async fn drop_namespace(&self) -> anyhow::Result<()> {
        let mut first_error = None;
        let mut namespace_kept = false;
        if let Some([p, s]) = &self.app {
            for (side, layout) in [(Side::Primary, p), (Side::Secondary, s)] {
                if layout.drop {
                    if let Err(e) = self.of(side).drop_location(side, layout).await {
                        first_error.get_or_insert(e);
                    }
                } else {
                    // A kept location in the namespace's database keeps the database.
                    namespace_kept |= layout
                        .database
                        .as_deref()
                        .is_some_and(|d| layout.prefix.starts_with(&format!("{d}-")));
                }
            }
        }
        for s in self.all().into_iter().filter(|_| !namespace_kept) {
            if let Err(e) = s.drop_namespace().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Where each connection goes: the proxy's listen address (asked from Toxiproxy),
/// or the side's direct endpoint.
pub async fn resolve_endpoints(
    target: &crate::scenario::Target,
    toxiproxy: &crate::fault::toxiproxy::Toxiproxy,
) -> anyhow::Result<BTreeMap<Side, String>> {
    let mut endpoints = BTreeMap::new();
    for side in Side::ALL {
        let address = match target.endpoint(side) {
            SideEndpoint::Proxy(name) => toxiproxy.proxy(name).await?.listen,
            SideEndpoint::Direct(e) => e.clone(),
            SideEndpoint::InProcess => String::new(),
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

/// Connects to the scenario's stores in a fresh namespace, for tests and tools
/// that plant or scan records outside a run.
pub async fn connect_fresh(scenario: Arc<Scenario>) -> anyhow::Result<(Stores, String)> {
    let toxiproxy = crate::fault::toxiproxy::Toxiproxy::new(&scenario.target.toxiproxy);
    let endpoints = resolve_endpoints(&scenario.target, &toxiproxy).await?;
    let (_, generated) = crate::run::new_run_id(&scenario.namespace.prefix);
    let namespace = scenario.namespace.for_run(&generated);
    let stores = Stores::connect(&scenario, &namespace, &endpoints, &stack_state_dir()).await?;
    stores.prepare().await?;
    Ok((stores, namespace))
}

/// The local stack's state directory outside a run (tests, tools, bench): the
/// one `--stack-state` defaults to, `DUALWRITE_STATE` or `.stack`.
pub fn stack_state_dir() -> std::path::PathBuf {
    std::env::var_os("DUALWRITE_STATE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(".stack"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(allow_remote: bool, endpoint: &str) -> StoreContext {
        let mut scenario = crate::scenario::tests::memory_scenario("");
        scenario.target.allow_remote = allow_remote;
        StoreContext {
            scenario: Arc::new(scenario),
            namespace: "dw_t".into(),
            server: "memory".into(),
            endpoints: BTreeMap::from([(Side::Primary, endpoint.to_string())]),
            stack_state: stack_state_dir(),
        }
    }

    #[test]
    fn no_connection_leaves_loopback_unless_the_scenario_allows_it() {
        for local in [
            "127.0.0.1:29042",
            "localhost:5000",
            "[::1]:9042",
            "",
            "mongodb://127.0.0.1:1/",
        ] {
            guard_loopback(&ctx(false, local)).unwrap();
        }
        for remote in [
            "10.0.0.5:9042",
            "0.0.0.0:9042",
            "https://dynamodb.eu-west-1.amazonaws.com",
            "aws",
            "mongodb+srv://cluster0.example.net/",
            "mongodb://127.0.0.1:1,db.example.com:2/",
        ] {
            let e = guard_loopback(&ctx(false, remote)).unwrap_err().to_string();
            assert!(e.contains("outside the loopback range"), "{remote}: {e}");
            guard_loopback(&ctx(true, remote)).unwrap();
        }
    }
}
