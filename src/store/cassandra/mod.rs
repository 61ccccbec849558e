//! Apache Cassandra through Toxiproxy, with the `scylla` driver: one node
//! (`server = "cassandra"`) or the local three-node cluster (`cassandra-cluster`,
//! see `cluster.rs` and docs/CLUSTER.md).
//!
//! Keyspace per run = the namespace (SimpleStrategy RF 1 on one node;
//! NetworkTopologyStrategy RF 3 on the cluster), dropped at the end.
//! Tables (all created idempotently):
//! `orders`, `orders_by_customer`, `order_audit`, `events` (the sides, see
//! `side.rs`) and `order_outbox` (the outbox row written in the order's batch,
//! claimed by the relay source in `relay.rs`); the logged batches are in
//! `writes.rs`.
//!
//! Each side has its own Session to its own proxy. The driver learns node addresses
//! from `system.local`/`system.peers`; [`ThroughProxy`] maps every one of them back
//! to the side's proxy so no connection bypasses it (on the cluster, each node to
//! the side's proxy in front of that node). The driver's own retries are off
//! (retrying is the application's decision) and every request has `op_timeout`.
//! Each connection has its consistency level (`[target.<side>] consistency`, else
//! `pattern.consistency`), serial consistency for LWTs, and on the cluster
//! optionally a coordinator it is pinned to.

mod capacity;
mod cluster;
mod errors;
mod relay;
mod session;
mod side;
mod writes;

pub(crate) use self::errors::classify;
pub use self::session::ThroughProxy;
use self::session::{Wiring, open_session};
pub(crate) use self::session::{consistency, serial_consistency};

pub use cluster::{CLUSTER_NODES, CLUSTER_SERVER, cluster_proxies, cluster_proxy};

use anyhow::Context;
use async_trait::async_trait;
use futures::FutureExt;
use scylla::client::execution_profile::ExecutionProfileHandle;
use scylla::client::session::Session;
use scylla::statement::{Consistency, Statement};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use self::relay::OutboxSource;
use self::side::{CassandraSide, Table};
use self::writes::{BareClient, BatchWrite};
use super::spec::{BenchSpec, Footprint, LocalServer, ReadSupport, ServerSpec, StoreSpec, Support};
use super::{Layout, ServerInfo, SideStore, Store, StoreContext};
use crate::fault::cluster::NodeId;
use crate::pattern::PatternKind;
use crate::pattern::atomic::AtomicWrite;
use crate::relay::RelaySource;
use crate::scenario::Side;
use crate::writer::Writer;

