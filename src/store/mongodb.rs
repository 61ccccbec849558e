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
//! This file holds the store (connect, probe, set-up, scans, faults, clean-up);
//! the pattern clients are in `mongodb_clients`, the wire helpers (error
//! classification, bounded calls, find/count commands, documents) in
//! `mongodb_wire`, the relays in `mongodb_relay`.

use anyhow::Context;
use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::Error as MongoError;
use mongodb::options::{ClientOptions, Credential};
use mongodb::{Client, Database, IndexModel};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::mongodb_clients::{
    BareClient, MongoWriter, NaiveClient, PrimaryOnlyClient, TransactionClient,
};
use super::mongodb_relay::{OutboxPollRelay, StreamRelay};
use super::mongodb_wire::{bounded, event_doc, event_id, find_page, record_of};
use super::{PatternClient, Record, ScanSink, ServerInfo, Store, StoreContext};
use crate::order::order_key;
use crate::pattern::{KeyPolicy, PatternKind, RelayMode};
use crate::relay::RelayWorker;
use crate::scenario::{FaultKind, FaultSpec, Side};

pub(crate) const ORDERS: &str = "orders";
pub(crate) const EVENTS: &str = "order_events";
const PROBE: &str = "_probe";
const SCAN_PAGE: i32 = 5000;

/// Where to run a real replica set when the local servers lack a capability.
const ALTERNATIVE: &str = "alternative: a real MongoDB replica set (transactions, change streams, failCommand) with Docker: `docker compose -f docker/compose.yml up -d`, then set [target] server = \"mongodb\" (proxies mongodb_primary/secondary/relay)";

pub struct MongoStore {
    ctx: StoreContext,
    clients: BTreeMap<Side, Client>,
    info: ServerInfo,
}

impl MongoStore {
    pub async fn connect(ctx: StoreContext) -> anyhow::Result<Self> {
        let mut clients = BTreeMap::new();
        for side in Side::ALL {
            let client = side_client(ctx.endpoint(side), side, &ctx)
                .await
                .with_context(|| format!("MongoDB client for the {side} side"))?;
            clients.insert(side, client);
        }
        Ok(Self {
            ctx,
            clients,
            info: ServerInfo::default(),
        })
    }

    fn db(&self, side: Side) -> Database {
        self.clients[&side].database(&self.ctx.namespace)
    }

    fn op_timeout(&self) -> Duration {
        self.ctx.scenario.workload.op_timeout
    }

