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

use anyhow::Context;
use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::error::{
    Error as MongoError, ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
    WriteFailure,
};
use mongodb::options::{ClientOptions, Credential};
use mongodb::{Client, Collection, Database, IndexModel};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::mongodb_relay::{OutboxPollRelay, StreamRelay};
use super::{PatternClient, Record, ScanSink, ServerInfo, Store, StoreContext};
use crate::history::{OpReport, Outcome, SideOutcome};
use crate::order::{Order, order_key, parse_order_key};
use crate::pattern::{KeyPolicy, OnSecondaryFailure, Pattern, PatternKind, RelayMode};
use crate::relay::RelayWorker;
use crate::scenario::{FaultKind, FaultSpec, Side};

pub(crate) const ORDERS: &str = "orders";
pub(crate) const EVENTS: &str = "order_events";
const PROBE: &str = "_probe";
const DUPLICATE_KEY: i32 = 11000;
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
    opts.connect_timeout = Some(
        op_timeout
            .mul_f64(0.5)
            .clamp(Duration::from_millis(100), Duration::from_secs(2)),
    );
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

/// A failed call as the application sees it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub outcome: SideOutcome,
    pub class: String,
    pub detail: String,
    pub transient_txn: bool,
    pub unknown_commit: bool,
    pub duplicate_key: bool,
}

impl Failure {
    fn reply(detail: String) -> Self {
        Self {
            outcome: SideOutcome::Unknown,
            class: "invalid-response".into(),
            detail,
            transient_txn: false,
            unknown_commit: false,
            duplicate_key: false,
        }
    }

    fn timeout(limit: Duration) -> Self {
        Self {
            outcome: SideOutcome::Unknown,
            class: "timeout".into(),
            detail: format!("no answer within {} ms", limit.as_millis()),
            transient_txn: false,
            unknown_commit: false,
            duplicate_key: false,
        }
    }
}

/// `Fail` when the request certainly did not apply, `Unknown` when it may have.
pub(crate) fn classify(e: &MongoError) -> Failure {
    let mut duplicate_key = false;
    let mut write_conflict = false;
    let (outcome, class) = match e.kind.as_ref() {
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            (SideOutcome::Fail, "refused".to_string())
        }
        // The request may have reached the server; only the answer was lost.
        ErrorKind::Io(_) => (SideOutcome::Unknown, "io".to_string()),
        ErrorKind::ServerSelection { .. } => (SideOutcome::Fail, "server-selection".into()),
        ErrorKind::ConnectionPoolCleared { .. } => (SideOutcome::Fail, "pool-cleared".into()),
        ErrorKind::Command(c) => (
            SideOutcome::Fail,
            if c.code_name.is_empty() {
                format!("code-{}", c.code)
            } else {
                c.code_name.clone()
            },
        ),
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            duplicate_key = w.code == DUPLICATE_KEY;
            (
                SideOutcome::Fail,
                if duplicate_key {
                    "duplicate-key".into()
                } else {
                    w.code_name.clone().unwrap_or(format!("code-{}", w.code))
                },
            )
        }
        // Applied, but not acknowledged by enough members.
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => {
            (SideOutcome::Unknown, "write-concern".into())
        }
        ErrorKind::Transaction { .. } => (SideOutcome::Fail, "transaction-state".into()),
        ErrorKind::Authentication { .. } => (SideOutcome::Fail, "authentication".into()),
        // mongoeco's commit conflict (database-wide optimistic concurrency) comes
        // without `code` or labels, so the driver cannot parse it; it is raised
        // before anything is applied, and it is what real MongoDB labels
        // WriteConflict + TransientTransactionError.
        ErrorKind::InvalidResponse { .. } if errmsg(e).contains("Write conflict") => {
            write_conflict = true;
            (SideOutcome::Fail, "WriteConflict".into())
        }
        // A reply the driver could not read: the command ran or not, we cannot tell.
        ErrorKind::InvalidResponse { .. } => (SideOutcome::Unknown, "invalid-response".into()),
        ErrorKind::SessionsNotSupported => (SideOutcome::Fail, "sessions-not-supported".into()),
        ErrorKind::Internal { .. } => (SideOutcome::Unknown, "driver-internal".into()),
        _ => (SideOutcome::Unknown, "other".into()),
    };
    Failure {
        outcome,
        class,
        detail: short_detail(e),
        transient_txn: write_conflict || e.contains_label(TRANSIENT_TRANSACTION_ERROR),
        unknown_commit: e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT),
        duplicate_key,
    }
}

