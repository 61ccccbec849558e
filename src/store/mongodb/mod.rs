//! MongoDB wire servers (FerretDB and mongoeco locally, a real replica set with
//! Docker) through Toxiproxy.
//!
//! One database per run (the namespace) with collections `orders` (`_id` = order
//! key) and `order_events` (`_id` = event id, `order_id` an attribute, so a
//! non-idempotent writer can duplicate). Each side has its own `Client` bound to its
//! own proxy with `directConnection=true` (otherwise the driver follows the server's
//! own address and bypasses the proxy), and the driver's retryable writes off:
//! retrying is the pattern's (the application's) decision. Every call is bounded by
//! the scenario's `op_timeout`.
//!
//! What the server can do is probed, never assumed: a scenario that needs a missing
//! capability stops before the run (exit 3), it is not silently downgraded.
//!
//! This file holds the store (connect, probe, set-up, faults, clean-up); the
//! sides are in `side.rs`, the atomic writes in `writes.rs`, the relay sources in
//! `relay.rs`, the wire helpers (error classification, bounded calls, find/count
//! commands, documents) in `wire.rs`.

mod capacity;
mod conn;
mod fail_point;
mod relay;
mod side;
mod wire;
mod writes;

use anyhow::Context;
use async_trait::async_trait;
use futures::FutureExt;
use mongodb::bson::{Document, doc};
use mongodb::error::Error as MongoError;
use mongodb::{Client, Database, IndexModel};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use self::conn::MongoConn;
use self::relay::{ChangeStreamSource, OutboxPollSource};
use self::side::MongoSide;
use self::wire::bounded;
use self::writes::{BareClient, MongoWriter, OutboxWrite, TransactionWrite};
use super::spec::{BenchSpec, Footprint, LocalServer, ReadSupport, ServerSpec, StoreSpec, Support};
use super::{Layout, ServerInfo, SideStore, Store, StoreContext};
use crate::pattern::atomic::AtomicWrite;
use crate::pattern::{PatternKind, RelayMode};
use crate::relay::RelaySource;
use crate::scenario::{FaultKind, FaultSpec, Side};
use crate::writer::Writer;

pub static SPEC: StoreSpec = StoreSpec {
    name: "mongodb",
    about: "MongoDB wire servers: FerretDB and mongoeco locally, a real replica set with Docker",
    servers: &[
        ServerSpec {
            name: "ferretdb",
            proxy_prefix: "ferretdb",
            local: Some(LocalServer {
                component: "ferretdb",
                in_memory: false,
            }),
        },
        ServerSpec {
            name: "mongoeco",
            proxy_prefix: "mongoeco",
            local: Some(LocalServer {
                component: "mongoeco",
                in_memory: true,
            }),
        },
        ServerSpec {
            name: "mongodb",
            proxy_prefix: "mongodb",
            local: None,
        },
    ],
    holds_primary: true,
    holds_secondary: true,
    patterns: &[
        (
            PatternKind::Naive,
            Support::Yes {
                how: "insert_one into orders, then into order_events",
                options: &[],
            },
        ),
        (
            PatternKind::Transaction,
            Support::Yes {
                how: "both inserts in one multi-document transaction",
                options: &["secondary_key"],
            },
        ),
        (
            PatternKind::LoggedBatch,
            Support::No("`logged-batch` is a Cassandra construct; use `transaction` or `outbox`"),
        ),
        (
            PatternKind::Outbox,
            Support::Yes {
                how: "embedded _outbox in the order document + relay (change stream or polling)",
                options: &["relay.mode"],
            },
        ),
        (
            PatternKind::Streams,
            Support::Yes {
                how: "change stream on orders -> relay -> the secondary side",
                options: &["relay.mode"],
            },
        ),
    ],
    secondary_options: &["secondary_key"],
    secondary_appends: false,
    fault_kinds: &["fail-command"],
    reads: Some(ReadSupport {
        how: "find by _id (orders) or by an index on order_id (order_events)",
        consistency: &[],
        not_through_index: &[],
        // FerretDB and mongoeco accept readConcern and ignore it (one copy of the
        // data: every read is `local`); a replica set honours them all.
        read_concern: &[
            ("ferretdb", &["local"]),
            ("mongoeco", &["local"]),
            (
                "mongodb",
                &["local", "available", "majority", "linearizable"],
            ),
        ],
        // Each side reaches one server through its own proxy (directConnection).
        read_preference: &["primary"],
        coordinator_servers: &[],
    }),
    connection_options: &[
        "uri",
        "username",
        "password_env",
        "tls",
        "tls_ca_file",
        "tls_cert_file",
        "tls_server_name",
    ],
    footprint: |scenario, ns, sides| {
        let mut creates = vec![
            format!("database {ns}"),
            format!(
                "collection {ns}.{PROBE} (scratch: created and dropped while probing the server)"
            ),
        ];
        if sides.contains(&Side::Primary) {
            creates.push(format!("collection {ns}.{ORDERS}"));
            if scenario.pattern.kind == PatternKind::Outbox {
                creates.push(format!("index on {ns}.{ORDERS} (_outbox.published)"));
            }
        }
        if sides.contains(&Side::Secondary) {
            creates.push(format!("collection {ns}.{EVENTS}"));
        }
        Footprint {
            creates,
            drops: vec![format!("database {ns} (with its collections)")],
        }
    },
    connection_note: "MongoDB takes any connection string the driver does (`uri`, without the password: that comes from `password_env`); a client certificate and its key are read from one PEM file, `tls_cert_file`, as tlsCertificateKeyFile.",
    bench: BenchSpec {
        server: "mongoeco",
        checker_records: 3000,
    },
    connect: |ctx| {
        async move { Ok(Box::new(MongoStore::connect(ctx).await?) as Box<dyn Store>) }.boxed()
    },
};