pub static SPEC: StoreSpec = StoreSpec {
    name: "cassandra",
    about: "Apache Cassandra through the scylla driver (one node, or the local three-node cluster)",
    servers: &[
        ServerSpec {
            name: "cassandra",
            proxy_prefix: "cassandra",
            local: Some(LocalServer {
                component: "cassandra",
                in_memory: false,
            }),
        },
        // Three nodes, replication factor 3, a proxy per node and side
        // (cassandra_cluster_<side>_n1..n3): faults between nodes, per-replica scans.
        ServerSpec {
            name: CLUSTER_SERVER,
            proxy_prefix: "cassandra_cluster",
            local: Some(LocalServer {
                component: "cassandra-cluster",
                in_memory: false,
            }),
        },
    ],
    holds_primary: true,
    holds_secondary: true,
    patterns: &[
        (
            PatternKind::Naive,
            Support::Yes {
                how: "INSERT into orders, then into orders_by_customer",
                options: &["consistency", "lwt_insert"],
            },
        ),
        (
            PatternKind::Transaction,
            Support::No(
                "Cassandra has no multi-partition transactions; use `logged-batch` (atomic within one partition) or `outbox`",
            ),
        ),
        (
            PatternKind::LoggedBatch,
            Support::Yes {
                how: "one LOGGED BATCH (same or cross partition)",
                options: &["partitioning", "consistency"],
            },
        ),
        (
            PatternKind::Outbox,
            Support::Yes {
                how: "outbox row in the order's partition + LWT-claiming relay",
                options: &["consistency", "relay.workers", "relay.claim_ttl"],
            },
        ),
        (
            PatternKind::Streams,
            Support::No(
                "Cassandra has no change feed this tool can consume; use `outbox` (outbox table + relay)",
            ),
        ),
    ],
    secondary_options: &["consistency"],
    secondary_appends: false,
    fault_kinds: &[],
    reads: Some(ReadSupport {
        how: "SELECT by the side's full partition key (orders_by_customer by customer and order)",
        consistency: &["one", "two", "quorum", "all", "local_quorum", "local_one"],
        not_through_index: &[],
        read_concern: &[],
        read_preference: &[],
        coordinator_servers: &[CLUSTER_SERVER],
    }),
    connection_options: &[
        "username",
        "password_env",
        "tls",
        "tls_ca_file",
        "tls_cert_file",
        "tls_key_file",
        "tls_server_name",
    ],
    footprint: |scenario, ns, _| Footprint {
        creates: std::iter::once(if scenario.target.primary.server == CLUSTER_SERVER {
            format!("keyspace {ns} (replication factor 3 on the three-node cluster)")
        } else {
            format!("keyspace {ns} (SimpleStrategy, replication_factor 1)")
        })
        .chain(Tables::NAMES.iter().map(|t| format!("table {ns}.{t}")))
        .collect(),
        drops: vec![format!("keyspace {ns} (with its tables)")],
    },
    connection_note: "Cassandra logs in with `username` and the password in the environment variable `password_env` (PasswordAuthenticator); TLS with a CA file, an optional client certificate and key, and the certificate's name.",
    bench: BenchSpec {
        server: "cassandra",
        checker_records: 20000,
    },
    connect: |ctx| {
        async move { Ok(Box::new(CassandraStore::connect(ctx).await?) as Box<dyn Store>) }.boxed()
    },
};

/// Schema changes and scans are slower than a write: their own timeout.
const DDL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct CassandraStore {
    ctx: StoreContext,
    sessions: BTreeMap<Side, Arc<Session>>,
    info: ServerInfo,
    /// On the cluster: where its nodes are, and the checker's per-replica reads.
    cluster: Option<cluster::ClusterLink>,
    replicas: Option<Arc<cluster::ClusterReplicas>>,
    /// What of the namespace existed before the run (never dropped).
    before: std::sync::Mutex<Before>,
    /// The server's write counters before the load, or why they cannot be read.
    capacity_before: std::sync::Mutex<Option<Result<Vec<capacity::Counters>, String>>>,
}

/// The keyspace and tables of the run that existed before it.
#[derive(Debug, Default)]
struct Before {
    keyspace: bool,
    tables: Vec<String>,
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
    /// Every table of a run, unqualified (what `prepare` creates).
    pub(crate) const NAMES: [&'static str; 5] = [
        "orders",
        "orders_by_customer",
        "order_audit",
        "order_outbox",
        "events",
    ];

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
}

