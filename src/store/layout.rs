//! A side laid out as a service lays it out (`[app]`): its location, the
//! attribute that holds the order id, the compared fields under the service's
//! names, and the run's order-id prefix. The stores' sides read and plant records
//! through it; dualwrite's own patterns keep their fixed layouts (`side.rs` of
//! each store).
//!
//! Order ids carry the run's prefix (`<namespace>-o000000000042`), so a table the
//! service shares with other runs is read for this run's records only: a record
//! with this run's prefix that no operation wrote is a stray, a record with any
//! other id is someone else's and is skipped.

use crate::order::{order_key, parse_order_key};
use crate::pattern::outcome::{Attempt, Failure};
use crate::scenario::Side;
use crate::scenario::app::{Location, Vars, fill};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// MongoDB database / Cassandra keyspace; none on DynamoDB.
    pub database: Option<String>,
    /// Table or collection.
    pub table: String,
    /// The record's own key attribute.
    pub key: String,
    /// The attribute holding the order id (the key itself on an orders table).
    pub order_id: String,
    pub customer_id: Option<String>,
    pub amount_cents: Option<String>,
    /// This run's order-id prefix, separator included (`dw_..._1a2b-`).
    pub prefix: String,
    pub create: bool,
    pub drop: bool,
}

/// What a stored order id says about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    /// This run's order with this operation id.
    Mine(u64),
    /// This run's prefix, but not an id this tool makes: a stray.
    Stray,
    /// Another prefix: someone else's record, skipped.
    Other,
}

/// The run's order-id prefix: its namespace, unique per run.
pub fn run_prefix(namespace: &str) -> String {
    format!("{namespace}-")
}

impl Layout {
    /// The layout of one side for a run: names filled in with the namespace.
    pub fn of(location: &Location, side: Side, namespace: &str) -> anyhow::Result<Self> {
        let vars = Vars {
            namespace: namespace.to_string(),
            ..Vars::default()
        };
        let name = |t: &str| {
            fill(t, &vars).map_err(|e| anyhow::anyhow!("[app.{side}] location name: {e}"))
        };
        Ok(Self {
            database: location.database.as_deref().map(name).transpose()?,
            table: name(&location.table)?,
            key: location.key.clone(),
            order_id: location.order_id.clone(),
            customer_id: location.customer_id.clone(),
            amount_cents: location.amount_cents.clone(),
            prefix: run_prefix(namespace),
            create: location.create,
            drop: location.drop,
        })
    }

    /// The id the service was sent for operation `id`.
    pub fn stored_id(&self, id: u64) -> String {
        format!("{}{}", self.prefix, order_key(id))
    }

    pub fn read_id(&self, stored: &str) -> Id {
        match stored.strip_prefix(&self.prefix) {
            None => Id::Other,
            Some(rest) => parse_order_key(rest).map_or(Id::Stray, Id::Mine),
        }
    }

    /// Whether the order id is the record's key (one record per order: a second
    /// write overwrites) rather than an attribute (an event table, where a second
    /// write is a second record).
    pub fn keyed_by_order(&self) -> bool {
        self.key == self.order_id
    }

    /// The key of a planted record: the order id, or a fresh event key.
    pub fn plant_key(&self, id: u64, copy: u32) -> String {
        if self.keyed_by_order() {
            self.stored_id(id)
        } else {
            format!(
                "{}-planted-{copy}-{:08x}",
                self.stored_id(id),
                rand::random::<u32>()
            )
        }
    }

    /// `table`, or `database.table`, for messages.
    pub fn describe(&self) -> String {
        match &self.database {
            Some(db) => format!("{db}.{}", self.table),
            None => self.table.clone(),
        }
    }
}

/// `[app]`: dualwrite never writes the service's tables; the service does.
pub fn service_writes() -> Attempt {
    Attempt::NotApplied(Failure::new(
        "not-dualwrites",
        "with [app] the service writes this side, not dualwrite",
    ))
}

/// A number as a service may store it — an integer, a float, or digits in a
/// string — compared numerically; anything else reads as `u64::MAX` (a mismatch
/// with any real value).
pub fn number(text: &str) -> u64 {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return n;
    }
    if let Ok(n) = t.parse::<i64>() {
        return n as u64;
    }
    match t.parse::<f64>() {
        Ok(f) if f.is_finite() && f.fract() == 0.0 => f as i64 as u64,
        _ => u64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(key: &str) -> Layout {
        Layout {
            database: None,
            table: "t".into(),
            key: key.into(),
            order_id: "orderId".into(),
            customer_id: None,
            amount_cents: None,
            prefix: run_prefix("dw_1_ab12"),
            create: false,
            drop: false,
        }
    }

    #[test]
    fn only_this_runs_prefix_is_read_and_garbage_under_it_is_a_stray() {
        let l = layout("orderId");
        assert_eq!(l.stored_id(42), "dw_1_ab12-o000000000042");
        assert_eq!(l.read_id(&l.stored_id(42)), Id::Mine(42));
        assert_eq!(l.read_id("dw_1_ab12-nonsense"), Id::Stray);
        assert_eq!(l.read_id("dw_1_ab13-o000000000042"), Id::Other);
        assert_eq!(l.read_id("o000000000042"), Id::Other);
        assert!(l.keyed_by_order());
        assert_eq!(l.plant_key(7, 0), l.stored_id(7));
        let events = layout("eventId");
        assert!(!events.keyed_by_order());
        assert_ne!(events.plant_key(7, 0), events.plant_key(7, 1));
    }

    #[test]
    fn numbers_compare_as_numbers_whatever_their_type() {
        assert_eq!(number("4567"), 4567);
        assert_eq!(number("4567.0"), 4567);
        assert_eq!(number(" 12 "), 12);
        assert_eq!(number("-1"), u64::MAX);
        assert_eq!(number("4567.5"), u64::MAX);
        assert_eq!(number("abc"), u64::MAX);
    }
}