/// The commands a `fail-command` fault may target: those whose fail point
/// dualwrite proves fires before the run.
pub use fail_point::PROVABLE as FAIL_POINT_COMMANDS;

pub(crate) const ORDERS: &str = "orders";
pub(crate) const EVENTS: &str = "order_events";
const PROBE: &str = "_probe";

/// Where to run a real replica set when the local servers lack a capability.
const ALTERNATIVE: &str = "alternative: a real MongoDB replica set (transactions, change streams, failCommand) with Docker: `docker compose -f docker/compose.yml up -d`, then set [target] server = \"mongodb\" (proxies mongodb_primary/secondary/relay)";

pub struct MongoStore {
    ctx: StoreContext,
    /// Each side's client settings (and tunnel), for fresh clients.
    conns: BTreeMap<Side, Arc<MongoConn>>,
    clients: BTreeMap<Side, Client>,
    info: ServerInfo,
    /// The run database's collections before the run (`None`: not read yet);
    /// a database that had any is never dropped, only what the run created.
    before: std::sync::Mutex<Option<Vec<String>>>,
    /// `serverStatus` counters read before the load (`capacity.rs`).
    capacity_before: std::sync::Mutex<Option<capacity::Counters>>,
}

impl MongoStore {
    pub async fn connect(ctx: StoreContext) -> anyhow::Result<Self> {
        let mut clients = BTreeMap::new();
        let mut conns = BTreeMap::new();
        for side in ctx.sides().collect::<Vec<_>>() {
            let conn = MongoConn::new(ctx.endpoint(side), side, &ctx)
                .await
                .with_context(|| format!("MongoDB client for the {side} side"))?;
            clients.insert(side, conn.client()?);
            conns.insert(side, Arc::new(conn));
        }
        Ok(Self {
            ctx,
            conns,
            clients,
            info: ServerInfo::default(),
            before: Default::default(),
            capacity_before: Default::default(),
        })
    }

    /// The side's connection (a store serving only some sides answers for the
    /// others with one it has).
    fn conn(&self, side: Side) -> Arc<MongoConn> {
        self.conns
            .get(&side)
            .or_else(|| self.conns.values().next())
            .expect("a store serves at least one connection")
            .clone()
    }

    fn client(&self, side: Side) -> &Client {
        self.clients
            .get(&side)
            .or_else(|| self.clients.values().next())
            .expect("a store serves at least one connection")
    }

    fn db(&self, side: Side) -> Database {
        self.client(side).database(&self.ctx.namespace)
    }

    /// `[app]`: the database of a side's layout.
    fn app_db(&self, side: Side, layout: &Layout) -> Database {
        self.client(side)
            .database(layout.database.as_deref().unwrap_or(&self.ctx.namespace))
    }

    /// The capacity counters of `serverStatus` (none when it fails).
    async fn server_counters(&self) -> Option<capacity::Counters> {
        let admin = self.client(self.admin_side()).database("admin");
        bounded(
            self.op_timeout().max(Duration::from_secs(3)),
            admin.run_command(doc! {"serverStatus": 1}).into_future(),
        )
        .await
        .ok()
        .map(|status| capacity::read(&status))
    }

