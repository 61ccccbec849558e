//! Capacity per order on the real stack (moto and Cassandra behind proxies of
//! this test's own):
//! the figures are what the history proves. Without faults, naive costs the
//! modelled units of its two items per order and a transaction twice that; with
//! retries, every attempt the history records is paid for.
//!
//! Item sizes by hand (DynamoDB's rules, src/store/dynamodb/capacity.rs): the
//! order item with a 2,100-byte payload is between 2,100 and 2,200 bytes (its
//! other attributes' names and values are under 100 bytes), so 3 WCU; the event
//! item is under 1 KB, so 1 WCU. moto answers ConsumedCapacity 1.0 for any
//! PutItem and nothing for TransactWriteItems, so the figures are modelled there.

use dualwrite::history::{Outcome, SideOutcome};
use dualwrite::result::{CapacityFigure, CapacitySource};

use crate::common::*;

const MOTO: &str = "127.0.0.1:5000";
const CASSANDRA: &str = "127.0.0.1:9042";
const FERRETDB: &str = "127.0.0.1:27017";

fn write_units(run: &Run) -> &CapacityFigure {
    run.result
        .capacity
        .as_ref()
        .and_then(|c| c.figure("dynamodb", "write_units"))
        .unwrap_or_else(|| panic!("no write_units figure\n{}", run.explain()))
}

/// Runs `pattern` lines with a 2,100-byte payload and no faults.
fn run_without_faults(tag: &str, pattern: &str) -> Run {
    let proxies = OwnProxies::new(tag, MOTO);
    let s = Scratch::new();
    let text = format!(
        "name = \"capacity-{tag}\"\nseed = 7\n{}\n[pattern]\n{pattern}\n[workload]\nrate = 20\nduration = \"2s\"\nconcurrency = 4\nop_timeout = \"5s\"\npayload_bytes = 2100\n",
        proxies.target("dynamodb", "")
    );
    let path = s.write("capacity.toml", &text);
    s.run(&path)
}

#[test]
fn naive_costs_the_model_of_its_two_items_and_a_transaction_twice_that() {
    let _guard = lock("dynamodb");
    let naive = run_without_faults("naive", "name = \"naive\"");
    let ops = naive.result.workload.ops.total;
    assert!(ops > 0, "{}", naive.explain());
    // What the history proves: one primary PutItem per order (naive does not
    // retry), one secondary PutItem per order whose second write was attempted.
    // A timed-out attempt on a busy server is counted too (it was sent).
    assert_eq!(naive.count(|e| e.retries > 0), 0);
    let secondary = naive.count(|e| e.secondary != SideOutcome::Skipped);
    let w = write_units(&naive);
    assert_eq!(
        w.attempts,
        Some(ops + secondary),
        "{w:?}\n{}",
        naive.explain()
    );
    // 3 WCU for the order item, 1 for the event, modelled on moto, whose own
    // report (1.0 per PutItem) is kept beside it.
    assert_eq!(w.source, CapacitySource::Modelled, "{w:?}");
    assert_eq!(w.parts["PutItem@primary"], 3.0 * ops as f64, "{w:?}");
    assert_eq!(w.parts["PutItem@secondary"], secondary as f64, "{w:?}");
    let answered = w.attempts.unwrap() - w.unanswered.unwrap();
    assert!(w.reported_total.unwrap() <= answered as f64, "{w:?}");
    if secondary == ops {
        // The fault-free case: 4 per order.
        assert_eq!(w.per_order, Some(4.0), "{w:?}");
    }

    let txn = run_without_faults("txn", "name = \"transaction\"");
    let ops = txn.result.workload.ops.total;
    assert!(ops > 0, "{}", txn.explain());
    // One TransactWriteItems per attempt the history records (moto can answer
    // a concurrent transaction with HTTP 500: an unknown outcome, retried).
    let attempts: u64 = txn.history.iter().map(|e| 1 + u64::from(e.retries)).sum();
    let t = write_units(&txn);
    assert_eq!(t.attempts, Some(attempts), "{t:?}\n{}", txn.explain());
    // Transactional writes cost twice: 2 x (3 + 1) per attempt.
    assert_eq!(t.total, Some(8.0 * attempts as f64), "{t:?}");
    assert_eq!(
        t.parts["TransactWriteItems@primary"],
        2.0 * 4.0 * attempts as f64
    );
    if attempts == ops {
        assert_eq!(t.per_order, Some(8.0), "{t:?}");
    }
    // moto reports nothing for TransactWriteItems.
    assert_eq!(t.reported_total, None, "{t:?}");
}

