//! Apache Cassandra through Toxiproxy, with the `scylla` driver.
//!
//! Keyspace per run = the namespace (SimpleStrategy, RF 1), dropped at the end.
//! Tables (all created idempotently):
//! - `orders` ((order_id)): the primary side of every pattern.
//! - `orders_by_customer` ((customer_id), order_id): the secondary side of `naive`
//!   and of the cross-partition `logged-batch` (a different partition key).
//! - `order_audit` ((order_id), audit_id): the secondary side of the same-partition
//!   `logged-batch`: same partition key as `orders`, so the batch is one mutation.
//! - `order_outbox` ((order_id)): the outbox row written in the order's batch.
//! - `events` ((order_id), event_id): what the outbox relay publishes; a fresh
//!   `event_id` per publication (non-idempotent consumer) lets a replay duplicate.
//!
//! Each side has its own Session to its own proxy. The driver learns node addresses
//! from `system.local`/`system.peers`; [`ThroughProxy`] maps every one of them back
//! to the side's proxy so no connection bypasses it. The driver's own retries are off
//! (retrying is the application's decision) and every request has `op_timeout`.

use anyhow::Context;
use async_trait::async_trait;
use futures::TryStreamExt;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError, TranslationError};
use scylla::policies::address_translator::{AddressTranslator, UntranslatedPeer};
use scylla::policies::retry::FallthroughRetryPolicy;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, Statement};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::cassandra_relay::OutboxRelay;
use super::{PatternClient, Record, ScanSink, ServerInfo, Store, StoreContext};
use crate::backoff;
use crate::history::{OpReport, Outcome, SideOutcome};
use crate::order::{Order, order_key, parse_order_key};
use crate::pattern::{OnSecondaryFailure, Partitioning, Pattern, PatternKind};
use crate::relay::RelayWorker;
use crate::scenario::Side;

/// Schema changes and scans are slower than a write: their own timeout.
const DDL_TIMEOUT: Duration = Duration::from_secs(30);
const SCAN_PAGE: i32 = 1000;

/// Maps every node address the driver learns to the side's proxy address, so that
/// all traffic of a session goes through its proxy (one node behind each proxy).
#[derive(Debug)]
pub struct ThroughProxy(pub SocketAddr);

#[async_trait]
impl AddressTranslator for ThroughProxy {
    async fn translate_address(
        &self,
        _peer: &UntranslatedPeer,
    ) -> Result<SocketAddr, TranslationError> {
        Ok(self.0)
    }
}

pub struct CassandraStore {
    ctx: StoreContext,
    sessions: BTreeMap<Side, Arc<Session>>,
    info: ServerInfo,
}

/// Fully qualified table names of one run.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub keyspace: String,
    pub orders: String,
    pub by_customer: String,
    pub audit: String,
    pub outbox: String,
    pub events: String,
}

impl Tables {
    fn of(keyspace: &str) -> Self {
        Self {
            keyspace: keyspace.to_string(),
            orders: format!("{keyspace}.orders"),
            by_customer: format!("{keyspace}.orders_by_customer"),
            audit: format!("{keyspace}.order_audit"),
            outbox: format!("{keyspace}.order_outbox"),
            events: format!("{keyspace}.events"),
        }
    }

    /// The table the checker reads as the secondary side, per pattern.
    fn secondary(&self, pattern: &Pattern) -> &str {
        match (pattern.kind, pattern.partitioning) {
            (PatternKind::LoggedBatch, Partitioning::Same) => &self.audit,
            (PatternKind::Outbox, _) => &self.events,
            _ => &self.by_customer,
        }
    }
}

pub(crate) fn consistency(name: &str) -> Consistency {
    match name {
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "local_one" => Consistency::LocalOne,
        _ => Consistency::Quorum,
    }
}