    /// The side whose client set-up and probes use: the primary when served.
    fn admin_side(&self) -> Side {
        self.ctx.sides().next().unwrap_or(Side::Primary)
    }

    fn op_timeout(&self) -> Duration {
        self.ctx.scenario.workload.op_timeout
    }

    /// Which capabilities the scenario needs, each with the reason and a way out.
    fn needs(&self) -> Vec<(&'static str, String, &'static str)> {
        let s = &self.ctx.scenario;
        let mut needs = Vec::new();
        if !self.ctx.is_primary() {
            return needs; // holds only a secondary side: plain inserts
        }
        match s.pattern.kind {
            PatternKind::Transaction => {
                needs.push(("transactions", "pattern `transaction`".into(), ""))
            }
            PatternKind::Streams => needs.push(("change_streams", "pattern `streams`".into(), "")),
            PatternKind::Outbox if s.pattern.relay.mode == RelayMode::Stream => needs.push((
                "change_streams",
                "pattern `outbox` with relay mode \"stream\"".into(),
                "or set pattern.relay.mode = \"poll\" (polling relay, runs on any server); ",
            )),
            _ => {}
        }
        if s.faults
            .iter()
            .any(|f| matches!(f.kind, FaultKind::FailCommand { .. }))
        {
            needs.push(("fail_point", "fault `fail-command`".into(), ""));
        }
        needs
    }
}

