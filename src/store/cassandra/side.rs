//! A Cassandra table as a side. The primary side is `orders` ((order_id)); the
//! secondary side is the table the pattern writes second:
//! - `orders_by_customer` ((customer_id), order_id) for `naive` and the
//!   cross-partition logged batch: another partition key than the order's;
//! - `order_audit` ((order_id), audit_id) for the same-partition logged batch;
//! - `events` ((order_id), event_id) for what a relay publishes: a fresh
//!   `event_id` per publication (non-idempotent consumer) lets a replay duplicate.
//!
//! With `[app]` a side is the service's table, read and planted through its
//! [`Layout`] (its keyspace, table and column names, this run's id prefix).

use anyhow::Context;
use async_trait::async_trait;
use futures::TryStreamExt;
use scylla::client::execution_profile::ExecutionProfileHandle;
use scylla::client::session::Session;
use scylla::statement::Statement;
use scylla::statement::prepared::PreparedStatement;
use std::sync::Arc;

use super::{DDL_TIMEOUT, Tables, classify, consistency};
use crate::fault::cluster::NodeId;
use crate::order::{Order, order_key, parse_order_key};
use crate::pattern::outcome::Attempt;
use crate::pattern::{KeyPolicy, Partitioning, Pattern, PatternKind};
use crate::store::layout::{Id, Layout, number, service_writes};
use crate::store::{ReadOptions, ReadOutcome, Record, ScanSink, SideStore};
use scylla::value::{CqlValue, Row};

const SCAN_PAGE: i32 = 1000;

/// Which table a side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Orders,
    ByCustomer,
    Audit,
    Events,
}

impl Table {
    /// The secondary table of a pattern.
    pub(crate) fn secondary(pattern: &Pattern) -> Self {
        match (pattern.kind, pattern.partitioning) {
            (PatternKind::LoggedBatch, Partitioning::Same) => Table::Audit,
            (PatternKind::Outbox | PatternKind::Streams, _) => Table::Events,
            _ => Table::ByCustomer,
        }
    }

    pub(crate) fn name(self, t: &Tables) -> String {
        match self {
            Table::Orders => t.orders.clone(),
            Table::ByCustomer => t.by_customer.clone(),
            Table::Audit => t.audit.clone(),
            Table::Events => t.events.clone(),
        }
    }
}

pub(crate) struct CassandraSide {
    pub(crate) session: Arc<Session>,
    pub(crate) table: Table,
    pub(crate) name: String,
    /// The application's write of this side's record.
    pub(crate) insert: PreparedStatement,
    /// `INSERT ... IF NOT EXISTS` (lwt_insert): no client timestamp.
    pub(crate) lwt: bool,
    /// `[app]`: the service's layout of this table (`insert` plants into it).
    pub(crate) app: Option<Arc<Layout>>,
    /// The checker's scan reads at this level instead of the connection's (ALL on
    /// the cluster: what every replica holds, merged).
    pub(crate) scan_consistency: Option<scylla::statement::Consistency>,
    /// A reader's point read, prepared on first use (runs without readers
    /// never prepare it).
    pub(crate) read: tokio::sync::OnceCell<PreparedStatement>,
    /// The cluster: how a reader sends its reads to a chosen node.
    pub(crate) read_coordinators: Vec<(NodeId, ExecutionProfileHandle)>,
}

impl CassandraSide {
    pub(crate) async fn new(
        session: Arc<Session>,
        table: Table,
        tables: &Tables,
        lwt: bool,
    ) -> anyhow::Result<Self> {
        let name = table.name(tables);
        let cql = match table {
            // A stable client timestamp per operation makes a retry merge into the
            // same cells instead of overwriting later writes (e.g. the relay's marks).
            Table::Orders if lwt => format!(
                "INSERT INTO {name} (order_id, customer_id, amount_cents, payload) VALUES (?, ?, ?, ?) IF NOT EXISTS"
            ),
            Table::Orders => format!(
                "INSERT INTO {name} (order_id, customer_id, amount_cents, payload) VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            Table::ByCustomer => format!(
                "INSERT INTO {name} (customer_id, order_id, amount_cents) VALUES (?, ?, ?) USING TIMESTAMP ?"
            ),
            Table::Audit | Table::Events => {
                let id = if table == Table::Audit {
                    "audit_id"
                } else {
                    "event_id"
                };
                format!(
                    "INSERT INTO {name} (order_id, {id}, customer_id, amount_cents) VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
                )
            }
        };
        let insert = session
            .prepare(cql.clone())
            .await
            .with_context(|| format!("cannot prepare `{cql}`"))?;
        Ok(Self {
            session,
            table,
            name,
            insert,
            lwt: lwt && table == Table::Orders,
            app: None,
            scan_consistency: None,
            read: tokio::sync::OnceCell::new(),
            read_coordinators: Vec::new(),
        })
    }