/// Opens a session through one proxy (`host:port`).
async fn open_session(
    side: Side,
    endpoint: &str,
    op_timeout: Duration,
    level: Consistency,
) -> anyhow::Result<Session> {
    let addr = tokio::net::lookup_host(endpoint)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| format!("cannot resolve the {side} endpoint `{endpoint}`"))?;
    let profile = ExecutionProfile::builder()
        .request_timeout(Some(op_timeout))
        .consistency(level)
        .retry_policy(Arc::new(FallthroughRetryPolicy::new()))
        .build();
    let builder = SessionBuilder::new()
        .known_node_addr(addr)
        .address_translator(Arc::new(ThroughProxy(addr)))
        .connection_timeout(Duration::from_secs(2))
        // Schema metadata is not needed (prepared statements carry their partition
        // key), and refreshing it after DDL fails when another run drops its
        // keyspace at the same moment.
        .fetch_schema_metadata(false)
        .refresh_metadata_on_auto_schema_agreement(false)
        .default_execution_profile_handle(profile.into_handle());
    let build = builder.build();
    let hint = "hint: is the local stack up (scripts/stack up) and the proxy enabled? see scripts/PORTS.md";
    match tokio::time::timeout(Duration::from_secs(10), build).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => anyhow::bail!("Cassandra at {endpoint} ({side} side): {e}\n  {hint}"),
        Err(_) => {
            anyhow::bail!("Cassandra at {endpoint} ({side} side): no session within 10s\n  {hint}")
        }
    }
}

/// How a failed request is seen by the application: `Fail` when it certainly did
/// not apply, `Unknown` when it may have.
pub(crate) fn classify(err: &ExecutionError) -> (SideOutcome, String) {
    use SideOutcome::{Fail, Unknown};
    match err {
        // Nothing was sent: no connection to send it on, or it never got that far.
        ExecutionError::ConnectionPoolError(_) => (Fail, "no-connection".into()),
        ExecutionError::EmptyPlan => (Fail, "no-node".into()),
        ExecutionError::BadQuery(_) => (Fail, "bad-query".into()),
        ExecutionError::PrepareError(_) => (Fail, "prepare".into()),
        ExecutionError::RequestTimeout(_) => (Unknown, "timeout".into()),
        ExecutionError::LastAttemptError(e) => match e {
            RequestAttemptError::UnableToAllocStreamId => (Fail, "no-stream-id".into()),
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_) => (Fail, "serialization".into()),
            // The connection died with this request on it: sent or not, we cannot tell.
            RequestAttemptError::BrokenConnectionError(_) => (Unknown, "connection-closed".into()),
            RequestAttemptError::DbError(db, _) => match db {
                // Batch, Cas, BatchLog...: which step timed out, kept in the class.
                DbError::WriteTimeout { write_type, .. } => {
                    (Unknown, format!("WriteTimeout-{write_type:?}"))
                }
                DbError::ReadTimeout { .. } => (Unknown, "ReadTimeout".into()),
                DbError::WriteFailure { .. } => (Unknown, "WriteFailure".into()),
                DbError::ServerError => (Unknown, "ServerError".into()),
                DbError::Unavailable { .. } => (Fail, "Unavailable".into()),
                DbError::Overloaded => (Fail, "Overloaded".into()),
                DbError::IsBootstrapping => (Fail, "IsBootstrapping".into()),
                DbError::RateLimitReached { .. } => (Fail, "RateLimitReached".into()),
                other => (Fail, db_error_name(other)),
            },
            _ => (Unknown, "response".into()),
        },
        _ => (Unknown, "other".into()),
    }
}

fn db_error_name(e: &DbError) -> String {
    let debug = format!("{e:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("DbError")
        .to_string()
}

impl CassandraStore {
    pub async fn connect(ctx: StoreContext) -> anyhow::Result<Self> {
        let op_timeout = ctx.scenario.workload.op_timeout;
        let level = consistency(&ctx.scenario.pattern.consistency);
        let mut sessions = BTreeMap::new();
        for side in Side::ALL {
            let session = open_session(side, ctx.endpoint(side), op_timeout, level).await?;
            sessions.insert(side, Arc::new(session));
        }
        Ok(Self {
            ctx,
            sessions,
            info: ServerInfo::default(),
        })
    }

    /// One small query on one side's session (proxy checks in tests and tools).
    pub async fn ping(&self, side: Side) -> anyhow::Result<()> {
        self.session(side)
            .query_unpaged("SELECT release_version FROM system.local", ())
            .await
            .with_context(|| format!("{side} side ({})", self.ctx.endpoint(side)))?;
        Ok(())
    }

    fn tables(&self) -> Tables {
        Tables::of(&self.ctx.namespace)
    }

    fn session(&self, side: Side) -> &Arc<Session> {
        &self.sessions[&side]
    }

    /// DDL on the primary session. Every statement is idempotent (IF [NOT] EXISTS),
    /// so a failure is retried twice: schema changes of concurrent runs can make
    /// one attempt fail.
    async fn ddl(&self, cql: &str) -> anyhow::Result<()> {
        let mut s = Statement::new(cql);
        s.set_request_timeout(Some(DDL_TIMEOUT));
        let mut attempt = 0;
        loop {
            match self
                .session(Side::Primary)
                .query_unpaged(s.clone(), ())
                .await
            {
                Ok(_) => return Ok(()),
                Err(_) if attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("`{cql}` failed")),
            }
        }
    }
}