async fn create_collection(db: &Database, name: &str, limit: Duration) -> anyhow::Result<()> {
    match bounded(limit, db.create_collection(name).into_future()).await {
        Ok(()) => Ok(()),
        // 48 = NamespaceExists: already there.
        Err(f) if f.class == "NamespaceExists" || f.class == "code-48" => Ok(()),
        Err(f) => anyhow::bail!(
            "cannot create collection {}.{name}: {}",
            db.name(),
            f.detail
        ),
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn probe(&mut self) -> anyhow::Result<()> {
        let server = self.ctx.server.clone();
        let side = self.admin_side();
        let endpoint = self.ctx.endpoint(side).to_string();
        let limit = self.op_timeout().max(Duration::from_secs(3));
        let admin = self.client(side).database("admin");
        let hello = bounded(limit, admin.run_command(doc! {"hello": 1}).into_future())
            .await
            .map_err(|f| {
                anyhow::anyhow!(
                    "MongoDB server `{server}` at {endpoint} ({side} side) does not answer: {}\n  {}",
                    f.detail,
                    login_hint(&f.detail, self.ctx.scenario.target.connection(side))
                )
            })?;
        let build = bounded(
            limit,
            admin.run_command(doc! {"buildInfo": 1}).into_future(),
        )
        .await
        .unwrap_or_default();
        // FerretDB reports the MongoDB version it emulates, and its own beside it.
        let version = match build.get_str("ferretdbVersion") {
            Ok(own) => format!(
                "{} (FerretDB {own})",
                build.get_str("version").unwrap_or("?")
            ),
            Err(_) => build.get_str("version").unwrap_or("").to_string(),
        };
        let mut capabilities = BTreeMap::new();
        let mut not_exercised = Vec::new();
        let mut why_not = BTreeMap::new();
        let replica_set = hello.get_str("setName").is_ok();
        capabilities.insert("replica_set".to_string(), replica_set);

        // Probes write to a scratch collection of the run's database, dropped after.
        let db = self.db(side);
        create_collection(&db, PROBE, limit).await?;
        let probes = [
            ("transactions", self.probe_transaction(&db, limit).await),
            ("change_streams", self.probe_change_stream(&db).await),
            ("fail_point", self.probe_fail_point(limit).await),
        ];
        let _ = bounded(limit, db.collection::<Document>(PROBE).drop().into_future()).await;
        for (name, result) in probes {
            capabilities.insert(name.to_string(), result.is_ok());
            if let Err(reason) = result {
                not_exercised.push(format!("{name}: unsupported by this server ({reason})"));
                why_not.insert(name, reason);
            }
        }
        not_exercised.push(
            "server-side retryable writes: the driver's retryWrites is off (retries are the pattern's)"
                .into(),
        );
        self.info = ServerInfo {
            product: server.clone(),
            version: version.clone(),
            capabilities,
            not_exercised,
        };
        for (capability, needed_by, way_out) in self.needs() {
            if let Some(reason) = why_not.get(capability) {
                anyhow::bail!(
                    "the scenario needs {} ({needed_by}), but server `{server}` {version} at {endpoint} does not support them: {reason}\n  {way_out}{ALTERNATIVE}",
                    capability.replace('_', " ")
                );
            }
        }
        self.prove_fail_points(&db, limit).await?;
        Ok(())
    }

    fn server_info(&self) -> ServerInfo {
        self.info.clone()
    }

    async fn existing(&self) -> anyhow::Result<Vec<String>> {
        let side = self.admin_side();
        let db = self.db(side);
        let limit = self.op_timeout().max(Duration::from_secs(3));
        let names = wire::collection_names(&db, limit)
            .await
            .map_err(|f| {
                anyhow::anyhow!(
                    "MongoDB server `{}` at {} ({side} side): cannot list the collections of the run's database `{}`: {}\n  {}",
                    self.ctx.server,
                    self.ctx.endpoint(side),
                    db.name(),
                    f.detail,
                    login_hint(&f.detail, self.ctx.scenario.target.connection(side)),
                )
            })?;
        *self.before.lock().expect("not poisoned") = Some(names.clone());
        Ok(if names.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "database {} (collections: {})",
                db.name(),
                names.join(", ")
            )]
        })
    }

    async fn prepare(&self) -> anyhow::Result<()> {
        let db = self.db(self.admin_side());
        let limit = self.op_timeout().max(Duration::from_secs(5));
        if self.ctx.serves(Side::Primary) {
            create_collection(&db, ORDERS, limit).await?;
        }
        if self.ctx.serves(Side::Secondary) {
            create_collection(&db, EVENTS, limit).await?;
        }
        if self.ctx.serves(Side::Secondary) && self.ctx.scenario.readers.is_some() {
            // A reader's point read of an order's events (their ids may be fresh).
            let index = IndexModel::builder().keys(doc! {"order_id": 1}).build();
            bounded(
                limit,
                db.collection::<Document>(EVENTS)
                    .create_index(index)
                    .into_future(),
            )
            .await
            .map_err(|f| {
                anyhow::anyhow!(
                    "cannot index {}.{EVENTS} on order_id: {}",
                    db.name(),
                    f.detail
                )
            })?;
        }
        if self.ctx.is_primary() && self.ctx.scenario.pattern.kind == PatternKind::Outbox {
            // The polling relay's query; also what `pending()` counts.
            let index = IndexModel::builder()
                .keys(doc! {"_outbox.published": 1})
                .build();
            bounded(
                limit,
                db.collection::<Document>(ORDERS)
                    .create_index(index)
                    .into_future(),
            )
            .await
            .map_err(|f| {
                anyhow::anyhow!(
                    "cannot index {}.{ORDERS} on _outbox.published: {}",
                    db.name(),
                    f.detail
                )
            })?;
        }
        Ok(())
    }

    async fn side(&self, side: Side) -> anyhow::Result<Arc<dyn SideStore>> {
        let conn = self.conn(side);
        Ok(Arc::new(MongoSide {
            client: self.client(side).clone(),
            conn,
            side,
            ctx: self.ctx.clone(),
            op_timeout: self.op_timeout(),
            app: None,
        }))
    }

    async fn app_side(
        &self,
        side: Side,
        layout: Arc<Layout>,
    ) -> anyhow::Result<Arc<dyn SideStore>> {
        let conn = self.conn(side);
        Ok(Arc::new(MongoSide {
            client: self.client(side).clone(),
            conn,
            side,
            ctx: self.ctx.clone(),
            op_timeout: self.op_timeout(),
            app: Some(layout),
        }))
    }

    async fn create_location(&self, side: Side, layout: &Layout) -> anyhow::Result<()> {
        let db = self.app_db(side, layout);
        let limit = self.op_timeout().max(Duration::from_secs(5));
        create_collection(&db, &layout.table, limit).await
    }

    async fn drop_location(&self, side: Side, layout: &Layout) -> anyhow::Result<()> {
        let db = self.app_db(side, layout);
        bounded(
            Duration::from_secs(10),
            db.collection::<Document>(&layout.table)
                .drop()
                .into_future(),
        )
        .await
        .map_err(|f| anyhow::anyhow!("dropping {}: {}", layout.describe(), f.detail))?;
        // This run's own database (named after its namespace) goes with it.
        if db.name() == self.ctx.namespace {
            let _ = bounded(Duration::from_secs(10), db.drop().into_future()).await;
        }
        Ok(())
    }

    async fn atomic_write(&self) -> anyhow::Result<Arc<dyn AtomicWrite>> {
        let w = MongoWriter {
            primary: self.db(Side::Primary),
            primary_client: self.client(Side::Primary).clone(),
            pattern: self.ctx.scenario.pattern.clone(),
            op_timeout: self.op_timeout(),
            end_failed_sessions: self.ctx.server == "mongoeco",
        };
        Ok(match w.pattern.kind {
            PatternKind::Transaction => Arc::new(TransactionWrite(w)),
            PatternKind::Outbox => Arc::new(OutboxWrite(w)),
            other => anyhow::bail!("pattern `{other}` has no atomic write on mongodb"),
        })
    }

    async fn relay_source(&self) -> anyhow::Result<Arc<dyn RelaySource>> {
        let pattern = &self.ctx.scenario.pattern;
        let relay_db = self.db(Side::Relay);
        let watch_db = self.db(Side::Primary);
        let op_timeout = self.op_timeout();
        Ok(match (pattern.kind, pattern.relay.mode) {
            (PatternKind::Outbox, RelayMode::Poll) => {
                Arc::new(OutboxPollSource::new(relay_db, watch_db, op_timeout))
            }
            (PatternKind::Outbox | PatternKind::Streams, _) => Arc::new(
                ChangeStreamSource::new(
                    relay_db,
                    watch_db,
                    pattern.kind == PatternKind::Outbox,
                    op_timeout,
                    pattern.relay.poll_interval,
                )
                .await,
            ),
            (other, _) => anyhow::bail!("pattern `{other}` has no relay"),
        })
    }

    async fn set_fault(&self, fault: &FaultSpec, active: bool) -> anyhow::Result<()> {
        let FaultKind::FailCommand {
            commands,
            error_code,
            error_labels,
            close_connection,
            times,
        } = &fault.kind
        else {
            anyhow::bail!(
                "fault kind `{}` is not supported on mongodb",
                fault.kind.name()
            );
        };
        let command = fail_point::command(active.then(|| fail_point::FailPoint {
            commands,
            error_code: *error_code,
            error_labels,
            close_connection: *close_connection,
            times: *times,
            namespace: match fault.side {
                Side::Primary => Some(format!("{}.{ORDERS}", self.ctx.namespace)),
                Side::Secondary => Some(format!("{}.{EVENTS}", self.ctx.namespace)),
                Side::Relay => None,
            },
        }));
        // Through the primary side's client; a network fault on that side at the
        // same moment would make this fail (reported on the fault window).
        let admin = self.client(Side::Primary).database("admin");
        bounded(
            self.op_timeout().max(Duration::from_secs(3)),
            admin.run_command(command).into_future(),
        )
        .await
        .map_err(|f| anyhow::anyhow!("configureFailPoint failCommand: {}", f.detail))?;
        Ok(())
    }

    async fn capacity_start(&self) {
        *self.capacity_before.lock().expect("not poisoned") = self.server_counters().await;
    }

    async fn capacity(&self, orders: u64) -> crate::result::CapacityResult {
        let before = self.capacity_before.lock().expect("not poisoned").clone();
        let after = self.server_counters().await;
        let (figures, notes) = match (before, after) {
            (Some(b), Some(a)) => capacity::figures(&b, &a, &self.ctx.server, orders),
            // serverStatus did not answer: nothing is known, nothing is claimed.
            _ => capacity::figures(
                &Default::default(),
                &Default::default(),
                &format!("{} (serverStatus did not answer)", self.ctx.server),
                orders,
            ),
        };
        crate::result::CapacityResult {
            orders,
            figures,
            notes,
        }
    }

    async fn bare_client(&self, writes: u8) -> Option<Arc<dyn Writer>> {
        Some(Arc::new(BareClient {
            primary: self
                .clients
                .get(&Side::Primary)?
                .database(&self.ctx.namespace),
            secondary: self
                .clients
                .get(&Side::Secondary)?
                .database(&self.ctx.namespace),
            writes,
        }))
    }

    async fn drop_namespace(&self) -> anyhow::Result<()> {
        let db = self.db(self.admin_side());
        let limit = Duration::from_secs(10);
        let before = self.before.lock().expect("not poisoned").clone();
        match before {
            Some(names) if !names.is_empty() => {
                // A database that held collections before the run (reuse): only
                // the collections this run created.
                for c in [ORDERS, EVENTS] {
                    if !names.iter().any(|n| n == c) {
                        bounded(limit, db.collection::<Document>(c).drop().into_future())
                            .await
                            .map_err(|f| {
                                anyhow::anyhow!("dropping {}.{c}: {}", db.name(), f.detail)
                            })?;
                    }
                }
                Ok(())
            }
            _ => bounded(limit, db.drop().into_future())
                .await
                .map_err(|f| anyhow::anyhow!("dropping database {}: {}", db.name(), f.detail)),
        }
    }
}