    /// Which capabilities the scenario needs, each with the reason and a way out.
    fn needs(&self) -> Vec<(&'static str, String, &'static str)> {
        let s = &self.ctx.scenario;
        let mut needs = Vec::new();
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

/// A client for one side. Credentials only from the environment, never logged.
async fn side_client(endpoint: &str, side: Side, ctx: &StoreContext) -> anyhow::Result<Client> {
    let op_timeout = ctx.scenario.workload.op_timeout;
    let uri = if endpoint.starts_with("mongodb://") {
        endpoint.to_string()
    } else {
        format!("mongodb://{endpoint}/?directConnection=true")
    };
    let mut opts = ClientOptions::parse(&uri)
        .await
        .with_context(|| format!("bad MongoDB endpoint `{endpoint}`"))?;
    opts.direct_connection = Some(true);
    opts.app_name = Some(format!("dualwrite-{side}"));
    // Selection fails before the operation's own bound, so a down proxy reads as
    // "not sent" (fail) rather than as a timeout (unknown).
    opts.server_selection_timeout = Some(op_timeout.mul_f64(0.8).max(Duration::from_millis(200)));
    opts.connect_timeout = Some(if side == Side::Relay {
        // The relay is a background worker with its own bound (at least 2 s), not
        // the timed workload. The monitor's hello is bounded by this timeout, and
        // one slow hello under load clears the pool, interrupting the relay's
        // batch in flight.
        Duration::from_secs(2)
    } else {
        op_timeout
            .mul_f64(0.5)
            .clamp(Duration::from_millis(100), Duration::from_secs(2))
    });
    opts.heartbeat_freq = Some(Duration::from_millis(500));
    opts.retry_writes = Some(false);
    opts.max_pool_size = Some((ctx.scenario.workload.concurrency as u32).clamp(4, 256));
    if let (Ok(user), Ok(password)) = (
        std::env::var("DUALWRITE_MONGODB_USER"),
        std::env::var("DUALWRITE_MONGODB_PASSWORD"),
    ) {
        opts.credential = Some(
            Credential::builder()
                .username(user)
                .password(password)
                .build(),
        );
    }
    Ok(Client::with_options(opts)?)
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
        let server = self.ctx.scenario.target.server.clone();
        let endpoint = self.ctx.endpoint(Side::Primary).to_string();
        let limit = self.op_timeout().max(Duration::from_secs(3));
        let admin = self.clients[&Side::Primary].database("admin");
        let hello = bounded(limit, admin.run_command(doc! {"hello": 1}).into_future())
            .await
            .map_err(|f| {
                anyhow::anyhow!(
                    "MongoDB server `{server}` at {endpoint} (primary side) does not answer: {}\n  hint: start the local stack (scripts/stack up) or check [target] in the scenario",
                    f.detail
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
        let db = self.db(Side::Primary);
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
        Ok(())
    }

    fn server_info(&self) -> ServerInfo {
        self.info.clone()
    }

    async fn prepare(&self) -> anyhow::Result<()> {
        let db = self.db(Side::Primary);
        let limit = self.op_timeout().max(Duration::from_secs(5));
        create_collection(&db, ORDERS, limit).await?;
        create_collection(&db, EVENTS, limit).await?;
        if self.ctx.scenario.pattern.kind == PatternKind::Outbox {
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

    async fn client(&self) -> anyhow::Result<Arc<dyn PatternClient>> {
        let base = MongoWriter {
            primary: self.db(Side::Primary),
            secondary: self.db(Side::Secondary),
            primary_client: self.clients[&Side::Primary].clone(),
            pattern: self.ctx.scenario.pattern.clone(),
            op_timeout: self.op_timeout(),
            end_failed_sessions: self.ctx.scenario.target.server == "mongoeco",
        };
        Ok(match base.pattern.kind {
            PatternKind::Naive => Arc::new(NaiveClient(base)),
            PatternKind::Transaction => Arc::new(TransactionClient(base)),
            PatternKind::Outbox => Arc::new(PrimaryOnlyClient {
                w: base,
                outbox: true,
            }),
            PatternKind::Streams => Arc::new(PrimaryOnlyClient {
                w: base,
                outbox: false,
            }),
            other => anyhow::bail!("pattern `{other}` does not apply to mongodb"),
        })
    }

    async fn relay(&self) -> anyhow::Result<Option<Arc<dyn RelayWorker>>> {
        let pattern = &self.ctx.scenario.pattern;
        let relay_db = self.db(Side::Relay);
        let watch_db = self.db(Side::Primary);
        let op_timeout = self.op_timeout();
        Ok(match (pattern.kind, pattern.relay.mode) {
            (PatternKind::Outbox, RelayMode::Poll) => Some(Arc::new(OutboxPollRelay::new(
                relay_db,
                watch_db,
                pattern.relay.clone(),
                op_timeout,
            ))),
            (PatternKind::Outbox | PatternKind::Streams, RelayMode::Stream)
            | (PatternKind::Streams, RelayMode::Poll) => Some(Arc::new(
                StreamRelay::new(
                    relay_db,
                    watch_db,
                    pattern.kind == PatternKind::Outbox,
                    pattern.relay.clone(),
                    op_timeout,
                )
                .await,
            )),
            _ => None,
        })
    }

    async fn scan(&self, side: Side, sink: &mut dyn ScanSink) -> anyhow::Result<()> {
        let (coll, key) = match side {
            Side::Primary => (self.db(Side::Primary).collection::<Document>(ORDERS), "_id"),
            _ => (
                self.db(Side::Secondary).collection::<Document>(EVENTS),
                "order_id",
            ),
        };
        let limit = Duration::from_secs(60).max(self.op_timeout());
        let name = coll.name().to_string();
        // A fresh client, so no pooled session is reused: mongoeco answers reads
        // on a session whose transaction was cut by a fault from that transaction's
        // snapshot (seen here: a scan returned 83 of 334 orders).
        let client = side_client(self.ctx.endpoint(side), side, &self.ctx).await?;
        let db = client.database(&self.ctx.namespace);
        let mut skip = 0;
        loop {
            let page = find_page(&db, &name, doc! {}, skip, SCAN_PAGE, limit)
                .await
                .map_err(|f| {
                    anyhow::anyhow!("scan of {}.{name} failed: {}", db.name(), f.detail)
                })?;
            for d in &page {
                match record_of(d, key) {
                    Some(r) => sink.record(r),
                    None => sink.foreign(&match d.get("_id") {
                        Some(Bson::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => "?".into(),
                    }),
                }
            }
            if page.len() < SCAN_PAGE as usize {
                return Ok(());
            }
            skip += SCAN_PAGE;
        }
    }

    async fn plant(&self, side: Side, record: Record, copies: u32) -> anyhow::Result<()> {
        let db = self.db(Side::Primary);
        for _ in 0..copies.max(1) {
            let (coll, d) = match side {
                Side::Primary => (
                    ORDERS,
                    doc! {
                        "_id": order_key(record.order_id),
                        "customer_id": record.customer_id as i64,
                        "amount_cents": record.amount_cents as i64,
                    },
                ),
                _ => (
                    EVENTS,
                    event_doc(&record, event_id(record.order_id, KeyPolicy::Fresh)),
                ),
            };
            db.collection::<Document>(coll)
                .insert_one(d)
                .await
                .with_context(|| format!("planting into {}.{coll}", db.name()))?;
        }
        Ok(())
    }

    async fn plant_foreign(&self, side: Side, key: &str) -> anyhow::Result<()> {
        let coll = if side == Side::Primary {
            ORDERS
        } else {
            EVENTS
        };
        self.db(Side::Primary)
            .collection::<Document>(coll)
            .insert_one(doc! {"_id": key})
            .await
            .context("planting a foreign record")?;
        Ok(())
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
        let command = if active {
            let mut data = doc! {
                "failCommands": commands.clone(),
                "errorCode": *error_code,
                "errorLabels": error_labels.clone(),
                "closeConnection": *close_connection,
            };
            // The fail point is server-wide; the side picks the collection its CRUD
            // commands act on (transaction commands have no collection).
            const CRUD: [&str; 5] = ["insert", "update", "delete", "find", "findAndModify"];
            let collection = match fault.side {
                Side::Primary => Some(ORDERS),
                Side::Secondary => Some(EVENTS),
                Side::Relay => None,
            };
            if let Some(c) = collection
                && commands.iter().all(|c| CRUD.contains(&c.as_str()))
            {
                data.insert("namespace", format!("{}.{c}", self.ctx.namespace));
            }
            let mode = match times {
                Some(n) => Bson::Document(doc! {"times": *n as i32}),
                None => Bson::String("alwaysOn".into()),
            };
            doc! {"configureFailPoint": "failCommand", "mode": mode, "data": data}
        } else {
            doc! {"configureFailPoint": "failCommand", "mode": "off"}
        };
        // Through the primary side's client; a network fault on that side at the
        // same moment would make this fail (reported on the fault window).
        let admin = self.clients[&Side::Primary].database("admin");
        bounded(
            self.op_timeout().max(Duration::from_secs(3)),
            admin.run_command(command).into_future(),
        )
        .await
        .map_err(|f| anyhow::anyhow!("configureFailPoint failCommand: {}", f.detail))?;
        Ok(())
    }

    async fn bare_client(&self, writes: u8) -> Option<Arc<dyn PatternClient>> {
        Some(Arc::new(BareClient {
            primary: self.db(Side::Primary),
            secondary: self.db(Side::Secondary),
            writes,
        }))
    }

    async fn drop_namespace(&self) -> anyhow::Result<()> {
        let db = self.db(Side::Primary);
        bounded(Duration::from_secs(10), db.drop().into_future())
            .await
            .map_err(|f| anyhow::anyhow!("dropping database {}: {}", db.name(), f.detail))
    }
}

impl MongoStore {
    /// Inserts in a transaction and aborts it: both must work.
    async fn probe_transaction(&self, db: &Database, limit: Duration) -> Result<(), String> {
        let client = &self.clients[&Side::Primary];
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

    async fn probe_fail_point(&self, limit: Duration) -> Result<(), String> {
        let admin = self.clients[&Side::Primary].database("admin");
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
