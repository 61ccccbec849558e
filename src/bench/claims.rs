//! The seed's claims about each pattern's cost (issue 22) next to this run's
//! figures from the pattern-overhead tables, each with why it differs here: the
//! claims are about production deployments (replicas over a network, disks that
//! sync), the figures come from emulators and single nodes on one machine.
//!
//! DynamoDB's write capacity units are computed, not measured: moto reports 1.0
//! for any PutItem and nothing for TransactWriteItems. [`Wcu`] applies DynamoDB's
//! published sizing rules (attribute names and values, 1 KB per write unit,
//! transactional writes twice) to the items dualwrite writes; measured units in
//! results are the capacity work's, not this file's.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use std::collections::BTreeMap;

use super::figures::{ClaimFigures, PatternFigures, StoreFigures};
use crate::order::Order;

/// A DynamoDB attribute value, as far as its size goes.
#[derive(Debug, Clone)]
pub enum Attr {
    S(String),
    N(String),
}

/// Bytes of one attribute (name + value) by DynamoDB's published rules:
/// strings their UTF-8 bytes, numbers 1 byte per two significant digits plus 1
/// (the items dualwrite's `naive` and `transaction` write have no other types).
pub fn attr_bytes(name: &str, value: &Attr) -> u64 {
    name.len() as u64
        + match value {
            Attr::S(s) => s.len() as u64,
            Attr::N(n) => {
                let digits: String = n.chars().filter(char::is_ascii_digit).collect();
                let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
                (significant as u64).div_ceil(2) + 1
            }
        }
}

pub fn item_bytes(item: &[(&'static str, Attr)]) -> u64 {
    item.iter().map(|(n, v)| attr_bytes(n, v)).sum()
}

/// Write units of one item written: 1 per KB started, twice in a transaction.
pub fn wcu(bytes: u64, transactional: bool) -> u64 {
    bytes.div_ceil(1024).max(1) * if transactional { 2 } else { 1 }
}

/// The order item as src/store/dynamodb/side.rs `order_item` writes it.
fn order_item(order: &Order) -> Vec<(&'static str, Attr)> {
    vec![
        ("order_id", Attr::S(order.key())),
        ("customer_id", Attr::N(order.customer_id.to_string())),
        ("amount_cents", Attr::N(order.amount_cents.to_string())),
        ("payload", Attr::S(order.payload.clone())),
    ]
}

/// The event item as src/store/dynamodb/side.rs `event_item` writes it, with the
/// stable event id (`e-` + the order key).
fn event_item(order: &Order) -> Vec<(&'static str, Attr)> {
    vec![
        ("event_id", Attr::S(format!("e-{}", order.key()))),
        ("order_id", Attr::S(order.key())),
        ("customer_id", Attr::N(order.customer_id.to_string())),
        ("amount_cents", Attr::N(order.amount_cents.to_string())),
    ]
}

/// Write units per order of DynamoDB's `naive` (two PutItems) and `transaction`
/// (one TransactWriteItems of the same two items), for the bench's orders.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wcu {
    /// The largest order and event items among the orders measured.
    pub order_bytes: u64,
    pub event_bytes: u64,
    pub naive: u64,
    pub transaction: u64,
}

impl Wcu {
    /// Over `orders` orders as the bench's runs generate them (1,000 customers,
    /// `payload_bytes` of payload), the largest items: units round up per item.
    pub fn of_orders(orders: u64, payload_bytes: usize) -> Self {
        let (mut order_bytes, mut event_bytes) = (0, 0);
        for id in 0..orders {
            let order = Order::generate(1, id, 1000, payload_bytes);
            order_bytes = order_bytes.max(item_bytes(&order_item(&order)));
            event_bytes = event_bytes.max(item_bytes(&event_item(&order)));
        }
        Self {
            order_bytes,
            event_bytes,
            naive: wcu(order_bytes, false) + wcu(event_bytes, false),
            transaction: wcu(order_bytes, true) + wcu(event_bytes, true),
        }
    }
}

/// A pattern row that was measured (latency and maximum).
fn measured<'a>(store: &'a StoreFigures, name: &str) -> Result<&'a PatternFigures, String> {
    let row = store
        .patterns
        .iter()
        .find(|p| p.pattern == name)
        .ok_or_else(|| format!("not measured: no `{name}` row in this run"))?;
    if let Some(why) = &row.not_run {
        return Err(format!("not measured: `{name}` not run ({why})"));
    }
    if row.p50_ms.is_none() || row.max_ops_s.is_none() {
        return Err(format!("not measured: `{name}` has no latency or maximum"));
    }
    Ok(row)
}