    /// `[app]`: the service's table; `insert` writes the layout's columns (key,
    /// order id when another column, the mapped fields as bigint).
    pub(crate) async fn app(session: Arc<Session>, layout: Arc<Layout>) -> anyhow::Result<Self> {
        let name = layout.describe();
        let columns = app_columns(&layout);
        let cql = format!(
            "INSERT INTO {name} ({}) VALUES ({})",
            columns.join(", "),
            vec!["?"; columns.len()].join(", ")
        );
        let insert = session.prepare(cql.clone()).await.with_context(|| {
            format!("cannot prepare `{cql}`: does the service's table {name} have these columns?")
        })?;
        Ok(Self {
            session,
            table: Table::Orders,
            name,
            insert,
            lwt: false,
            app: Some(layout),
            scan_consistency: None,
            read: tokio::sync::OnceCell::new(),
            read_coordinators: Vec::new(),
        })
    }

    /// The read of one order's rows by the table's full partition key.
    async fn read_statement(&self) -> Result<&PreparedStatement, scylla::errors::ExecutionError> {
        let name = &self.name;
        let cql = match self.table {
            Table::ByCustomer => {
                format!("SELECT order_id FROM {name} WHERE customer_id = ? AND order_id = ?")
            }
            // Orders: one row; audit and events: every row of the order's partition.
            _ => format!("SELECT order_id FROM {name} WHERE order_id = ? LIMIT 1000"),
        };
        self.read
            .get_or_try_init(|| async {
                self.session
                    .prepare(cql)
                    .await
                    .map_err(scylla::errors::ExecutionError::PrepareError)
            })
            .await
    }
}

/// The columns a planted row fills, in the prepared insert's order.
fn app_columns(layout: &Layout) -> Vec<String> {
    let mut columns = vec![layout.key.clone()];
    if !layout.keyed_by_order() {
        columns.push(layout.order_id.clone());
    }
    columns.extend(layout.customer_id.iter().cloned());
    columns.extend(layout.amount_cents.iter().cloned());
    columns
}

fn attempt<T>(result: Result<T, scylla::errors::ExecutionError>) -> Attempt {
    match result {
        // With IF NOT EXISTS, "not applied" means the order is already there (a
        // duplicate suppressed): the order exists either way.
        Ok(_) => Attempt::Applied,
        Err(e) => classify(&e),
    }
}

#[async_trait]
impl SideStore for CassandraSide {
    fn describe(&self) -> String {
        format!("cassandra table {}", self.name)
    }

    async fn write_order(&self, order: &Order, timestamp_us: i64) -> Attempt {
        if self.app.is_some() {
            return service_writes();
        }
        let (key, c, a) = (
            order.key(),
            order.customer_id as i64,
            order.amount_cents as i64,
        );
        let s = &self.session;
        attempt(if self.lwt {
            s.execute_unpaged(&self.insert, (&key, c, a, &order.payload))
                .await
        } else {
            s.execute_unpaged(&self.insert, (&key, c, a, &order.payload, timestamp_us))
                .await
        })
    }

    async fn write_event(&self, record: &Record, key: KeyPolicy, timestamp_us: i64) -> Attempt {
        if self.app.is_some() {
            return service_writes();
        }
        let (order, c, a) = (
            order_key(record.order_id),
            record.customer_id as i64,
            record.amount_cents as i64,
        );
        let s = &self.session;
        attempt(match self.table {
            Table::ByCustomer => {
                s.execute_unpaged(&self.insert, (c, &order, a, timestamp_us))
                    .await
            }
            Table::Audit | Table::Events | Table::Orders => {
                let prefix = if self.table == Table::Audit { "a" } else { "e" };
                let id = match key {
                    KeyPolicy::Stable => format!("{prefix}-{order}"),
                    KeyPolicy::Fresh => {
                        format!("{prefix}-{order}-{:016x}", rand::random::<u64>())
                    }
                };
                s.execute_unpaged(&self.insert, (&order, &id, c, a, timestamp_us))
                    .await
            }
        })
    }