fn errmsg(e: &MongoError) -> &str {
    e.server_response()
        .and_then(|r| r.get_str("errmsg").ok())
        .unwrap_or("")
}

/// The error without the raw server response bytes the driver's `Display` adds.
fn short_detail(e: &MongoError) -> String {
    // A reply the driver could not parse (mongoeco omits `code` on some errors):
    // its `errmsg` is the useful part.
    if let Some(msg) = e
        .server_response()
        .and_then(|r| r.get_str("errmsg").ok())
        .filter(|_| matches!(e.kind.as_ref(), ErrorKind::InvalidResponse { .. }))
    {
        return format!("{} (server errmsg: {msg})", e.kind);
    }
    let labels = e.labels();
    if labels.is_empty() {
        e.kind.to_string()
    } else {
        let mut labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        labels.sort_unstable();
        format!("{} [labels: {}]", e.kind, labels.join(", "))
    }
}

/// One page of a `find`, sorted by `_id`, read from the command's reply rather
/// than through a driver cursor: mongoeco encodes cursor ids as Int32, which the
/// Rust driver rejects, and one code path for every server is simpler to trust.
/// `skip`/`limit` are Int32 because mongoeco rejects Int64 there.
pub(crate) async fn find_page(
    db: &Database,
    coll: &str,
    filter: Document,
    skip: i32,
    limit: i32,
    bound: Duration,
) -> Result<Vec<Document>, Failure> {
    let command = doc! {
        "find": coll,
        "filter": filter,
        "sort": {"_id": 1},
        "skip": skip,
        "limit": limit,
        "batchSize": limit,
        "singleBatch": true,
    };
    let reply = bounded(bound, db.run_command(command).into_future()).await?;
    let batch = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map_err(|e| Failure::reply(format!("find on {}.{coll}: {e}", db.name())))?;
    Ok(batch
        .iter()
        .filter_map(|d| d.as_document().cloned())
        .collect())
}

/// `count` (a command, not an aggregation cursor: see [`find_page`]).
pub(crate) async fn count(
    db: &Database,
    coll: &str,
    filter: Document,
    bound: Duration,
) -> Result<u64, Failure> {
    let reply = bounded(
        bound,
        db.run_command(doc! {"count": coll, "query": filter})
            .into_future(),
    )
    .await?;
    match reply.get("n") {
        Some(Bson::Int32(n)) => Ok(*n as u64),
        Some(Bson::Int64(n)) => Ok(*n as u64),
        Some(Bson::Double(n)) => Ok(*n as u64),
        _ => Err(Failure::reply(format!(
            "count on {}.{coll}: no `n` in the reply",
            db.name()
        ))),
    }
}

/// Runs one driver call bounded by `limit`.
pub(crate) async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = mongodb::error::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(Failure::timeout(limit)),
    }
}

pub(crate) fn order_doc(order: &Order) -> Document {
    doc! {
        "_id": order.key(),
        "customer_id": order.customer_id as i64,
        "amount_cents": order.amount_cents as i64,
        "payload": &order.payload,
    }
}

/// The event id: derived from the order (a replay is rejected as a duplicate key)
/// or fresh per attempt (a replay writes a second event).
pub(crate) fn event_id(order_id: u64, policy: KeyPolicy) -> Bson {
    match policy {
        KeyPolicy::Stable => Bson::String(format!("e-{}", order_key(order_id))),
        KeyPolicy::Fresh => Bson::ObjectId(ObjectId::new()),
    }
}

pub(crate) fn event_doc(record: &Record, id: Bson) -> Document {
    doc! {
        "_id": id,
        "order_id": order_key(record.order_id),
        "customer_id": record.customer_id as i64,
        "amount_cents": record.amount_cents as i64,
    }
}

fn number(doc: &Document, key: &str) -> u64 {
    match doc.get(key) {
        Some(Bson::Int64(n)) => *n as u64,
        Some(Bson::Int32(n)) => *n as u64,
        Some(Bson::Double(n)) => *n as u64,
        _ => u64::MAX,
    }
}

/// Reads a record's compared fields from an order (`_id`) or event (`order_id`).
pub(crate) fn record_of(doc: &Document, key: &str) -> Option<Record> {
    let order_id = parse_order_key(doc.get_str(key).ok()?)?;
    Some(Record {
        order_id,
        customer_id: number(doc, "customer_id"),
        amount_cents: number(doc, "amount_cents"),
    })
}

/// Backoff with jitter (×0.5 to ×1.5), doubling per attempt, capped at 1 s.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    crate::store::dynamodb::backoff(base, attempt)
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