use super::patterns::SINGLE;

struct Pair<'a> {
    a: &'a PatternFigures,
    b: &'a PatternFigures,
}

impl Pair<'_> {
    /// p50 of `a` minus p50 of `b`, ms.
    fn plus_ms(&self) -> f64 {
        self.a.p50_ms.unwrap_or(0.0) - self.b.p50_ms.unwrap_or(0.0)
    }
    /// Throughput lost by `a` against `b`, percent.
    fn less_pct(&self) -> f64 {
        (1.0 - self.a.max_ops_s.unwrap_or(0.0) / self.b.max_ops_s.unwrap_or(f64::NAN)) * 100.0
    }
    /// Capacity one `a` takes in `b`s: b's maximum over a's.
    fn cost_x(&self) -> f64 {
        self.b.max_ops_s.unwrap_or(0.0) / self.a.max_ops_s.unwrap_or(f64::NAN)
    }
    fn p50s(&self) -> String {
        format!(
            "{:.2} vs {:.2} ms{}",
            self.a.p50_ms.unwrap_or(0.0),
            self.b.p50_ms.unwrap_or(0.0),
            self.late()
        )
    }
    /// Said when a latency run started operations late: its p50 holds queueing.
    fn late(&self) -> String {
        let late = |p: &PatternFigures| {
            p.late_ops
                .filter(|n| *n > 0)
                .map(|n| format!("{} {n}", p.pattern))
        };
        let both: Vec<String> = [late(self.a), late(self.b)].into_iter().flatten().collect();
        if both.is_empty() {
            String::new()
        } else {
            format!(
                " [operations started late: {}; that latency holds queueing]",
                both.join(", ")
            )
        }
    }

    fn maxes(&self) -> String {
        format!(
            "{:.0} vs {:.0} ops/s",
            self.a.max_ops_s.unwrap_or(0.0),
            self.b.max_ops_s.unwrap_or(0.0)
        )
    }
}

fn pair<'a>(store: &'a StoreFigures, a: &str, b: &str) -> Result<Pair<'a>, String> {
    Ok(Pair {
        a: measured(store, a)?,
        b: measured(store, b)?,
    })
}

/// This run's figure in words and its numbers by name, or why it was not measured.
type Measured = Result<(String, BTreeMap<String, f64>), String>;

/// One claim: which store, what the seed says, and how to measure it here.
struct Claim {
    store: &'static str,
    text: &'static str,
    measure: fn(&StoreFigures, &Wcu) -> Measured,
    /// Why it differs, by the server measured; `None`: the generic sentence.
    why: fn(&str, &Wcu) -> Option<String>,
}

fn figures<const N: usize>(pairs: [(&str, f64); N]) -> BTreeMap<String, f64> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn mongodb_transaction(s: &StoreFigures, _: &Wcu) -> Measured {
    let p = pair(s, "transaction", SINGLE)?;
    Ok((
        format!(
            "{:+.2} ms p50 ({}); {:.0} % less throughput ({})",
            p.plus_ms(),
            p.p50s(),
            p.less_pct(),
            p.maxes()
        ),
        figures([
            ("plus_p50_ms", p.plus_ms()),
            ("less_throughput_pct", p.less_pct()),
        ]),
    ))
}

fn dynamodb_transaction(s: &StoreFigures, w: &Wcu) -> Measured {
    let p = pair(s, "transaction", SINGLE)?;
    let naive = pair(s, "transaction", "naive")?;
    let ratio = w.transaction as f64 / w.naive as f64;
    Ok((
        format!(
            "{:+.2} ms p50 vs one PutItem ({}), {:+.2} ms vs naive's two PutItems; {} WCU per order vs {} for the two writes = {ratio:.1}x (modelled)",
            p.plus_ms(),
            p.p50s(),
            naive.plus_ms(),
            w.transaction,
            w.naive
        ),
        figures([
            ("plus_p50_ms", p.plus_ms()),
            ("plus_p50_vs_naive_ms", naive.plus_ms()),
            ("wcu_transaction", w.transaction as f64),
            ("wcu_two_writes", w.naive as f64),
            ("wcu_ratio", ratio),
        ]),
    ))
}