/// What to check when a server refuses or cannot be reached.
fn login_hint(detail: &str, connection: &crate::scenario::Connection) -> String {
    if detail.contains("uthenticat") || detail.contains("SCRAM") {
        let uri_user = connection
            .uri
            .as_deref()
            .and_then(|u| crate::scenario::MongoUri::parse(u).ok())
            .and_then(|u| u.user);
        match connection.user(SPEC.name).or(uri_user) {
            Some(user) => format!(
                "hint: check the user `{user}`, its password in {}, and the auth source and mechanism in `uri`",
                connection.password_var(SPEC.name)
            ),
            None => "hint: the server requires a login: set username (or the user in `uri`) and export its password (DUALWRITE_MONGODB_PASSWORD, or the variable named by password_env)".to_string(),
        }
    } else if detail.to_ascii_lowercase().contains("certificate")
        || detail.to_ascii_lowercase().contains("tls")
    {
        "hint: check tls_ca_file, tls_server_name (the name on the server's certificate) and tls_cert_file".to_string()
    } else {
        "hint: start the local stack (scripts/stack up) or check [target] in the scenario"
            .to_string()
    }
}

impl MongoStore {
    /// Inserts in a transaction and aborts it: both must work.
    async fn probe_transaction(&self, db: &Database, limit: Duration) -> Result<(), String> {
        let client = self.client(self.admin_side());
        let run = async {
            let mut session = client.start_session().await?;
            session.start_transaction().await?;
            db.collection::<Document>(PROBE)
                .insert_one(doc! {"probe": "transaction"})
                .session(&mut session)
                .await?;
            session.abort_transaction().await?;
            Ok::<(), MongoError>(())
        };
        bounded(limit, run).await.map_err(|f| f.detail)
    }