#[test]
fn every_retry_of_a_transaction_is_paid_for() {
    let _guard = lock("dynamodb");
    let proxies = OwnProxies::new("retry", MOTO);
    let s = Scratch::new();
    // Token misuse: a fresh token per retry, answers delayed past the timeout
    // for 2 s, so attempts whose answer was lost are retried (and applied again).
    let text = format!(
        "name = \"capacity-retries\"\nseed = 7\n{}\n[pattern]\nname = \"transaction\"\nconditions = false\nidempotency_token = \"fresh\"\nsecondary_key = \"fresh\"\nretries = 3\nbackoff = \"20ms\"\n[workload]\nrate = 20\nduration = \"4s\"\nconcurrency = 16\nop_timeout = \"500ms\"\n[[faults]]\nkind = \"latency\"\nside = \"primary\"\ndirection = \"downstream\"\nlatency = \"1500ms\"\nstart = \"1s\"\nduration = \"2s\"\n",
        proxies.target("dynamodb", "")
    );
    let path = s.write("retries.toml", &text);
    let run = s.run(&path);
    let ops = run.result.workload.ops.total;
    let attempts: u64 = run.history.iter().map(|e| 1 + u64::from(e.retries)).sum();
    assert!(
        attempts > ops,
        "the fault caused retries\n{}",
        run.explain()
    );
    let w = write_units(&run);
    // Every attempt the history records reached moto (a delayed answer, not a
    // refused connection), and each costs 2 x (1 + 1) WCU (small items).
    assert_eq!(w.attempts, Some(attempts), "{w:?}\n{}", run.explain());
    assert_eq!(w.total, Some(4.0 * attempts as f64), "{w:?}");
    assert!(w.unanswered.unwrap() > 0, "lost answers counted: {w:?}");
    assert!(
        w.per_order.unwrap() > 4.0,
        "retries cost more than 4 per order: {w:?}"
    );
}

#[test]
fn a_cross_partition_logged_batch_writes_its_two_rows_and_its_batchlog() {
    let _guard = lock("cassandra");
    let proxies = OwnProxies::new("batch", CASSANDRA);
    let s = Scratch::new();
    let text = format!(
        "name = \"capacity-batch\"\nseed = 7\n{}\n[pattern]\nname = \"logged-batch\"\npartitioning = \"cross\"\n[workload]\nrate = 20\nduration = \"2s\"\nconcurrency = 4\nop_timeout = \"5s\"\n",
        proxies.target("cassandra", "")
    );
    let path = s.write("batch.toml", &text);
    let run = s.run(&path);
    let ops = run.result.workload.ops.total;
    assert!(ops > 0, "{}", run.explain());
    let ok = run.count(|e| e.outcome == Outcome::Ok);
    let attempts: u64 = run.history.iter().map(|e| 1 + u64::from(e.retries)).sum();
    let c = run.result.capacity.as_ref().expect("capacity");
    let figure = |name: &str| {
        c.figure("cassandra", name)
            .unwrap_or_else(|| panic!("no {name}: {c:?}"))
    };
    // Two rows per applied batch in the run's own keyspace (only this run
    // writes there): the batch is atomic, so both tables got the same number of
    // writes, at least one per acknowledged order and at most one per attempt.
    let m = figure("mutations");
    assert_eq!(m.source, CapacitySource::ServerCounter);
    assert!(!m.server_wide);
    let part = |t: &str| m.parts.get(t).copied().unwrap_or(0.0);
    let (orders, by_customer) = (part("orders"), part("orders_by_customer"));
    assert_eq!(orders, by_customer, "{m:?}");
    assert!(
        (ok as f64..=attempts as f64).contains(&orders),
        "{m:?}\n{}",
        run.explain()
    );
    if ok == ops && attempts == ops {
        // Every batch applied once: two rows per order.
        assert_eq!(m.per_order, Some(2.0), "{m:?}");
    }
    // A batch across partitions goes through the batchlog: stored, then removed.
    // The counter is the node's: other runs can only add to it.
    let b = figure("batchlog_writes");
    assert!(b.server_wide);
    assert!(b.total.unwrap() >= 2.0 * ok as f64, "{b:?}");
}

#[test]
fn ferretdb_counts_write_commands_and_reports_no_documents_or_transactions() {
    let _guard = lock("mongodb");
    let proxies = OwnProxies::new("mongo", FERRETDB);
    let s = Scratch::new();
    let target = proxies.target("mongodb", "").replace(
        "store = \"mongodb\"\n",
        "store = \"mongodb\"\nserver = \"ferretdb\"\n",
    );
    let text = format!(
        "name = \"capacity-mongo\"\nseed = 7\n{target}\n[pattern]\nname = \"naive\"\n[workload]\nrate = 20\nduration = \"2s\"\nconcurrency = 4\nop_timeout = \"5s\"\n"
    );
    let path = s.write("mongo.toml", &text);
    let run = s.run(&path);
    let c = run
        .result
        .capacity
        .as_ref()
        .unwrap_or_else(|| panic!("no capacity\n{}", run.explain()));
    // FerretDB v1 has no document or transaction counters: said, never a zero.
    for name in ["documents_written", "transactions"] {
        let f = c.figure("mongodb", name).expect(name);
        assert_eq!(f.source, CapacitySource::NotReported, "{f:?}");
        assert_eq!(f.total, None, "{f:?}");
        assert_eq!(f.missing.as_deref(), Some("not reported by ferretdb"));
    }
    // Its insert commands: one per write the history says reached a side
    // (acknowledged ones at least); the counter is the server's, so other
    // clients can only add to it.
    let w = c
        .figure("mongodb", "write_operations")
        .expect("write_operations");
    assert!(w.server_wide);
    let acked =
        run.count(|e| e.primary == SideOutcome::Ok) + run.count(|e| e.secondary == SideOutcome::Ok);
    assert!(
        w.parts["metrics.commands.insert"] >= acked as f64,
        "{w:?}\n{}",
        run.explain()
    );
}