fn cassandra_same(s: &StoreFigures, _: &Wcu) -> Measured {
    let p = pair(s, "logged-batch (same)", SINGLE)?;
    let naive = pair(s, "logged-batch (same)", "naive")?;
    Ok((
        format!(
            "{:+.2} ms p50 vs one INSERT ({}); capacity per order {:.2}x a single write, {:.2}x naive's two writes ({}, naive {:.0})",
            p.plus_ms(),
            p.p50s(),
            p.cost_x(),
            naive.cost_x(),
            p.maxes(),
            naive.b.max_ops_s.unwrap_or(0.0)
        ),
        figures([
            ("plus_p50_ms", p.plus_ms()),
            ("cost_x_single", p.cost_x()),
            ("cost_x_naive", naive.cost_x()),
        ]),
    ))
}

fn cassandra_cross(s: &StoreFigures, _: &Wcu) -> Measured {
    let p = pair(s, "logged-batch (cross)", "logged-batch (same)")?;
    let single = pair(s, "logged-batch (cross)", SINGLE)?;
    Ok((
        format!(
            "{:+.2} ms p50 vs same-partition ({}), {:+.2} ms vs one INSERT; capacity per order {:.2}x same-partition's ({})",
            p.plus_ms(),
            p.p50s(),
            single.plus_ms(),
            p.cost_x(),
            p.maxes()
        ),
        figures([
            ("plus_p50_vs_same_ms", p.plus_ms()),
            ("plus_p50_ms", single.plus_ms()),
            ("cost_x_same", p.cost_x()),
        ]),
    ))
}

fn cassandra_lwt(s: &StoreFigures, _: &Wcu) -> Measured {
    let p = pair(s, "naive (lwt)", "naive")?;
    Ok((
        format!(
            "{:+.2} ms p50 vs the same naive write without IF NOT EXISTS ({}); {:.0} % less throughput ({})",
            p.plus_ms(),
            p.p50s(),
            p.less_pct(),
            p.maxes()
        ),
        figures([
            ("plus_p50_ms", p.plus_ms()),
            ("less_throughput_pct", p.less_pct()),
        ]),
    ))
}

fn change_feed(s: &StoreFigures, _: &Wcu) -> Measured {
    let p = pair(s, "streams", SINGLE)?;
    let ttc = p.a.ttc_p50_ms;
    Ok((
        format!(
            "write path {:+.2} ms p50 vs the single write ({}); relay time to consistency p50 {}",
            p.plus_ms(),
            p.p50s(),
            ttc.map_or("not reported".into(), |t| format!("{t:.1} ms"))
        ),
        figures([
            ("plus_p50_ms", p.plus_ms()),
            ("relay_ttc_p50_ms", ttc.unwrap_or(f64::NAN)),
        ]),
    ))
}

fn cassandra_cdc(_: &StoreFigures, _: &Wcu) -> Measured {
    Err(
        "not measured: dualwrite has no Cassandra CDC relay (`streams` is rejected on Cassandra)"
            .into(),
    )
}