#[async_trait]
impl Store for CassandraStore {
    async fn probe(&mut self) -> anyhow::Result<()> {
        let endpoint = self.ctx.endpoint(Side::Primary).to_string();
        let mut s = Statement::new("SELECT release_version FROM system.local");
        s.set_request_timeout(Some(Duration::from_secs(5)));
        let version = self
            .session(Side::Primary)
            .query_unpaged(s, ())
            .await
            .with_context(|| format!("Cassandra at {endpoint} (primary side) does not answer"))?
            .into_rows_result()?
            .first_row::<(String,)>()?
            .0;
        self.info = ServerInfo {
            product: self.ctx.scenario.target.server.clone(),
            version,
            capabilities: BTreeMap::from([
                ("logged_batch".to_string(), true),
                ("lwt".to_string(), true),
                ("multi_partition_transactions".to_string(), false),
            ]),
            not_exercised: vec![
                "a single node (RF 1): replica-side partial failures of a cross-partition batch (batchlog replay, WriteTimeout of type BATCH_LOG) cannot happen; faults sit between the client and the coordinator".into(),
                "Unavailable / Overloaded need several replicas or real overload".into(),
            ],
        };
        Ok(())
    }

    fn server_info(&self) -> ServerInfo {
        self.info.clone()
    }

    async fn prepare(&self) -> anyhow::Result<()> {
        let t = self.tables();
        self.ddl(&format!(
            "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
            t.keyspace
        ))
        .await?;
        let tables = [
            format!(
                "CREATE TABLE IF NOT EXISTS {} (order_id text PRIMARY KEY, customer_id bigint, amount_cents bigint, payload text)",
                t.orders
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (customer_id bigint, order_id text, amount_cents bigint, PRIMARY KEY ((customer_id), order_id))",
                t.by_customer
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (order_id text, audit_id text, customer_id bigint, amount_cents bigint, PRIMARY KEY ((order_id), audit_id))",
                t.audit
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (order_id text PRIMARY KEY, customer_id bigint, amount_cents bigint, published boolean, processing boolean, claimed_at timestamp, claimed_by text)",
                t.outbox
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (order_id text, event_id text, customer_id bigint, amount_cents bigint, PRIMARY KEY ((order_id), event_id))",
                t.events
            ),
        ];
        for cql in &tables {
            self.ddl(cql).await?;
        }
        Ok(())
    }