/// What every MongoDB pattern client holds.
#[derive(Clone)]
pub(crate) struct MongoWriter {
    pub primary: Database,
    pub secondary: Database,
    pub primary_client: Client,
    pub pattern: Pattern,
    pub op_timeout: Duration,
    /// mongoeco keeps a session's transaction open after a failed commit, and the
    /// next `startTransaction` on that (pooled) session continues it instead of
    /// starting afresh; ending the server session after a failed attempt resets it.
    pub end_failed_sessions: bool,
}

impl MongoWriter {
    async fn insert(&self, db: &Database, coll: &str, d: Document) -> Result<(), Failure> {
        let c: Collection<Document> = db.collection(coll);
        bounded(self.op_timeout, c.insert_one(d).into_future())
            .await
            .map(|_| ())
    }
}

fn outcome_of(side: SideOutcome) -> Outcome {
    match side {
        SideOutcome::Ok | SideOutcome::Async => Outcome::Ok,
        SideOutcome::Fail | SideOutcome::Skipped => Outcome::Fail,
        SideOutcome::Unknown => Outcome::Unknown,
    }
}

fn failed(
    side: SideOutcome,
    f: Failure,
    primary: SideOutcome,
    secondary: SideOutcome,
    retries: u32,
) -> OpReport {
    OpReport {
        outcome: outcome_of(side),
        error: Some(f.class),
        primary,
        secondary,
        retries,
        detail: Some(f.detail),
    }
}

/// insert_one into orders, then into order_events; what happens when the second
/// fails is the application's policy (`on_secondary_failure`).
struct NaiveClient(MongoWriter);

#[async_trait]
impl PatternClient for NaiveClient {
    async fn write(&self, order: &Order) -> OpReport {
        let w = &self.0;
        if let Err(f) = w.insert(&w.primary, ORDERS, order_doc(order)).await {
            let p = f.outcome;
            return failed(p, f, p, SideOutcome::Skipped, 0);
        }
        let record = Record::of(order);
        let mut retries = 0;
        let mut ambiguous = false;
        loop {
            let d = event_doc(&record, event_id(order.id, w.pattern.secondary_key));
            let f = match w.insert(&w.secondary, EVENTS, d).await {
                Ok(()) => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Ok).with_retries(retries);
                }
                // A stable event id already there: an earlier attempt landed.
                Err(f) if f.duplicate_key && ambiguous => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Ok).with_retries(retries);
                }
                Err(f) => f,
            };
            ambiguous |= f.outcome == SideOutcome::Unknown;
            let policy = w.pattern.on_secondary_failure;
            if policy == OnSecondaryFailure::Retry && retries < w.pattern.retries {
                retries += 1;
                tokio::time::sleep(backoff(w.pattern.backoff, retries)).await;
                continue;
            }
            let secondary = if ambiguous {
                SideOutcome::Unknown
            } else {
                f.outcome
            };
            let mut report = failed(secondary, f, SideOutcome::Ok, secondary, retries);
            // The error is logged and the caller hears "ok": the silent orphan.
            if policy == OnSecondaryFailure::LogAndContinue {
                report.outcome = Outcome::Ok;
            }
            return report;
        }
    }
}

/// Both inserts in one session transaction, with the driver spec's retry rules:
/// the whole body again on `TransientTransactionError`, only the commit again on
/// `UnknownTransactionCommitResult`; `retries` bounds both (0 = an application
/// without a retry loop), and the total time is bounded too.
struct TransactionClient(MongoWriter);

enum Attempt {
    Committed,
    /// Failed in the body or the commit; `commit_sent` when a commit may have applied.
    Failed {
        f: Failure,
        commit_sent: bool,
    },
}

impl TransactionClient {
    async fn attempt(&self, order: &Order, retries: &mut u32, deadline: Instant) -> Attempt {
        let w = &self.0;
        let limit = w.op_timeout;
        let mut session = match bounded(limit, w.primary_client.start_session().into_future()).await
        {
            Ok(s) => s,
            Err(f) => {
                return Attempt::Failed {
                    f,
                    commit_sent: false,
                };
            }
        };
        let result = self
            .attempt_in(&mut session, order, retries, deadline)
            .await;
        if w.end_failed_sessions && !matches!(result, Attempt::Committed) {
            let lsid = session.id().clone();
            let admin = w.primary_client.database("admin");
            let _ = bounded(
                limit,
                admin
                    .run_command(doc! {"endSessions": [lsid]})
                    .into_future(),
            )
            .await;
        }
        result
    }