    async fn read(&self, record: &Record, how: &ReadOptions) -> ReadOutcome {
        let prepared = match self.read_statement().await {
            Ok(p) => p,
            Err(e) => return ReadOutcome::failed(classify(&e)),
        };
        let mut statement = prepared.clone();
        if let Some(level) = &how.consistency.consistency {
            statement.set_consistency(consistency(level));
        }
        if let Some(node) = how.consistency.coordinator {
            let Some((_, profile)) = self.read_coordinators.iter().find(|(n, _)| *n == node) else {
                // Validation admits a coordinator only on the cluster, whose sides
                // all have these profiles: never sent.
                return ReadOutcome::Fail(crate::pattern::outcome::Failure::new(
                    "no-coordinator",
                    format!("{} has no connection to {node}", self.name),
                ));
            };
            statement.set_execution_profile_handle(Some(profile.clone()));
        }
        let key = order_key(record.order_id);
        let result = match self.table {
            Table::ByCustomer => {
                self.session
                    .execute_unpaged(&statement, (record.customer_id as i64, &key))
                    .await
            }
            _ => self.session.execute_unpaged(&statement, (&key,)).await,
        };
        match result {
            Ok(r) => match r.into_rows_result() {
                Ok(rows) => ReadOutcome::Ok(rows.rows_num() as u32),
                // Served, but the answer could not be read.
                Err(e) => ReadOutcome::Unknown(crate::pattern::outcome::Failure::new(
                    "response",
                    e.to_string(),
                )),
            },
            Err(e) => ReadOutcome::failed(classify(&e)),
        }
    }

    async fn scan(&self, sink: &mut dyn ScanSink) -> anyhow::Result<()> {
        if let Some(layout) = &self.app {
            return scan_app(&self.session, layout, sink).await;
        }
        let level = self.scan_consistency;
        scan_table(&self.session, &self.name, sink, |s| {
            if let Some(level) = level {
                s.set_consistency(level);
            }
        })
        .await
    }

    async fn plant(&self, record: Record, copies: u32) -> anyhow::Result<()> {
        if let Some(layout) = &self.app {
            for copy in 0..copies.max(1) {
                let mut values = vec![CqlValue::Text(layout.plant_key(record.order_id, copy))];
                if !layout.keyed_by_order() {
                    values.push(CqlValue::Text(layout.stored_id(record.order_id)));
                }
                if layout.customer_id.is_some() {
                    values.push(CqlValue::BigInt(record.customer_id as i64));
                }
                if layout.amount_cents.is_some() {
                    values.push(CqlValue::BigInt(record.amount_cents as i64));
                }
                self.session
                    .execute_unpaged(&self.insert, values)
                    .await
                    .with_context(|| format!("planting into {}", self.name))?;
            }
            return Ok(());
        }
        let key = order_key(record.order_id);
        let (c, a) = (record.customer_id as i64, record.amount_cents as i64);
        let table = &self.name;
        for copy in 0..copies.max(1) {
            // A second copy needs a second key: the audit and events tables have a
            // clustering id for that; the others overwrite (one row per order).
            let extra = format!("{key}-planted-{copy}");
            let s = &self.session;
            match self.table {
                Table::Orders => {
                    let cql = format!(
                        "INSERT INTO {table} (order_id, customer_id, amount_cents) VALUES (?, ?, ?)"
                    );
                    s.query_unpaged(cql, (&key, c, a)).await?;
                }
                Table::ByCustomer => {
                    let cql = format!(
                        "INSERT INTO {table} (customer_id, order_id, amount_cents) VALUES (?, ?, ?)"
                    );
                    s.query_unpaged(cql, (c, &key, a)).await?;
                }
                Table::Audit | Table::Events => {
                    let id = if self.table == Table::Audit {
                        "audit_id"
                    } else {
                        "event_id"
                    };
                    let cql = format!(
                        "INSERT INTO {table} (order_id, {id}, customer_id, amount_cents) VALUES (?, ?, ?, ?)"
                    );
                    s.query_unpaged(cql, (&key, &extra, c, a)).await?;
                }
            }
        }
        Ok(())
    }