    async fn client(&self) -> anyhow::Result<Arc<dyn PatternClient>> {
        let pattern = self.ctx.scenario.pattern.clone();
        let t = self.tables();
        let primary = self.session(Side::Primary).clone();
        let secondary = self.session(Side::Secondary).clone();
        let prep = |session: Arc<Session>, cql: String| async move {
            session
                .prepare(cql.clone())
                .await
                .with_context(|| format!("cannot prepare `{cql}`"))
        };
        let insert_order = if pattern.lwt_insert {
            format!(
                "INSERT INTO {} (order_id, customer_id, amount_cents, payload) VALUES (?, ?, ?, ?) IF NOT EXISTS",
                t.orders
            )
        } else {
            // A stable client timestamp per operation makes a retry merge into the
            // same cells instead of overwriting later writes (e.g. the relay's marks).
            format!(
                "INSERT INTO {} (order_id, customer_id, amount_cents, payload) VALUES (?, ?, ?, ?) USING TIMESTAMP ?",
                t.orders
            )
        };
        let by_customer = format!(
            "INSERT INTO {} (customer_id, order_id, amount_cents) VALUES (?, ?, ?) USING TIMESTAMP ?",
            t.by_customer
        );
        Ok(match pattern.kind {
            PatternKind::Naive => Arc::new(NaiveClient {
                insert_order: prep(primary.clone(), insert_order).await?,
                insert_secondary: prep(secondary.clone(), by_customer).await?,
                primary,
                secondary,
                pattern,
            }),
            PatternKind::LoggedBatch => {
                let second = match pattern.partitioning {
                    Partitioning::Same => format!(
                        "INSERT INTO {} (order_id, audit_id, customer_id, amount_cents) VALUES (?, ?, ?, ?)",
                        t.audit
                    ),
                    Partitioning::Cross => format!(
                        "INSERT INTO {} (customer_id, order_id, amount_cents) VALUES (?, ?, ?)",
                        t.by_customer
                    ),
                };
                let first = format!(
                    "INSERT INTO {} (order_id, customer_id, amount_cents, payload) VALUES (?, ?, ?, ?)",
                    t.orders
                );
                let mut batch = Batch::new(BatchType::Logged);
                batch.append_statement(prep(primary.clone(), first).await?);
                batch.append_statement(prep(primary.clone(), second).await?);
                Arc::new(BatchClient {
                    batch,
                    primary,
                    pattern,
                    outbox: false,
                })
            }
            PatternKind::Outbox => {
                if pattern.lwt_insert {
                    anyhow::bail!(
                        "pattern.lwt_insert with `outbox` on Cassandra: the order and its outbox row share one LOGGED BATCH, and Cassandra rejects conditional batches spanning two tables\n  hint: use lwt_insert with `naive`, or drop it here"
                    );
                }
                let first = format!(
                    "INSERT INTO {} (order_id, customer_id, amount_cents, payload) VALUES (?, ?, ?, ?)",
                    t.orders
                );
                let second = format!(
                    "INSERT INTO {} (order_id, customer_id, amount_cents, published, processing) VALUES (?, ?, ?, false, false)",
                    t.outbox
                );
                let mut batch = Batch::new(BatchType::Logged);
                batch.append_statement(prep(primary.clone(), first).await?);
                batch.append_statement(prep(primary.clone(), second).await?);
                Arc::new(BatchClient {
                    batch,
                    primary,
                    pattern,
                    outbox: true,
                })
            }
            other => anyhow::bail!("pattern `{other}` does not apply to cassandra"),
        })
    }

    async fn relay(&self) -> anyhow::Result<Option<Arc<dyn RelayWorker>>> {
        if self.ctx.scenario.pattern.kind != PatternKind::Outbox {
            return Ok(None);
        }
        let t = self.tables();
        let relay = OutboxRelay::new(
            self.session(Side::Relay).clone(),
            self.session(Side::Secondary).clone(),
            &t.outbox,
            &t.events,
            &self.ctx.scenario.pattern,
        )
        .await?;
        Ok(Some(Arc::new(relay)))
    }

    async fn scan(&self, side: Side, sink: &mut dyn ScanSink) -> anyhow::Result<()> {
        let t = self.tables();
        let pattern = &self.ctx.scenario.pattern;
        let (table, session) = match side {
            Side::Primary => (t.orders.as_str(), self.session(Side::Primary)),
            _ => (t.secondary(pattern), self.session(Side::Secondary)),
        };
        scan_table(session, table, sink).await
    }