    /// Opens a change stream and asks for its first batch.
    async fn probe_change_stream(&self, db: &Database) -> Result<(), String> {
        let run = async {
            let mut stream = db.collection::<Document>(PROBE).watch().await?;
            stream.next_if_any().await?;
            Ok::<(), MongoError>(())
        };
        bounded(Duration::from_secs(3), run)
            .await
            .map_err(|f| f.detail)
    }

    /// Every command a `fail-command` fault targets must really fail when its fail
    /// point is armed; a server that ignores it for one stops the run (exit 3).
    async fn prove_fail_points(&mut self, db: &Database, limit: Duration) -> anyhow::Result<()> {
        let mut commands: Vec<&str> = Vec::new();
        for f in &self.ctx.scenario.faults {
            if let FaultKind::FailCommand { commands: c, .. } = &f.kind {
                commands.extend(c.iter().map(String::as_str));
            }
        }
        commands.sort_unstable();
        commands.dedup();
        if commands.is_empty() || !self.ctx.is_primary() {
            return Ok(());
        }
        let client = self.client(self.admin_side()).clone();
        create_collection(db, PROBE, limit).await?;
        let mut proven = Vec::new();
        for command in commands {
            let result = fail_point::prove_fires(&client, db, PROBE, command, limit).await;
            if let Err(reason) = result {
                let _ = bounded(limit, db.collection::<Document>(PROBE).drop().into_future()).await;
                anyhow::bail!(
                    "a fail-command fault targets `{command}`, but server `{}` does not fail it when its fail point is armed: {reason}\n  the window would exercise nothing; target other commands, or run against a real MongoDB. {ALTERNATIVE}",
                    self.ctx.server
                );
            }
            proven.push(command);
        }
        let _ = bounded(limit, db.collection::<Document>(PROBE).drop().into_future()).await;
        for command in proven {
            self.info
                .capabilities
                .insert(format!("fail_point_fires.{command}"), true);
        }
        Ok(())
    }

    async fn probe_fail_point(&self, limit: Duration) -> Result<(), String> {
        let admin = self.client(self.admin_side()).database("admin");
        bounded(
            limit,
            admin
                .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
                .into_future(),
        )
        .await
        .map(|_| ())
        .map_err(|f| f.detail)
    }
}