impl CassandraStore {
    pub async fn connect(ctx: StoreContext) -> anyhow::Result<Self> {
        let op_timeout = ctx.scenario.workload.op_timeout;
        let cluster = if ctx.server == CLUSTER_SERVER {
            Some(cluster::ClusterLink::load(&ctx.stack_state)?)
        } else {
            None
        };
        let mut sessions = BTreeMap::new();
        for side in ctx.sides().collect::<Vec<_>>() {
            let settings = ctx.scenario.target.cql(side);
            let level = settings
                .consistency
                .as_deref()
                .unwrap_or(&ctx.scenario.pattern.consistency);
            let mut wiring = Wiring {
                level: consistency(level),
                serial: settings
                    .serial_consistency
                    .as_deref()
                    .map(serial_consistency),
                per_node: None,
                pinned: None,
            };
            if let Some(link) = &cluster {
                wiring.per_node = Some(link.translator(side)?);
                if let Some(node) = settings.coordinator {
                    wiring.pinned = Some(link.pinned(side, node)?);
                }
            }
            let connection = ctx.scenario.target.connection(side);
            let session =
                open_session(side, ctx.endpoint(side), connection, op_timeout, wiring).await?;
            sessions.insert(side, Arc::new(session));
        }
        let mut store = Self {
            ctx,
            sessions,
            info: ServerInfo::default(),
            cluster,
            replicas: None,
            before: Default::default(),
            capacity_before: Default::default(),
        };
        if let Some(link) = &store.cluster {
            let (via, session) = store.admin();
            let pattern = &store.ctx.scenario.pattern;
            let mut held = Vec::new();
            if store.ctx.serves(Side::Primary) {
                held.push((Side::Primary, Table::Orders));
            }
            if store.ctx.serves(Side::Secondary) {
                held.push((Side::Secondary, Table::secondary(pattern)));
            }
            store.replicas = Some(Arc::new(cluster::ClusterReplicas::new(
                session.clone(),
                via,
                link,
                &store.tables(),
                &held,
            )?));
        }
        Ok(store)
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

    /// The cluster: one profile per node for a reader of `side` that chooses its
    /// coordinator; empty elsewhere.
    fn reader_coordinators(
        &self,
        side: Side,
    ) -> anyhow::Result<Vec<(NodeId, ExecutionProfileHandle)>> {
        let Some(link) = &self.cluster else {
            return Ok(Vec::new());
        };
        let settings = self.ctx.scenario.target.cql(side);
        let level = settings
            .consistency
            .as_deref()
            .unwrap_or(&self.ctx.scenario.pattern.consistency);
        link.reader_profiles(
            side,
            consistency(level),
            self.ctx.scenario.workload.op_timeout,
        )
    }

    /// The capacity counters: the single server's, or each node's of the cluster
    /// (in the state file's order).
    async fn capacity_counters(&self) -> Result<Vec<capacity::Counters>, String> {
        let (side, session) = self.admin();
        let keyspace = &self.tables().keyspace;
        let read = async {
            let Some(link) = &self.cluster else {
                return Ok(vec![capacity::read(session, keyspace, None).await?]);
            };
            let mut nodes = Vec::new();
            for node in &link.state.nodes {
                let profile = link.replica_profile(side, node.id)?;
                nodes.push(
                    capacity::read(session, keyspace, Some(&profile))
                        .await
                        .with_context(|| format!("reading {}", node.id))?,
                );
            }
            Ok(nodes)
        };
        read.await.map_err(|e: anyhow::Error| format!("{e:#}"))
    }

    fn session(&self, side: Side) -> &Arc<Session> {
        self.sessions
            .get(&side)
            .or_else(|| self.sessions.values().next())
            .expect("a store serves at least one connection")
    }

    /// What this server cannot show, for the result.
    fn not_exercised(&self) -> Vec<String> {
        if self.cluster.is_some() {
            return vec![
                "one datacenter: LOCAL_* levels act as their global forms, EACH_QUORUM as QUORUM".into(),
                "replicas converge by hints, batchlog replay and read repair only: no anti-entropy repair (nodetool repair) runs during a run".into(),
                "a killed node keeps its disk (and the commit log in the page cache): data loss from a lost disk or machine is not exercised".into(),
            ];
        }
        vec![
            "a single node (RF 1): replica-side partial failures of a cross-partition batch (batchlog replay, WriteTimeout of type BATCH_LOG) cannot happen; faults sit between the client and the coordinator (server = \"cassandra-cluster\" exercises them)".into(),
            "Unavailable / Overloaded need several replicas or real overload (server = \"cassandra-cluster\" has several replicas)".into(),
        ]
    }

    /// The session of any connection this store serves (set-up, probes).
    fn admin(&self) -> (Side, &Arc<Session>) {
        let side = self.ctx.sides().next().unwrap_or(Side::Primary);
        (side, self.session(side))
    }

    /// DDL on the primary session. Every statement is idempotent (IF [NOT] EXISTS),
    /// so a failure is retried twice: schema changes of concurrent runs can make
    /// one attempt fail.
    async fn ddl(&self, cql: &str) -> anyhow::Result<()> {
        let mut s = Statement::new(cql);
        s.set_request_timeout(Some(DDL_TIMEOUT));
        let mut attempt = 0;
        loop {
            match self.admin().1.query_unpaged(s.clone(), ()).await {
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
        let (side, session) = self.admin();
        let endpoint = self.ctx.endpoint(side).to_string();
        let mut s = Statement::new("SELECT release_version FROM system.local");
        s.set_request_timeout(Some(Duration::from_secs(5)));
        let version = session
            .query_unpaged(s, ())
            .await
            .with_context(|| format!("Cassandra at {endpoint} ({side} side) does not answer"))?
            .into_rows_result()?
            .first_row::<(String,)>()?
            .0;
        self.info = ServerInfo {
            product: self.ctx.server.clone(),
            version,
            capabilities: BTreeMap::from([
                ("logged_batch".to_string(), true),
                ("lwt".to_string(), true),
                ("multi_partition_transactions".to_string(), false),
            ]),
            not_exercised: self.not_exercised(),
        };
        if self.cluster.is_some() {
            self.info
                .capabilities
                .insert("per_replica_scans".to_string(), true);
        } else if self.ctx.scenario.readers.is_some() {
            self.info.not_exercised.push(
                "read consistency levels: the keyspace has one replica (RF 1), so ONE, QUORUM and ALL all read the one copy".into(),
            );
        }
        Ok(())
    }

    fn server_info(&self) -> ServerInfo {
        self.info.clone()
    }

    async fn existing(&self) -> anyhow::Result<Vec<String>> {
        let ks = self.tables().keyspace;
        let (side, session) = self.admin();
        let endpoint = self.ctx.endpoint(side).to_string();
        let query = |cql: &'static str| {
            let mut s = Statement::new(cql);
            s.set_request_timeout(Some(Duration::from_secs(5)));
            s
        };
        let names =
            |r: scylla::response::query_result::QueryResult| -> anyhow::Result<Vec<String>> {
                Ok(r.into_rows_result()?
                    .rows::<(String,)>()?
                    .filter_map(Result::ok)
                    .map(|(n,)| n)
                    .collect())
            };
        let read = async {
            let keyspace = session
                .query_unpaged(
                    query(
                        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
                    ),
                    (ks.as_str(),),
                )
                .await?;
            let tables = session
                .query_unpaged(
                    query("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?"),
                    (ks.as_str(),),
                )
                .await?;
            anyhow::Ok((!names(keyspace)?.is_empty(), names(tables)?))
        };
        let (keyspace, tables) = read.await.with_context(|| {
            format!("Cassandra at {endpoint} ({side} side): cannot read system_schema to check the run's keyspace `{ks}`")
        })?;
        let ours: Vec<String> = tables
            .into_iter()
            .filter(|t| Tables::NAMES.contains(&t.as_str()))
            .collect();
        let mut found = Vec::new();
        if keyspace {
            found.push(format!("keyspace {ks}"));
        }
        found.extend(ours.iter().map(|t| format!("table {ks}.{t}")));
        *self.before.lock().expect("not poisoned") = Before {
            keyspace,
            tables: ours,
        };
        Ok(found)
    }

    async fn prepare(&self) -> anyhow::Result<()> {
        let t = self.tables();
        let (keyspace_before, tables_before) = {
            let b = self.before.lock().expect("not poisoned");
            (b.keyspace, b.tables.clone())
        };
        let replication = match &self.cluster {
            Some(link) => link.replication(),
            None => "{'class': 'SimpleStrategy', 'replication_factor': 1}".to_string(),
        };
        // What existed is left alone: a role may lack CREATE on a keyspace its
        // administrator made for it, and IF NOT EXISTS is checked after that.
        if !keyspace_before {
            self.ddl(&format!(
                "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {replication}",
                t.keyspace
            ))
            .await?;
        }
        // On the cluster a read at ONE must ask exactly one replica (the
        // per-replica scans): no speculative retry to another.
        let options = if self.cluster.is_some() {
            " WITH speculative_retry = 'NONE'"
        } else {
            ""
        };
        // In the order of `Tables::NAMES`.
        let tables = [
            format!(
                "CREATE TABLE IF NOT EXISTS {} (order_id text PRIMARY KEY, customer_id bigint, amount_cents bigint, payload text){options}",
                t.orders
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (customer_id bigint, order_id text, amount_cents bigint, PRIMARY KEY ((customer_id), order_id)){options}",
                t.by_customer
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (order_id text, audit_id text, customer_id bigint, amount_cents bigint, PRIMARY KEY ((order_id), audit_id)){options}",
                t.audit
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (order_id text PRIMARY KEY, customer_id bigint, amount_cents bigint, published boolean, processing boolean, claimed_at timestamp, claimed_by text){options}",
                t.outbox
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (order_id text, event_id text, customer_id bigint, amount_cents bigint, PRIMARY KEY ((order_id), event_id)){options}",
                t.events
            ),
        ];
        for (name, cql) in Tables::NAMES.iter().zip(&tables) {
            if !tables_before.iter().any(|b| b == name) {
                self.ddl(cql).await?;
            }
        }
        if let Some(link) = &self.cluster {
            let (side, session) = self.admin();
            link.wait_for_tables(
                session,
                side,
                &t.keyspace,
                &[
                    "orders",
                    "orders_by_customer",
                    "order_audit",
                    "order_outbox",
                    "events",
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn side(&self, side: Side) -> anyhow::Result<Arc<dyn SideStore>> {
        let pattern = &self.ctx.scenario.pattern;
        let table = match side {
            Side::Primary => Table::Orders,
            _ => Table::secondary(pattern),
        };
        let lwt = side == Side::Primary && pattern.lwt_insert;
        let mut s =
            CassandraSide::new(self.session(side).clone(), table, &self.tables(), lwt).await?;
        if self.cluster.is_some() {
            // The checker's scan is the eventual truth: every replica, merged.
            s.scan_consistency = Some(Consistency::All);
        }
        s.read_coordinators = self.reader_coordinators(side)?;
        Ok(Arc::new(s))
    }

    fn replicas(&self) -> Option<Arc<dyn crate::store::Replicas>> {
        self.replicas
            .clone()
            .map(|r| r as Arc<dyn crate::store::Replicas>)
    }

    async fn atomic_write(&self) -> anyhow::Result<Arc<dyn AtomicWrite>> {
        let pattern = &self.ctx.scenario.pattern;
        match pattern.kind {
            PatternKind::LoggedBatch | PatternKind::Outbox => Ok(Arc::new(
                BatchWrite::new(self.session(Side::Primary).clone(), &self.tables(), pattern)
                    .await?,
            )),
            other => anyhow::bail!("pattern `{other}` has no atomic write on cassandra"),
        }
    }

    async fn relay_source(&self) -> anyhow::Result<Arc<dyn RelaySource>> {
        if self.ctx.scenario.pattern.kind != PatternKind::Outbox {
            anyhow::bail!("only `outbox` has a relay on cassandra");
        }
        let source = OutboxSource::new(
            self.session(Side::Relay).clone(),
            &self.tables().outbox,
            &self.ctx.scenario.pattern,
            self.cluster.is_some().then_some(Consistency::All),
        )
        .await?;
        Ok(Arc::new(source))
    }

    async fn capacity_start(&self) {
        let read = self.capacity_counters().await;
        *self.capacity_before.lock().expect("not poisoned") = Some(read);
    }

    async fn capacity(&self, orders: u64) -> crate::result::CapacityResult {
        let before = self.capacity_before.lock().expect("not poisoned").clone();
        let after = self.capacity_counters().await;
        match (before, after) {
            (Some(Ok(b)), Ok(a)) => crate::result::CapacityResult {
                orders,
                figures: {
                    // Per node, then added up (one node's counters on a single server).
                    let mut sum = capacity::Counters::default();
                    for (before, after) in b.iter().zip(&a) {
                        sum.add(&after.since(before));
                    }
                    capacity::figures(&capacity::Counters::default(), &sum, orders)
                },
                notes: capacity::notes(self.cluster.is_some()),
            },
            (before, after) => {
                let why = match (before, after) {
                    (Some(Err(e)), _) | (_, Err(e)) => e,
                    _ => "not read before the load".into(),
                };
                crate::result::CapacityResult {
                    orders,
                    figures: capacity::not_reported(&self.ctx.server),
                    notes: vec![format!(
                        "cassandra: system_views.local_write_latency could not be read: {why}"
                    )],
                }
            }
        }
    }

    async fn bare_client(&self, writes: u8) -> Option<Arc<dyn Writer>> {
        let t = self.tables();
        let orders = format!(
            "INSERT INTO {} (order_id, customer_id, amount_cents, payload) VALUES (?, ?, ?, ?)",
            t.orders
        );
        let by_customer = format!(
            "INSERT INTO {} (customer_id, order_id, amount_cents) VALUES (?, ?, ?)",
            t.by_customer
        );
        let primary = self.sessions.get(&Side::Primary)?.clone();
        let secondary = self.sessions.get(&Side::Secondary)?.clone();
        Some(Arc::new(BareClient {
            insert_order: primary.prepare(orders).await.ok()?,
            insert_secondary: secondary.prepare(by_customer).await.ok()?,
            primary,
            secondary,
            writes,
        }))
    }

    async fn app_side(
        &self,
        side: Side,
        layout: Arc<Layout>,
    ) -> anyhow::Result<Arc<dyn SideStore>> {
        let mut s = CassandraSide::app(self.session(side).clone(), layout).await?;
        s.read_coordinators = self.reader_coordinators(side)?;
        Ok(Arc::new(s))
    }

    async fn drop_location(&self, _side: Side, layout: &Layout) -> anyhow::Result<()> {
        self.ddl(&format!("DROP TABLE IF EXISTS {}", layout.describe()))
            .await
    }

    async fn drop_namespace(&self) -> anyhow::Result<()> {
        let ks = self.tables().keyspace;
        let (keyspace_before, tables_before) = {
            let b = self.before.lock().expect("not poisoned");
            (b.keyspace, b.tables.clone())
        };
        if !keyspace_before {
            return self.ddl(&format!("DROP KEYSPACE IF EXISTS {ks}")).await;
        }
        // A keyspace someone else made (reuse): only the tables this run made.
        for t in Tables::NAMES {
            if !tables_before.iter().any(|b| b == t) {
                self.ddl(&format!("DROP TABLE IF EXISTS {ks}.{t}")).await?;
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{Partitioning, Pattern};

    #[test]
    fn the_secondary_side_is_the_table_the_pattern_writes_second() {
        let mut p = Pattern::new(PatternKind::LoggedBatch);
        assert_eq!(Table::secondary(&p), Table::Audit);
        p.partitioning = Partitioning::Cross;
        assert_eq!(Table::secondary(&p), Table::ByCustomer);
        assert_eq!(
            Table::secondary(&Pattern::new(PatternKind::Naive)),
            Table::ByCustomer
        );
        assert_eq!(
            Table::secondary(&Pattern::new(PatternKind::Outbox)),
            Table::Events
        );
    }
}