    async fn attempt_in(
        &self,
        session: &mut mongodb::ClientSession,
        order: &Order,
        retries: &mut u32,
        deadline: Instant,
    ) -> Attempt {
        let w = &self.0;
        let limit = w.op_timeout;
        let body = async {
            session.start_transaction().await?;
            w.primary
                .collection::<Document>(ORDERS)
                .insert_one(order_doc(order))
                .session(&mut *session)
                .await?;
            let record = Record::of(order);
            w.primary
                .collection::<Document>(EVENTS)
                .insert_one(event_doc(
                    &record,
                    event_id(order.id, w.pattern.secondary_key),
                ))
                .session(&mut *session)
                .await?;
            Ok::<(), MongoError>(())
        };
        if let Err(mut f) = bounded(limit, body).await {
            // A timed-out body never committed: as transient as a network error.
            f.transient_txn |= f.class == "timeout";
            let _ = bounded(limit, session.abort_transaction().into_future()).await;
            return Attempt::Failed {
                f,
                commit_sent: false,
            };
        }
        loop {
            match bounded(limit, session.commit_transaction().into_future()).await {
                Ok(()) => return Attempt::Committed,
                Err(mut f) => {
                    f.unknown_commit |= f.class == "timeout" || f.outcome == SideOutcome::Unknown;
                    let commit_sent = f.unknown_commit;
                    if f.unknown_commit
                        && !f.transient_txn
                        && *retries < w.pattern.retries
                        && Instant::now() < deadline
                    {
                        *retries += 1;
                        tokio::time::sleep(backoff(w.pattern.backoff, *retries)).await;
                        continue;
                    }
                    return Attempt::Failed { f, commit_sent };
                }
            }
        }
    }
}

#[async_trait]
impl PatternClient for TransactionClient {
    async fn write(&self, order: &Order) -> OpReport {
        let w = &self.0;
        let deadline = Instant::now() + w.op_timeout * (w.pattern.retries + 1);
        let mut retries = 0;
        let mut ambiguous = false;
        loop {
            let f = match self.attempt(order, &mut retries, deadline).await {
                Attempt::Committed => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Ok).with_retries(retries);
                }
                // The order is there: an earlier commit whose answer was lost applied.
                Attempt::Failed { f, .. } if f.duplicate_key && ambiguous => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Ok).with_retries(retries);
                }
                Attempt::Failed { f, commit_sent } => {
                    ambiguous |= commit_sent;
                    f
                }
            };
            let retry_body = f.transient_txn
                || f.class == "server-selection"
                || f.class == "refused"
                || f.class == "pool-cleared";
            if retry_body && retries < w.pattern.retries && Instant::now() < deadline {
                retries += 1;
                tokio::time::sleep(backoff(w.pattern.backoff, retries)).await;
                continue;
            }
            let side = if ambiguous {
                SideOutcome::Unknown
            } else {
                f.outcome
            };
            return failed(side, f, side, side, retries);
        }
    }
}

/// Writes the order alone; a relay writes the secondary side. With `outbox`, the
/// event rides in the same document (`_outbox`), so one atomic insert holds both.
struct PrimaryOnlyClient {
    w: MongoWriter,
    outbox: bool,
}

#[async_trait]
impl PatternClient for PrimaryOnlyClient {
    async fn write(&self, order: &Order) -> OpReport {
        let w = &self.w;
        let mut d = order_doc(order);
        if self.outbox {
            let record = Record::of(order);
            d.insert(
                "_outbox",
                doc! {
                    "event": event_doc(&record, Bson::Null),
                    "published": false,
                    "created_at": mongodb::bson::DateTime::now(),
                },
            );
        }
        let mut retries = 0;
        let mut ambiguous = false;
        loop {
            let f = match w.insert(&w.primary, ORDERS, d.clone()).await {
                Ok(()) => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Async).with_retries(retries);
                }
                Err(f) if f.duplicate_key && ambiguous => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Async).with_retries(retries);
                }
                Err(f) => f,
            };
            ambiguous |= f.outcome == SideOutcome::Unknown;
            let retryable = f.outcome == SideOutcome::Unknown
                || ["refused", "server-selection", "pool-cleared"].contains(&f.class.as_str());
            if retryable && retries < w.pattern.retries {
                retries += 1;
                tokio::time::sleep(backoff(w.pattern.backoff, retries)).await;
                continue;
            }
            let side = if ambiguous {
                SideOutcome::Unknown
            } else {
                f.outcome
            };
            // Whatever landed carries its event: the relay will publish it.
            let secondary = if side == SideOutcome::Fail {
                SideOutcome::Skipped
            } else {
                SideOutcome::Async
            };
            return failed(side, f, side, secondary, retries);
        }
    }
}
