//! Cassandra's atomic writes (what the pattern engine retries): one LOGGED BATCH
//! of the order and its second row — the audit row in the order's partition
//! (`logged-batch`, same), the by-customer row in another partition (`logged-batch`,
//! cross: the anti-pattern), or the outbox row in the order's partition
//! (`outbox`). Every attempt carries the operation's client timestamp, so a replay
//! is the same write. And the bench's bare client.

use anyhow::Context;
use async_trait::async_trait;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use std::sync::Arc;

use super::{Tables, classify};
use crate::history::OpReport;
use crate::order::Order;
use crate::pattern::atomic::{AtomicWrite, AttemptContext, Covers};
use crate::pattern::outcome::Attempt;
use crate::pattern::{Partitioning, Pattern, PatternKind};
use crate::writer::Writer;

/// The second row of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Second {
    Audit,
    ByCustomer,
    Outbox,
}

pub(crate) struct BatchWrite {
    session: Arc<Session>,
    batch: Batch,
    second: Second,
}

impl BatchWrite {
    pub(crate) async fn new(
        session: Arc<Session>,
        t: &Tables,
        pattern: &Pattern,
    ) -> anyhow::Result<Self> {
        let second = match (pattern.kind, pattern.partitioning) {
            (PatternKind::Outbox, _) => Second::Outbox,
            (_, Partitioning::Same) => Second::Audit,
            (_, Partitioning::Cross) => Second::ByCustomer,
        };
        let first = format!(
            "INSERT INTO {} (order_id, customer_id, amount_cents, payload) VALUES (?, ?, ?, ?)",
            t.orders
        );
        let second_cql = match second {
            Second::Audit => format!(
                "INSERT INTO {} (order_id, audit_id, customer_id, amount_cents) VALUES (?, ?, ?, ?)",
                t.audit
            ),
            Second::ByCustomer => format!(
                "INSERT INTO {} (customer_id, order_id, amount_cents) VALUES (?, ?, ?)",
                t.by_customer
            ),
            Second::Outbox => format!(
                "INSERT INTO {} (order_id, customer_id, amount_cents, published, processing) VALUES (?, ?, ?, false, false)",
                t.outbox
            ),
        };
        let mut batch = Batch::new(BatchType::Logged);
        for cql in [first, second_cql] {
            let prepared = session
                .prepare(cql.clone())
                .await
                .with_context(|| format!("cannot prepare `{cql}`"))?;
            batch.append_statement(prepared);
        }
        Ok(Self {
            session,
            batch,
            second,
        })
    }
}

#[async_trait]
impl AtomicWrite for BatchWrite {
    fn covers(&self) -> Covers {
        if self.second == Second::Outbox {
            Covers::PrimaryThenRelay
        } else {
            Covers::Both
        }
    }

    async fn attempt(&self, order: &Order, ctx: &mut AttemptContext) -> Attempt {
        let mut batch = self.batch.clone();
        batch.set_timestamp(Some(ctx.timestamp_us));
        let (key, c, a) = (
            order.key(),
            order.customer_id as i64,
            order.amount_cents as i64,
        );
        let first = (&key, c, a, &order.payload);
        let s = &self.session;
        let result = match self.second {
            Second::Outbox => s.batch(&batch, (first, (&key, c, a))).await,
            Second::Audit => {
                let audit_id = format!("a-{key}");
                s.batch(&batch, (first, (&key, &audit_id, c, a))).await
            }
            Second::ByCustomer => s.batch(&batch, (first, (c, &key, a))).await,
        };
        match result {
            Ok(_) => Attempt::Applied,
            Err(e) => classify(&e),
        }
    }
}

/// Benchmark only: the same INSERTs as `naive`, with no error policy at all.
pub(crate) struct BareClient {
    pub(crate) primary: Arc<Session>,
    pub(crate) secondary: Arc<Session>,
    pub(crate) insert_order: PreparedStatement,
    pub(crate) insert_secondary: PreparedStatement,
    pub(crate) writes: u8,
}

#[async_trait]
impl Writer for BareClient {
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
