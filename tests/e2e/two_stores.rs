//! Sides in two stores: the orders in DynamoDB, their second record in MongoDB
//! (FerretDB), each through its own store's proxy. The engine writes naive over
//! any two sides, and a relay publishes from one store's change feed into another.

use dualwrite::history::SideOutcome;

use crate::common::*;

const NAIVE: &str = r#"
name = "e2e-two-stores-naive"
seed = 12
[target.primary]
store = "dynamodb"
[target.secondary]
store = "mongodb"
server = "ferretdb"
[pattern]
name = "naive"
on_secondary_failure = "log-and-continue"
secondary_key = "stable"
[workload]
rate = 40
duration = "5s"
op_timeout = "1s"
[[faults]]
kind = "down"
side = "secondary"
start = "1500ms"
duration = "1500ms"
"#;

/// Both stores' locks, always in the same order.
fn locks() -> [std::sync::MutexGuard<'static, ()>; 2] {
    [lock("dynamodb"), lock("mongodb")]
}

#[test]
fn naive_across_two_stores_orphans_the_orders_whose_second_store_refused() {
    let _guards = locks();
    let s = Scratch::new();
    let run = s.run(&s.write("naive.toml", NAIVE));
    let c = run.checker();
    assert_eq!(run.code, 1, "{}", run.explain());
    assert_eq!(run.result.target, "dynamodb+mongodb");
    assert!(
        run.result.server.product.starts_with("moto + ferretdb"),
        "{:?}",
        run.result.server
    );
    // The fault was on the MongoDB side's own proxy.
    assert_eq!(
        run.result.faults[0].proxy.as_deref(),
        Some("ferretdb_secondary")
    );
    let refused = run.count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Fail);
    let unknown =
        run.count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Unknown);
    assert!(refused > 0, "{}", run.explain());
    assert!(
        (refused..=refused + unknown).contains(&c.orphans),
        "{refused}+{unknown}: {}",
        run.explain()
    );
    assert_eq!(c.lost_acks, c.orphans);
    assert_eq!(
        (c.ghosts, c.duplicates, c.mismatches, c.strays),
        (0, 0, 0, 0)
    );
    assert_eq!(c.scanned_primary, run.result.workload.ops.total);
}

#[test]
fn a_streams_relay_publishes_from_one_store_into_another() {
    let _guards = locks();
    let s = Scratch::new();
    let text = NAIVE
        .replace("e2e-two-stores-naive", "e2e-two-stores-streams")
        .replace(
            "name = \"naive\"\non_secondary_failure = \"log-and-continue\"\nsecondary_key = \"stable\"",
            "name = \"streams\"\n[pattern.relay]\nidempotent = true\npoll_interval = \"50ms\"",
        );
    let run = s.run(&s.write("streams.toml", &text));
    let c = run.checker();
    // The secondary was down for a while: the relay's publishes into MongoDB
    // failed, it restarted from its checkpoint, and every order arrived.
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0, "{}", run.explain());
    let relay = run.result.relay.as_ref().unwrap();
    assert!(relay.stats.drained, "{relay:?}");
    assert!(
        relay.stats.errors > 0,
        "the down window reached the relay's publishes: {relay:?}"
    );
    assert_eq!(c.scanned_secondary, run.result.workload.ops.ok);
}
