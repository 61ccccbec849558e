//! Documents written and transactions per order on MongoDB, from the server's
//! own `serverStatus` read before and after the load (the relay's drain included).
//!
//! What each server has (read on the local stack): a real `mongod` has
//! `metrics.document.{inserted,updated,deleted}` (documents),
//! `opcounters` (write operations: an `insert_many` is one) and
//! `transactions.totalStarted`; mongoeco has `opcounters` only; FerretDB v1 has
//! `metrics.commands.<command>.total` (write commands) only. Operations are not
//! documents (the relay publishes with `insert_many` and marks with
//! `update_many`), so they are a figure of their own, `write_operations`. A
//! counter the server lacks is reported as `not reported by <server>`, never as
//! a zero. The counters
//! are the whole server's: on a shared server, other clients' writes in the
//! same window are included (the figure says `server_wide`).

use mongodb::bson::{Bson, Document};
use std::collections::BTreeMap;

use crate::result::{CapacityFigure, CapacitySource};

/// One reading of the counters that exist on this server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Documents written, by counter name.
    pub documents: Option<BTreeMap<String, f64>>,
    /// Write operations or commands, by counter name.
    pub operations: Option<BTreeMap<String, f64>>,
    pub transactions: Option<f64>,
}

fn num(doc: &Document, path: &[&str]) -> Option<f64> {
    let (last, parents) = path.split_last()?;
    let mut d = doc;
    for p in parents {
        d = d.get_document(p).ok()?;
    }
    match d.get(last)? {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(f) => Some(*f),
        _ => None,
    }
}

/// The counters of one `serverStatus` answer.
pub fn read(status: &Document) -> Counters {
    let pick = |paths: &[(&str, &[&str])]| -> Option<BTreeMap<String, f64>> {
        let found: BTreeMap<String, f64> = paths
            .iter()
            .filter_map(|(name, path)| num(status, path).map(|n| (name.to_string(), n)))
            .collect();
        (!found.is_empty()).then_some(found)
    };
    let documents = pick(&[
        (
            "metrics.document.inserted",
            &["metrics", "document", "inserted"],
        ),
        (
            "metrics.document.updated",
            &["metrics", "document", "updated"],
        ),
        (
            "metrics.document.deleted",
            &["metrics", "document", "deleted"],
        ),
    ]);
    let operations = pick(&[
        ("opcounters.insert", &["opcounters", "insert"]),
        ("opcounters.update", &["opcounters", "update"]),
        ("opcounters.delete", &["opcounters", "delete"]),
    ])
    .or_else(|| {
        pick(&[
            (
                "metrics.commands.insert",
                &["metrics", "commands", "insert", "total"],
            ),
            (
                "metrics.commands.update",
                &["metrics", "commands", "update", "total"],
            ),
            (
                "metrics.commands.delete",
                &["metrics", "commands", "delete", "total"],
            ),
        ])
    });
    Counters {
        documents,
        operations,
        transactions: num(status, &["transactions", "totalStarted"]),
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn missing(name: &str, unit: &str, why: String) -> CapacityFigure {
    CapacityFigure {
        store: "mongodb".into(),
        name: name.into(),
        unit: unit.into(),
        total: None,
        per_order: None,
        source: CapacitySource::NotReported,
        server_wide: true,
        missing: Some(why),
        attempts: None,
        reported_attempts: None,
        unanswered: None,
        modelled_total: None,
        reported_total: None,
        parts: BTreeMap::new(),
    }
}

fn counted(name: &str, unit: &str, parts: BTreeMap<String, f64>, orders: u64) -> CapacityFigure {
    let total: f64 = parts.values().sum();
    CapacityFigure {
        total: Some(round(total)),
        per_order: (orders > 0).then(|| round(total / orders as f64)),
        source: CapacitySource::ServerCounter,
        missing: None,
        parts,
        ..missing(name, unit, String::new())
    }
}

/// The figures between two readings (`server`: the product, for messages).
pub fn figures(
    before: &Counters,
    after: &Counters,
    server: &str,
    orders: u64,
) -> (Vec<CapacityFigure>, Vec<String>) {
    let mut out = Vec::new();
    let diff = |b: &BTreeMap<String, f64>, a: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
        a.iter()
            .map(|(k, v)| (k.clone(), (v - b.get(k).copied().unwrap_or(0.0)).max(0.0)))
            .collect()
    };
    for (name, unit, b, a) in [
        (
            "documents_written",
            "documents",
            &before.documents,
            &after.documents,
        ),
        (
            "write_operations",
            "write operations",
            &before.operations,
            &after.operations,
        ),
    ] {
        match (b, a) {
            (Some(b), Some(a)) => out.push(counted(name, unit, diff(b, a), orders)),
            _ => out.push(missing(name, unit, format!("not reported by {server}"))),
        }
    }
    let notes = vec![format!(
        "mongodb: {server}'s serverStatus read before and after the load; its counters are the whole server's, so other clients' writes in the same window are included"
    )];
    match (before.transactions, after.transactions) {
        (Some(b), Some(a)) => out.push(counted(
            "transactions",
            "transactions",
            BTreeMap::from([("transactions.totalStarted".to_string(), (a - b).max(0.0))]),
            orders,
        )),
        _ => out.push(missing(
            "transactions",
            "transactions",
            format!("not reported by {server}"),
        )),
    }
    (out, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn each_servers_counters_are_read_and_differenced() {
        // A real mongod's shape.
        let before = read(&doc! {
            "metrics": {"document": {"inserted": 10_i64, "updated": 2_i64, "deleted": 0_i64}},
            "transactions": {"totalStarted": 5_i64},
        });
        let after = read(&doc! {
            "metrics": {"document": {"inserted": 30_i64, "updated": 12_i64, "deleted": 0_i64}},
            "transactions": {"totalStarted": 15_i64},
        });
        let (f, notes) = figures(&before, &after, "mongodb", 10);
        assert_eq!(f[0].name, "documents_written");
        assert_eq!(f[0].total, Some(30.0));
        assert_eq!(f[0].per_order, Some(3.0));
        assert_eq!(f[0].parts["metrics.document.updated"], 10.0);
        assert!(f[0].server_wide);
        assert_eq!(f[2].name, "transactions");
        assert_eq!(f[2].per_order, Some(1.0));
        assert!(notes[0].contains("whole server"));
        // mongoeco: opcounters (operations, not documents), no transaction
        // counter: never a zero for what it does not report.
        let eco = |n: i32| read(&doc! {"opcounters": {"insert": n, "update": 0, "delete": 0}});
        let (f, _) = figures(&eco(100), &eco(140), "mongoeco", 20);
        assert_eq!(f[0].missing.as_deref(), Some("not reported by mongoeco"));
        assert_eq!(f[0].total, None);
        assert_eq!(f[1].per_order, Some(2.0));
        assert_eq!(f[2].source, CapacitySource::NotReported);
        // FerretDB: write commands.
        let ferret = |n: i64| {
            read(&doc! {"metrics": {"commands": {"insert": {"total": n, "failed": 0_i64}}}})
        };
        let (f, _) = figures(&ferret(7), &ferret(17), "ferretdb", 5);
        assert_eq!(f[1].parts["metrics.commands.insert"], 10.0);
        assert_eq!(f[1].per_order, Some(2.0));
        // Nothing at all.
        let (f, _) = figures(&Counters::default(), &Counters::default(), "x", 5);
        assert!(
            f.iter()
                .all(|f| f.missing.as_deref() == Some("not reported by x"))
        );
    }
}