const CLAIMS: &[Claim] = &[
    Claim {
        store: "mongodb",
        text: "multi-document transaction: +5-15 ms and 10-30 % less throughput than a single-document write",
        measure: mongodb_transaction,
        why: |server, _| {
            (server == "mongoeco").then(|| {
                "mongoeco 4.11.0 is an in-memory, single-threaded Python server on loopback: no replica set, so the commit waits for no majority and no journal; every round trip (start, two inserts, commit) queues for its one thread, so throughput falls by more than latency rises, and its transactions conflict database-wide (README, MongoDB servers)".into()
            })
        },
    },
    Claim {
        store: "dynamodb",
        text: "TransactWriteItems across two tables: +2-8 ms and about 2x the WCU of the two writes",
        measure: dynamodb_transaction,
        why: |server, w| {
            let units = format!(
                "WCU from DynamoDB's published sizing rules for the items dualwrite writes (order {} B, event {} B: 1 KB each; transactional writes cost twice), computed in src/bench/claims.rs, not reported",
                w.order_bytes, w.event_bytes
            );
            Some(if server == "moto" {
                format!(
                    "moto 5.2.5 serves one request at a time (scripts/lib/moto_server_serialized.py) and deep-copies each table a transaction touches, so its transaction latency grows with the table, not with DynamoDB's two-phase commit across storage nodes; moto reports 1.0 unit for any put and none for a transaction, so {units}"
                )
            } else {
                units
            })
        },
    },
    Claim {
        store: "cassandra",
        text: "same-partition LOGGED BATCH: +2-5 ms vs a single write and about 1.5x the write cost",
        measure: cassandra_same,
        why: |server, _| {
            (server == "cassandra").then(|| {
                "one Cassandra 5.0 node on loopback: both rows share the partition key (orders and order_audit by order_id), so Cassandra applies them as one mutation and writes no batchlog (it logs only batches that span partitions); the claim's cost is the batchlog round trip to other replicas".into()
            })
        },
    },
    Claim {
        store: "cassandra",
        text: "cross-partition LOGGED BATCH: noticeably more than same-partition (batchlog write and removal on other replicas)",
        measure: cassandra_cross,
        why: |server, _| {
            (server == "cassandra").then(|| {
                "one node: the batchlog write and its removal are local writes, with no replica round trip; `bench --cluster` measures three nodes at QUORUM".into()
            })
        },
    },
    Claim {
        store: "cassandra",
        text: "LWT (IF NOT EXISTS): +30-100 ms (four round trips) and 60-80 % less throughput under contention",
        measure: cassandra_lwt,
        why: |server, _| {
            (server == "cassandra").then(|| {
                "Paxos's four round trips (prepare, read, propose, commit) stay inside one node on loopback instead of crossing to replicas; every order has its own key, so no proposals contend and none retries: the claim's throughput loss is under contention, which this workload does not create".into()
            })
        },
    },
    Claim {
        store: "dynamodb",
        text: "change feed (DynamoDB Streams): 0 ms on the write path, the lag moved to the relay",
        measure: change_feed,
        why: |server, _| {
            Some(format!(
                "the streams pattern writes the order alone (one PutItem on {server}), so its write path is the single write plus dualwrite's own bookkeeping; the event's lag is the relay's, which polls the stream"
            ))
        },
    },
    Claim {
        store: "mongodb",
        text: "change feed (change streams): 0 ms on the write path, the lag moved to the relay",
        measure: change_feed,
        why: |server, _| {
            (server == "mongoeco").then(|| {
                "mongoeco has no change streams; a real replica set (docker/compose.yml, server = \"mongodb\") is needed".into()
            })
        },
    },
    Claim {
        store: "cassandra",
        text: "change feed (CDC): 0 ms on the write path, the lag moved to the relay",
        measure: cassandra_cdc,
        why: |_, _| {
            Some("Cassandra's CDC is a commit-log directory read on the node, which no relay here consumes".into())
        },
    },
];

/// The claims' rows from this run's figures by store name.
pub fn rows(stores: &BTreeMap<String, StoreFigures>, wcu: &Wcu) -> Vec<ClaimFigures> {
    CLAIMS
        .iter()
        .map(|c| {
            let row = |measured: String, figures, why: String| ClaimFigures {
                store: c.store.to_string(),
                claim: c.text.to_string(),
                measured,
                why,
                figures,
            };
            let Some(store) = stores.get(c.store) else {
                return row(
                    format!("not measured: {} not in this run (--stores)", c.store),
                    BTreeMap::new(),
                    String::new(),
                );
            };
            if let Some(skipped) = &store.skipped {
                return row(
                    format!("not measured: {} skipped ({skipped})", c.store),
                    BTreeMap::new(),
                    String::new(),
                );
            }
            let server = store.server.as_deref().unwrap_or(c.store);
            let why = (c.why)(server, wcu).unwrap_or_else(|| {
                format!(
                    "measured on {server}; the claim is about a replicated production deployment"
                )
            });
            match (c.measure)(store, wcu) {
                Ok((measured, figures)) => row(measured, figures, why),
                Err(not) => row(not, BTreeMap::new(), why),
            }
        })
        .collect()
}

