//! The outcome rule on every real store (docs/HISTORY.md): a side whose attempt
//! may have landed is `unknown`, never `fail`, whatever later attempts say; an
//! operation is `fail` only when nothing of it can have landed. Each test makes
//! the store produce the sequence that used to be recorded as `fail`, and checks
//! the history against a full scan of both sides.

use dualwrite::history::{HistoryEntry, Outcome, SideOutcome};

use crate::common::*;

/// Naive with retries of the second write: its answers are lost (a downstream
/// black hole: requests reach the server, answers never come) from 1 s, then it
/// is down from 1.6 s to past the retries, so an operation whose first attempt
/// was lost has its later retries refused.
fn lost_then_refused(store: &str, server: &str) -> String {
    format!(
        r#"
name = "e2e-outcomes-{store}"
seed = 5
[target]
store = "{store}"
{server}
[pattern]
name = "naive"
on_secondary_failure = "retry"
retries = 2
backoff = "100ms"
[workload]
rate = 40
duration = "4s"
op_timeout = "600ms"
[[faults]]
kind = "timeout"
side = "secondary"
direction = "downstream"
timeout = "0ms"
start = "1s"
duration = "600ms"
[[faults]]
kind = "down"
side = "secondary"
start = "1600ms"
duration = "2200ms"
[expect]
orphans = "any"
lost_acks = "any"
divergence = "any"
"#
    )
}

/// What every run must show: no operation recorded `fail` has anything on a
/// store, no side recorded `fail` after an attempt that may have landed.
fn the_history_never_claims_a_write_that_landed_failed(run: &Run) {
    let c = run.checker();
    let landed =
        c.ambiguous_fail.primary_only + c.ambiguous_fail.secondary_only + c.ambiguous_fail.both;
    assert_eq!(
        landed,
        0,
        "`fail` operations with data on a store: {}",
        run.explain()
    );
    assert_eq!(
        run.count(|e| e.outcome == Outcome::Fail && e.primary == SideOutcome::Ok),
        0,
        "{}",
        run.explain()
    );
}

fn lost_then_refused_is_unknown(store: &str, server: &str, refusals: &[&str]) {
    let _guard = lock(store);
    let s = Scratch::new();
    let run = s.run(&s.write("outcomes.toml", &lost_then_refused(store, server)));
    the_history_never_claims_a_write_that_landed_failed(&run);
    // The sequence happened: a lost answer, then refusals, recorded as unknown
    // with the refusal as its last error.
    let sequence = |e: &HistoryEntry| {
        e.secondary == SideOutcome::Unknown
            && e.retries > 0
            && e.error.as_deref().is_some_and(|c| refusals.contains(&c))
    };
    assert!(
        run.count(sequence) > 0,
        "no lost-then-refused operation: {}",
        run.explain()
    );
    // The caller heard "failed" about an order whose first write landed: not a
    // clean failure, so the operation is unknown too.
    assert!(
        run.history
            .iter()
            .filter(|e| sequence(e))
            .all(|e| e.outcome == Outcome::Unknown)
    );
    // The history bounds the orphans: every order whose second write was only
    // refused is one; one whose writes may have landed (unknown) may be one.
    let c = run.checker();
    let refused = run.count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Fail);
    let maybe = run.count(|e| e.primary != SideOutcome::Fail && e.secondary != SideOutcome::Ok);
    assert!(
        (refused..=maybe).contains(&c.orphans),
        "{refused}..={maybe}: {}",
        run.explain()
    );
}

#[test]
fn dynamodb_a_lost_answer_then_refused_retries_is_unknown() {
    lost_then_refused_is_unknown("dynamodb", "", &["refused"]);
}

#[test]
fn cassandra_a_lost_answer_then_refused_retries_is_unknown() {
    lost_then_refused_is_unknown("cassandra", "", &["no-connection", "no-node"]);
}

#[test]
fn mongodb_a_lost_answer_then_refused_retries_is_unknown() {
    lost_then_refused_is_unknown(
        "mongodb",
        "server = \"ferretdb\"",
        &["refused", "server-selection", "pool-cleared"],
    );
}

/// The MongoDB driver's monitor checks the server through the same proxy; when
/// its check times out (downstream latency past the connect timeout) it clears
/// the pool and interrupts the connections in use, so inserts already sent —
/// and applied: the latency is on the answers — fail with `pool-cleared`.
#[test]
fn mongodb_a_write_interrupted_by_a_pool_clear_is_unknown() {
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let text = r#"
name = "e2e-outcomes-pool-clear"
seed = 9
[target]
store = "mongodb"
server = "ferretdb"
[pattern]
name = "naive"
on_secondary_failure = "fail"
[workload]
rate = 40
duration = "5s"
concurrency = 64
op_timeout = "3s"
[[faults]]
kind = "latency"
side = "secondary"
direction = "downstream"
latency = "2200ms"
start = "1s"
duration = "2500ms"
[expect]
orphans = "any"
divergence = "any"
"#;
    let run = s.run(&s.write("pool.toml", text));
    the_history_never_claims_a_write_that_landed_failed(&run);
    let cleared = run.count(|e| e.error.as_deref() == Some("pool-cleared"));
    assert!(cleared > 0, "no pool clear happened: {}", run.explain());
    assert_eq!(
        run.count(
            |e| e.error.as_deref() == Some("pool-cleared") && e.secondary != SideOutcome::Unknown
        ),
        0,
        "{}",
        run.explain()
    );
    // Whether an interrupted insert landed is the store's to say (on FerretDB most
    // did not): the checker accounts for every one of them by what it found.
    let c = run.checker();
    assert_eq!(
        c.ambiguous_unknown.both + c.ambiguous_unknown.primary_only,
        run.count(|e| e.outcome == Outcome::Unknown),
        "{}",
        run.explain()
    );
}