    async fn plant(&self, side: Side, record: Record, copies: u32) -> anyhow::Result<()> {
        let t = self.tables();
        let session = self.session(Side::Primary);
        let key = order_key(record.order_id);
        let (c, a) = (record.customer_id as i64, record.amount_cents as i64);
        for copy in 0..copies.max(1) {
            // A second copy needs a second key: the audit and events tables have a
            // clustering id for that; the others overwrite (one row per order).
            let extra = format!("{key}-planted-{copy}");
            match side {
                Side::Primary => {
                    let cql = format!(
                        "INSERT INTO {} (order_id, customer_id, amount_cents) VALUES (?, ?, ?)",
                        t.orders
                    );
                    session.query_unpaged(cql, (&key, c, a)).await?;
                }
                _ => {
                    let table = t.secondary(&self.ctx.scenario.pattern);
                    let cql = if table == t.by_customer {
                        format!(
                            "INSERT INTO {table} (customer_id, order_id, amount_cents) VALUES (?, ?, ?)"
                        )
                    } else if table == t.audit {
                        format!(
                            "INSERT INTO {table} (order_id, audit_id, customer_id, amount_cents) VALUES (?, '{extra}', ?, ?)"
                        )
                    } else {
                        format!(
                            "INSERT INTO {table} (order_id, event_id, customer_id, amount_cents) VALUES (?, '{extra}', ?, ?)"
                        )
                    };
                    if table == t.by_customer {
                        session.query_unpaged(cql, (c, &key, a)).await?;
                    } else {
                        session.query_unpaged(cql, (&key, c, a)).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn plant_foreign(&self, side: Side, key: &str) -> anyhow::Result<()> {
        let t = self.tables();
        let cql = match side {
            Side::Primary => format!("INSERT INTO {} (order_id) VALUES (?)", t.orders),
            _ => {
                let table = t.secondary(&self.ctx.scenario.pattern);
                if table == t.by_customer {
                    format!("INSERT INTO {table} (customer_id, order_id) VALUES (0, ?)")
                } else if table == t.audit {
                    format!("INSERT INTO {table} (order_id, audit_id) VALUES (?, 'foreign')")
                } else {
                    format!("INSERT INTO {table} (order_id, event_id) VALUES (?, 'foreign')")
                }
            }
        };
        self.session(Side::Primary)
            .query_unpaged(cql, (key,))
            .await
            .context("planting a foreign record")?;
        Ok(())
    }

    async fn bare_client(&self, writes: u8) -> Option<Arc<dyn PatternClient>> {
        let t = self.tables();
        let orders = format!(
            "INSERT INTO {} (order_id, customer_id, amount_cents, payload) VALUES (?, ?, ?, ?)",
            t.orders
        );
        let by_customer = format!(
            "INSERT INTO {} (customer_id, order_id, amount_cents) VALUES (?, ?, ?)",
            t.by_customer
        );
        let primary = self.session(Side::Primary).clone();
        let secondary = self.session(Side::Secondary).clone();
        Some(Arc::new(BareClient {
            insert_order: primary.prepare(orders).await.ok()?,
            insert_secondary: secondary.prepare(by_customer).await.ok()?,
            primary,
            secondary,
            writes,
        }))
    }

    async fn drop_namespace(&self) -> anyhow::Result<()> {
        self.ddl(&format!(
            "DROP KEYSPACE IF EXISTS {}",
            self.tables().keyspace
        ))
        .await
    }
}

/// Full token-range scan of one table, paged: one page in memory at a time.
async fn scan_table(session: &Session, table: &str, sink: &mut dyn ScanSink) -> anyhow::Result<()> {
    let mut s = Statement::new(format!(
        "SELECT order_id, customer_id, amount_cents FROM {table}"
    ))
    .with_page_size(SCAN_PAGE);
    s.set_request_timeout(Some(DDL_TIMEOUT));
    let mut rows = session
        .query_iter(s, ())
        .await
        .with_context(|| format!("scan of {table} failed"))?
        .rows_stream::<(String, Option<i64>, Option<i64>)>()
        .with_context(|| format!("scan of {table}: unexpected columns"))?;
    while let Some((key, customer, amount)) = rows
        .try_next()
        .await
        .with_context(|| format!("scan of {table} failed mid-way"))?
    {
        match (parse_order_key(&key), customer, amount) {
            (Some(order_id), Some(c), Some(a)) => sink.record(Record {
                order_id,
                customer_id: c as u64,
                amount_cents: a as u64,
            }),
            _ => sink.foreign(&key),
        }
    }
    Ok(())
}

/// Microseconds since the epoch: the write timestamp of one logical operation,
/// reused by its retries.
fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn outcome_of(side: SideOutcome) -> Outcome {
    match side {
        SideOutcome::Ok | SideOutcome::Async => Outcome::Ok,
        SideOutcome::Fail | SideOutcome::Skipped => Outcome::Fail,
        SideOutcome::Unknown => Outcome::Unknown,
    }
}

fn failed(e: &ExecutionError) -> (SideOutcome, Option<String>, Option<String>) {
    let (side, class) = classify(e);
    (side, Some(class), Some(e.to_string()))
}

/// Whether an LWT result says it applied (`[applied]` is the first column).
pub(crate) fn applied(result: scylla::response::query_result::QueryResult) -> anyhow::Result<bool> {
    let rows = result.into_rows_result()?;
    let row = rows.first_row::<scylla::value::Row>()?;
    Ok(matches!(
        row.columns.first(),
        Some(Some(scylla::value::CqlValue::Boolean(true)))
    ))
}

/// INSERT into orders, then into orders_by_customer (another partition, another
/// session); what happens when the second fails is the application's policy.
struct NaiveClient {
    primary: Arc<Session>,
    secondary: Arc<Session>,
    insert_order: PreparedStatement,
    insert_secondary: PreparedStatement,
    pattern: Pattern,
}

impl NaiveClient {
    async fn write_primary(
        &self,
        order: &Order,
        ts: i64,
    ) -> (SideOutcome, Option<String>, Option<String>) {
        let (key, c, a) = (
            order.key(),
            order.customer_id as i64,
            order.amount_cents as i64,
        );
        let result = if self.pattern.lwt_insert {
            self.primary
                .execute_unpaged(&self.insert_order, (&key, c, a, &order.payload))
                .await
        } else {
            self.primary
                .execute_unpaged(&self.insert_order, (&key, c, a, &order.payload, ts))
                .await
        };
        match result {
            // With IF NOT EXISTS, "not applied" means the order is already there
            // (a duplicate suppressed): the order exists either way.
            Ok(_) => (SideOutcome::Ok, None, None),
            Err(e) => failed(&e),
        }
    }
}

#[async_trait]
impl PatternClient for NaiveClient {
    async fn write(&self, order: &Order) -> OpReport {
        let ts = now_micros();
        let (primary, error, detail) = self.write_primary(order, ts).await;
        if primary != SideOutcome::Ok {
            return OpReport {
                outcome: outcome_of(primary),
                error,
                primary,
                secondary: SideOutcome::Skipped,
                retries: 0,
                detail,
            };
        }
        let mut retries = 0;
        loop {
            let values = (
                order.customer_id as i64,
                order.key(),
                order.amount_cents as i64,
                ts,
            );
            let (secondary, error, detail) = match self
                .secondary
                .execute_unpaged(&self.insert_secondary, values)
                .await
            {
                Ok(_) => return OpReport::ok(primary, SideOutcome::Ok).with_retries(retries),
                Err(e) => failed(&e),
            };
            let policy = self.pattern.on_secondary_failure;
            if policy == OnSecondaryFailure::Retry && retries < self.pattern.retries {
                retries += 1;
                tokio::time::sleep(backoff::delay(self.pattern.backoff, retries)).await;
                continue;
            }
            let outcome = match policy {
                // The error is logged and the caller hears "ok": the silent orphan.
                OnSecondaryFailure::LogAndContinue => Outcome::Ok,
                _ => outcome_of(secondary),
            };
            return OpReport {
                outcome,
                error,
                primary,
                secondary,
                retries,
                detail,
            };
        }
    }
}

/// One LOGGED BATCH of two inserts (orders + audit/by-customer/outbox), retried on
/// `fail`/`unknown` with the same client timestamp, so a replay is the same write.
struct BatchClient {
    batch: Batch,
    primary: Arc<Session>,
    pattern: Pattern,
    /// The second row is the outbox entry: the secondary side is written later.
    outbox: bool,
}

impl BatchClient {
    async fn send(&self, order: &Order, ts: i64) -> Result<(), ExecutionError> {
        let mut batch = self.batch.clone();
        batch.set_timestamp(Some(ts));
        let (key, c, a) = (
            order.key(),
            order.customer_id as i64,
            order.amount_cents as i64,
        );
        let first = (&key, c, a, &order.payload);
        if self.outbox {
            self.primary.batch(&batch, (first, (&key, c, a))).await?;
        } else {
            match self.pattern.partitioning {
                Partitioning::Same => {
                    let audit_id = format!("a-{key}");
                    self.primary
                        .batch(&batch, (first, (&key, &audit_id, c, a)))
                        .await?;
                }
                Partitioning::Cross => {
                    self.primary.batch(&batch, (first, (c, &key, a))).await?;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl PatternClient for BatchClient {
    async fn write(&self, order: &Order) -> OpReport {
        let ts = now_micros();
        let secondary_ok = if self.outbox {
            SideOutcome::Async
        } else {
            SideOutcome::Ok
        };
        let mut retries = 0;
        let mut ambiguous = false;
        loop {
            let (side, error, detail) = match self.send(order, ts).await {
                Ok(()) => return OpReport::ok(SideOutcome::Ok, secondary_ok).with_retries(retries),
                Err(e) => failed(&e),
            };
            ambiguous |= side == SideOutcome::Unknown;
            if retries < self.pattern.retries {
                retries += 1;
                tokio::time::sleep(backoff::delay(self.pattern.backoff, retries)).await;
                continue;
            }
            // An earlier attempt may have applied even if the last one certainly did not.
            let side = if ambiguous {
                SideOutcome::Unknown
            } else {
                side
            };
            let secondary = if self.outbox && side != SideOutcome::Fail {
                SideOutcome::Async
            } else {
                side
            };
            return OpReport {
                outcome: outcome_of(side),
                error,
                primary: side,
                secondary,
                retries,
                detail,
            };
        }
    }
}

/// Benchmark only: the same INSERTs as `naive`, with no error policy at all.
struct BareClient {
    primary: Arc<Session>,
    secondary: Arc<Session>,
    insert_order: PreparedStatement,
    insert_secondary: PreparedStatement,
    writes: u8,
}

#[async_trait]
impl PatternClient for BareClient {
    async fn write(&self, order: &Order) -> OpReport {
        let (key, c, a) = (
            order.key(),
            order.customer_id as i64,
            order.amount_cents as i64,
        );
        let mut ok = self
            .primary
            .execute_unpaged(&self.insert_order, (&key, c, a, &order.payload))
            .await
            .is_ok();
        if ok && self.writes > 1 {
            ok = self
                .secondary
                .execute_unpaged(&self.insert_secondary, (c, &key, a))
                .await
                .is_ok();
        }
        OpReport::bare(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scylla::errors::{ConnectionPoolError, WriteType};

    #[test]
    fn errors_are_fail_when_nothing_was_sent_and_unknown_when_it_may_have_applied() {
        let pool = ExecutionError::ConnectionPoolError(ConnectionPoolError::Initializing);
        assert_eq!(classify(&pool).0, SideOutcome::Fail);
        let timeout = ExecutionError::RequestTimeout(Duration::from_secs(1));
        assert_eq!(classify(&timeout), (SideOutcome::Unknown, "timeout".into()));
        let db = |e: DbError| {
            classify(&ExecutionError::LastAttemptError(
                RequestAttemptError::DbError(e, String::new()),
            ))
        };
        assert_eq!(
            db(DbError::WriteTimeout {
                consistency: Consistency::Quorum,
                received: 0,
                required: 1,
                write_type: WriteType::Cas,
            }),
            (SideOutcome::Unknown, "WriteTimeout-Cas".into())
        );
        let unavailable = DbError::Unavailable {
            consistency: Consistency::Quorum,
            required: 2,
            alive: 1,
        };
        assert_eq!(db(unavailable), (SideOutcome::Fail, "Unavailable".into()));
        assert_eq!(
            db(DbError::Overloaded),
            (SideOutcome::Fail, "Overloaded".into())
        );
        assert_eq!(db(DbError::Invalid), (SideOutcome::Fail, "Invalid".into()));
    }

    #[test]
    fn the_checker_reads_the_secondary_table_of_the_pattern() {
        let t = Tables::of("ks");
        let mut p = Pattern::new(PatternKind::LoggedBatch);
        assert_eq!(t.secondary(&p), "ks.order_audit");
        p.partitioning = Partitioning::Cross;
        assert_eq!(t.secondary(&p), "ks.orders_by_customer");
        assert_eq!(
            t.secondary(&Pattern::new(PatternKind::Naive)),
            "ks.orders_by_customer"
        );
        assert_eq!(t.secondary(&Pattern::new(PatternKind::Outbox)), "ks.events");
    }
}
