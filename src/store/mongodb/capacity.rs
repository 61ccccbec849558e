//! Documents written and transactions per order on MongoDB, from the server's
//! own `serverStatus` read before and after the load (the relay's drain included).
//!
//! What each server has (read on the local stack): a real `mongod` has
//! `metrics.document.{inserted,updated,deleted}` (documents) and
//! `transactions.totalStarted`; mongoeco has `opcounters` (write operations,
//! one document each in this tool's patterns) and no transaction counter;
//! FerretDB v1 has `metrics.commands.<command>.total` (write commands, one
//! document each here) and no transaction counter. A counter the server lacks
//! is reported as `not reported by <server>`, never as a zero. The counters
//! are the whole server's: on a shared server, other clients' writes in the
//! same window are included (the figure says `server_wide`).

use mongodb::bson::{Bson, Document};
use std::collections::BTreeMap;

use crate::result::{CapacityFigure, CapacitySource};

/// One reading of the counters that exist on this server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Document writes by counter name, and where they come from.
    pub writes: Option<(BTreeMap<String, f64>, &'static str)>,
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
    let writes = pick(&[
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
    ])
    .map(|w| (w, "documents (metrics.document)"))
    .or_else(|| {
        pick(&[
            ("opcounters.insert", &["opcounters", "insert"]),
            ("opcounters.update", &["opcounters", "update"]),
            ("opcounters.delete", &["opcounters", "delete"]),
        ])
        .map(|w| (w, "write operations (opcounters), one document each here"))
    })
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
        .map(|w| {
            (
                w,
                "write commands (metrics.commands), one document each here",
            )
        })
    });
    Counters {
        writes,
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
    let mut notes = Vec::new();
    match (&before.writes, &after.writes) {
        (Some((b, how)), Some((a, _))) => {
            let parts = a
                .iter()
                .map(|(k, v)| (k.clone(), (v - b.get(k).copied().unwrap_or(0.0)).max(0.0)))
                .collect();
            out.push(counted("documents_written", "documents", parts, orders));
            notes.push(format!(
                "mongodb documents_written: {server}'s {how}, read before and after the load; the counters are the whole server's, so other clients' writes in the same window are included"
            ));
        }
        _ => out.push(missing(
            "documents_written",
            "documents",
            format!("not reported by {server}"),
        )),
    }
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
        assert_eq!(f[0].total, Some(30.0));
        assert_eq!(f[0].per_order, Some(3.0));
        assert_eq!(f[0].parts["metrics.document.updated"], 10.0);
        assert!(f[0].server_wide);
        assert_eq!(f[1].per_order, Some(1.0));
        assert!(notes[0].contains("whole server"));
        // mongoeco: opcounters, no transaction counter: never a zero.
        let eco = |n: i32| read(&doc! {"opcounters": {"insert": n, "update": 0, "delete": 0}});
        let (f, _) = figures(&eco(100), &eco(140), "mongoeco", 20);
        assert_eq!(f[0].per_order, Some(2.0));
        assert_eq!(f[1].source, CapacitySource::NotReported);
        assert_eq!(f[1].total, None);
        assert_eq!(f[1].missing.as_deref(), Some("not reported by mongoeco"));
        // FerretDB: write commands.
        let ferret = |n: i64| {
            read(&doc! {"metrics": {"commands": {"insert": {"total": n, "failed": 0_i64}}}})
        };
        let (f, _) = figures(&ferret(7), &ferret(17), "ferretdb", 5);
        assert_eq!(f[0].parts["metrics.commands.insert"], 10.0);
        assert_eq!(f[0].per_order, Some(2.0));
        // Nothing at all.
        let (f, _) = figures(&Counters::default(), &Counters::default(), "x", 5);
        assert_eq!(f[0].missing.as_deref(), Some("not reported by x"));
    }
}