    async fn plant_foreign(&self, key: &str) -> anyhow::Result<()> {
        let table = &self.name;
        if let Some(layout) = &self.app {
            // This run's prefix on an id this tool never makes: a stray.
            let id = format!("{}{key}", layout.prefix);
            let (cql, values) = if layout.keyed_by_order() {
                (
                    format!("INSERT INTO {table} ({}) VALUES (?)", layout.key),
                    vec![id],
                )
            } else {
                (
                    format!(
                        "INSERT INTO {table} ({}, {}) VALUES (?, ?)",
                        layout.key, layout.order_id
                    ),
                    vec![id.clone(), id],
                )
            };
            self.session
                .query_unpaged(cql, values)
                .await
                .context("planting a foreign record")?;
            return Ok(());
        }
        let cql = match self.table {
            Table::Orders => format!("INSERT INTO {table} (order_id) VALUES (?)"),
            Table::ByCustomer => {
                format!("INSERT INTO {table} (customer_id, order_id) VALUES (0, ?)")
            }
            Table::Audit => {
                format!("INSERT INTO {table} (order_id, audit_id) VALUES (?, 'foreign')")
            }
            Table::Events => {
                format!("INSERT INTO {table} (order_id, event_id) VALUES (?, 'foreign')")
            }
        };
        self.session
            .query_unpaged(cql, (key,))
            .await
            .context("planting a foreign record")?;
        Ok(())
    }
}

/// Full token-range scan of one table, paged: one page in memory at a time.
/// `configure` adjusts the statement (consistency, a pinned node, a timeout).
pub(crate) async fn scan_table(
    session: &Session,
    table: &str,
    sink: &mut dyn ScanSink,
    configure: impl FnOnce(&mut Statement),
) -> anyhow::Result<()> {
    let mut s = Statement::new(format!(
        "SELECT order_id, customer_id, amount_cents FROM {table}"
    ))
    .with_page_size(SCAN_PAGE);
    s.set_request_timeout(Some(DDL_TIMEOUT));
    configure(&mut s);
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

/// `[app]`: a full scan of the service's table: this run's orders as records,
/// this run's prefix on anything else as a stray, other runs' rows skipped.
/// Numbers compare numerically whatever the column type (tinyint to bigint,
/// float, double, digits in text); other types read as a mismatch.
async fn scan_app(
    session: &Session,
    layout: &Layout,
    sink: &mut dyn ScanSink,
) -> anyhow::Result<()> {
    let table = layout.describe();
    let mut columns = vec![layout.order_id.clone()];
    columns.extend(layout.customer_id.iter().cloned());
    columns.extend(layout.amount_cents.iter().cloned());
    let mut s = Statement::new(format!("SELECT {} FROM {table}", columns.join(", ")))
        .with_page_size(SCAN_PAGE);
    s.set_request_timeout(Some(DDL_TIMEOUT));
    let mut rows = session
        .query_iter(s, ())
        .await
        .with_context(|| format!("scan of {table} failed"))?
        .rows_stream::<Row>()
        .with_context(|| format!("scan of {table}: unexpected columns"))?;
    while let Some(row) = rows
        .try_next()
        .await
        .with_context(|| format!("scan of {table} failed mid-way"))?
    {
        let mut cells = row.columns.into_iter();
        let id = match cells.next().flatten() {
            Some(CqlValue::Text(s)) | Some(CqlValue::Ascii(s)) => s,
            _ => continue,
        };
        let mut next = |mapped: bool| {
            if !mapped {
                return 0;
            }
            match cells.next().flatten() {
                Some(v) => cql_number(&v),
                None => u64::MAX,
            }
        };
        let customer_id = next(layout.customer_id.is_some());
        let amount_cents = next(layout.amount_cents.is_some());
        match layout.read_id(&id) {
            Id::Mine(order_id) => sink.record(Record {
                order_id,
                customer_id,
                amount_cents,
            }),
            Id::Stray => sink.foreign(&id),
            Id::Other => {}
        }
    }
    Ok(())
}

fn cql_number(v: &CqlValue) -> u64 {
    match v {
        CqlValue::BigInt(n) => *n as u64,
        CqlValue::Int(n) => *n as u64,
        CqlValue::SmallInt(n) => *n as u64,
        CqlValue::TinyInt(n) => *n as u64,
        CqlValue::Double(f) => number(&f.to_string()),
        CqlValue::Float(f) => number(&f.to_string()),
        CqlValue::Text(s) | CqlValue::Ascii(s) => number(s),
        _ => u64::MAX,
    }
}