/// The claims table as printed.
pub fn table(rows: &[ClaimFigures]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(180)
        .set_header(vec![
            "store",
            "claim",
            "measured here",
            "why it differs here",
        ]);
    for r in rows {
        table.add_row(vec![
            r.store.clone(),
            r.claim.clone(),
            r.measured.clone(),
            r.why.clone(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pattern: &str, p50: f64, max: f64) -> PatternFigures {
        PatternFigures {
            pattern: pattern.into(),
            p50_ms: Some(p50),
            p99_ms: Some(p50 * 2.0),
            max_ops_s: Some(max),
            latency_rate_ops_s: Some(max / 2.0),
            late_ops: Some(0),
            ttc_p50_ms: None,
            not_run: None,
        }
    }

    fn store(server: &str, patterns: Vec<PatternFigures>) -> StoreFigures {
        StoreFigures {
            server: Some(server.into()),
            patterns,
            ..StoreFigures::default()
        }
    }

    #[test]
    fn item_sizes_follow_the_published_rules_by_hand() {
        // "order_id" 8 + "o000000000042" 13 = 21; "customer_id" 11 + 999 (3
        // significant digits: 2 bytes) + 1 = 14; "amount_cents" 12 + 100099 (6: 3)
        // + 1 = 16; "payload" 7 + 64 = 71. Total 122.
        let order = Order {
            id: 42,
            customer_id: 999,
            amount_cents: 100_099,
            payload: "x".repeat(64),
        };
        assert_eq!(item_bytes(&order_item(&order)), 21 + 14 + 16 + 71);
        // "event_id" 8 + "e-o000000000042" 15 = 23, then 21 + 14 + 16.
        assert_eq!(item_bytes(&event_item(&order)), 23 + 21 + 14 + 16);
        // Leading and trailing zeros do not count: 100000 is one digit (1 byte + 1).
        assert_eq!(attr_bytes("n", &Attr::N("100000".into())), 1 + 1 + 1);
        assert_eq!(attr_bytes("n", &Attr::N("0".into())), 1 + 1);
        assert_eq!(attr_bytes("n", &Attr::N("12345".into())), 1 + 3 + 1);
    }

    #[test]
    fn write_units_round_up_per_kb_and_double_in_a_transaction() {
        assert_eq!(wcu(1, false), 1);
        assert_eq!(wcu(1024, false), 1);
        assert_eq!(wcu(1025, false), 2);
        assert_eq!(wcu(3 * 1024, false), 3);
        assert_eq!(wcu(1025, true), 4);
        // The bench's orders: both items well under 1 KB, so 2 units naive, 4 in
        // a transaction.
        let w = Wcu::of_orders(1000, 64);
        assert!(w.order_bytes < 1024 && w.event_bytes < 1024, "{w:?}");
        assert_eq!((w.naive, w.transaction), (2, 4));
        // A 2 KB payload: the order item takes 3 units (2 KB + attributes).
        let big = Wcu::of_orders(10, 2048);
        assert_eq!((big.naive, big.transaction), (3 + 1, 2 * 3 + 2));
    }

    #[test]
    fn claims_rows_compute_the_differences_from_the_table() {
        let wcu = Wcu::of_orders(100, 64);
        let mut stores = BTreeMap::new();
        stores.insert(
            "mongodb".to_string(),
            store(
                "mongoeco",
                vec![
                    row(SINGLE, 4.0, 400.0),
                    row("transaction", 10.5, 300.0),
                    PatternFigures {
                        not_run: Some("mongoeco has no change streams".into()),
                        ..PatternFigures {
                            pattern: "streams".into(),
                            ..PatternFigures::default()
                        }
                    },
                ],
            ),
        );
        stores.insert(
            "dynamodb".to_string(),
            store(
                "moto",
                vec![
                    row(SINGLE, 6.0, 280.0),
                    row("naive", 9.0, 150.0),
                    row("transaction", 12.0, 20.0),
                    PatternFigures {
                        ttc_p50_ms: Some(250.0),
                        ..row("streams", 6.5, 240.0)
                    },
                ],
            ),
        );
        stores.insert(
            "cassandra".to_string(),
            store(
                "cassandra",
                vec![
                    row(SINGLE, 1.5, 10_000.0),
                    row("naive", 2.0, 6_000.0),
                    row("naive (lwt)", 3.5, 1_500.0),
                    row("logged-batch (same)", 1.75, 8_000.0),
                    row("logged-batch (cross)", 2.25, 5_000.0),
                ],
            ),
        );
        stores.get_mut("cassandra").unwrap().patterns[2].late_ops = Some(12);
        let rows = rows(&stores, &wcu);
        let get = |store: &str, start: &str| {
            rows.iter()
                .find(|r| r.store == store && r.claim.starts_with(start))
                .unwrap_or_else(|| panic!("{store} {start}"))
        };
        let mongo = get("mongodb", "multi-document");
        assert_eq!(mongo.figures["plus_p50_ms"], 6.5);
        assert_eq!(mongo.figures["less_throughput_pct"], 25.0);
        assert!(
            mongo.measured.starts_with("+6.50 ms p50"),
            "{}",
            mongo.measured
        );
        assert!(mongo.why.contains("single-threaded"));

        let dynamo = get("dynamodb", "TransactWriteItems");
        assert_eq!(dynamo.figures["plus_p50_ms"], 6.0);
        assert_eq!(dynamo.figures["plus_p50_vs_naive_ms"], 3.0);
        assert_eq!(dynamo.figures["wcu_ratio"], 2.0);
        assert!(
            dynamo.measured.contains("4 WCU per order vs 2"),
            "{}",
            dynamo.measured
        );
        assert!(dynamo.why.contains("not reported"));

        let same = get("cassandra", "same-partition");
        assert_eq!(same.figures["plus_p50_ms"], 0.25);
        assert_eq!(same.figures["cost_x_single"], 1.25);
        assert_eq!(same.figures["cost_x_naive"], 0.75);
        let cross = get("cassandra", "cross-partition");
        assert_eq!(cross.figures["plus_p50_vs_same_ms"], 0.5);
        assert_eq!(cross.figures["cost_x_same"], 1.6);
        let lwt = get("cassandra", "LWT");
        assert_eq!(lwt.figures["plus_p50_ms"], 1.5);
        assert_eq!(lwt.figures["less_throughput_pct"], 75.0);
        assert!(
            lwt.measured
                .contains("[operations started late: naive (lwt) 12; that latency holds queueing]"),
            "{}",
            lwt.measured
        );
        assert!(!same.measured.contains("late"), "{}", same.measured);

        let streams = get("dynamodb", "change feed");
        assert_eq!(streams.figures["plus_p50_ms"], 0.5);
        assert_eq!(streams.figures["relay_ttc_p50_ms"], 250.0);
        assert!(streams.measured.contains("250.0 ms"));
        let mongo_streams = get("mongodb", "change feed");
        assert!(
            mongo_streams
                .measured
                .contains("mongoeco has no change streams")
        );
        assert!(mongo_streams.figures.is_empty());
        assert!(
            get("cassandra", "change feed")
                .measured
                .starts_with("not measured")
        );
    }

    #[test]
    fn a_store_not_run_or_skipped_says_so() {
        let wcu = Wcu::of_orders(10, 64);
        let mut stores = BTreeMap::new();
        stores.insert(
            "cassandra".to_string(),
            StoreFigures {
                skipped: Some("connection refused".into()),
                ..StoreFigures::default()
            },
        );
        let rows = rows(&stores, &wcu);
        assert_eq!(rows.len(), CLAIMS.len());
        for r in &rows {
            assert!(r.measured.starts_with("not measured"), "{r:?}");
            match r.store.as_str() {
                "cassandra" => assert!(r.measured.contains("connection refused")),
                _ => assert!(r.measured.contains("not in this run")),
            }
        }
        // The table prints every row.
        assert_eq!(table(&rows).row_iter().count(), CLAIMS.len());
    }
}
