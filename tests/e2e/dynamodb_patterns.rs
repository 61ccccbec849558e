//! DynamoDB (moto behind Toxiproxy): the bundled scenarios of every pattern and
//! failure mode give their expected verdict, and every count is explained by the
//! history or by the relay's own figures.

use dualwrite::history::{HistoryEntry, Outcome, SideOutcome};
use dualwrite::result::RelayResult;

use crate::common::*;

/// Runs a bundled scenario (from `scenarios/`), optionally edited.
fn run_bundled(file: &str, edit: impl Fn(String) -> String) -> Run {
    let s = Scratch::new();
    let text = std::fs::read_to_string(repo().join("scenarios").join(file)).unwrap();
    let path = s.write(file, &edit(text));
    let run = s.run(&path);
    // Keep the scratch dir alive until the result is read (Run owns copies).
    drop(s);
    run
}

fn relay(run: &Run) -> &RelayResult {
    run.result
        .relay
        .as_ref()
        .unwrap_or_else(|| panic!("async pattern without relay figures\n{}", run.explain()))
}

/// Time-to-consistency is present and ordered, and covers every delivery.
fn assert_ttc(run: &Run) {
    let r = relay(run);
    let t = &r.time_to_consistency_ms;
    assert_eq!(t.count, r.stats.delivered, "{}", run.explain());
    assert!(t.count > 0, "{}", run.explain());
    assert!(0.0 < t.p50 && t.p50 <= t.p99 && t.p99 <= t.max, "ttc {t:?}");
    assert!(r.stats.drained && r.stats.pending_at_check == 0, "{r:?}");
}

fn all_ok(run: &Run) -> u64 {
    run.count(|e| e.outcome == Outcome::Ok)
}

#[test]
fn streams_relay_converges_after_its_proxy_goes_down() {
    let _guard = lock("dynamodb");
    let run = run_bundled("dynamo-streams.toml", |t| t);
    let c = run.checker();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0, "{}", run.explain());
    // Every acknowledged order reached the secondary, once.
    assert_eq!(c.scanned_primary, all_ok(&run), "{}", run.explain());
    assert_eq!(c.scanned_secondary, c.scanned_primary);
    let r = relay(&run);
    // The outage did bite: the relay's calls failed and it restarted from its
    // checkpoint, so the slowest deliveries waited out the 2 s window.
    assert!(r.stats.errors > 0, "{r:?}");
    assert!(r.time_to_consistency_ms.max >= 1500.0, "{r:?}");
    assert_ttc(&run);
}

#[test]
fn outbox_relay_crashing_between_publish_and_clear_converges_when_idempotent() {
    let _guard = lock("dynamodb");
    let run = run_bundled("dynamo-outbox.toml", |t| t);
    let c = run.checker();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0, "{}", run.explain());
    assert_eq!(c.scanned_primary, all_ok(&run));
    assert_eq!(c.scanned_secondary, c.scanned_primary);
    let r = relay(&run);
    // crash_every = 40: every 40th publish crashed before its clear + checkpoint
    // and was published again on restart (an overwrite: the same event id). A
    // relay error between publish and checkpoint (its proxy went down) replays
    // one event too; nothing else is ever published twice.
    assert!(r.stats.self_crashes > 0, "{r:?}");
    let replays = r.stats.delivered - c.scanned_primary;
    assert!(
        (r.stats.self_crashes..=r.stats.self_crashes + r.stats.errors).contains(&replays),
        "{replays} replays: {r:?}"
    );
    assert_ttc(&run);
}

#[test]
fn relay_crash_non_idempotent_duplicates_once_per_crash_idempotent_none() {
    let _guard = lock("dynamodb");
    let run = run_bundled("dynamo-relay-crash.toml", |t| t);
    let c = run.checker();
    let r = relay(&run).stats.clone();
    assert_eq!(run.code, 1, "{}", run.explain());
    assert!(c.duplicates > 0, "{}", run.explain());
    assert_eq!((c.orphans, c.ghosts, c.lost_acks), (0, 0, 0));
    // Fresh event ids: every extra record on the secondary is a duplicate...
    assert_eq!(c.duplicates, c.scanned_secondary - c.scanned_primary);
    // ...and each comes from a replay: one per self-crash, plus at most one per
    // relay-crash fault (a kill landing while a write was in flight).
    assert!(r.self_crashes > 0 && r.fault_crashes == 1, "{r:?}");
    assert!(
        (r.self_crashes..=r.self_crashes + r.fault_crashes).contains(&c.duplicates),
        "duplicates {} vs crashes {r:?}",
        c.duplicates
    );
    assert_ttc(&run);

    let run = run_bundled("dynamo-relay-crash.toml", |t| {
        t.replace("idempotent = false", "idempotent = true")
    });
    let c = run.checker();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0, "{}", run.explain());
    assert!(relay(&run).stats.self_crashes > 0);
    assert_eq!(c.scanned_secondary, c.scanned_primary);
}

#[test]
fn throttled_secondary_with_log_and_continue_orphans_every_throttled_write() {
    let _guard = lock("dynamodb");
    let run = run_bundled("dynamo-throttled-secondary.toml", |t| t);
    let c = run.checker();
    assert_eq!(run.code, 1, "{}", run.explain());
    let throttled = |e: &HistoryEntry| {
        e.primary == SideOutcome::Ok
            && e.secondary == SideOutcome::Fail
            && e.error.as_deref() == Some("ProvisionedThroughputExceededException")
    };
    let expected = run.count(throttled);
    assert!(expected > 0, "{}", run.explain());
    // Injected before sending: the write certainly did not land, so each throttled
    // operation is exactly one orphan, and the caller heard "ok" for it.
    assert_eq!(c.orphans, expected, "{}", run.explain());
    assert_eq!(c.lost_acks, expected);
    assert_eq!(
        run.count(|e| e.outcome == Outcome::Ok),
        run.history.len() as u64
    );
    assert_eq!(
        (c.ghosts, c.duplicates, c.mismatches, c.strays),
        (0, 0, 0, 0)
    );
    assert_eq!(
        run.result.workload.errors["ProvisionedThroughputExceededException"],
        expected
    );
    // rate = 0.5 over a 4 s window at 50/s: about 100 throttled writes.
    assert!((50..=150).contains(&expected), "{expected}");
    assert_eq!(c.attribution["orphans"].outside, 0, "{:?}", c.attribution);
}

#[test]
fn throttling_after_the_write_landed_is_harmless_with_idempotent_retries() {
    let _guard = lock("dynamodb");
    // The ambiguous write: the server applied the PutItem, the SDK hears throttling.
    let run = run_bundled("dynamo-throttled-secondary.toml", |t| {
        t.replace("when = \"before\"", "when = \"after\"").replace(
            "on_secondary_failure = \"log-and-continue\"",
            "on_secondary_failure = \"retry\"\nretries = 8\nbackoff = \"5ms\"",
        )
    });
    let c = run.checker();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0);
    // The fault did bite: retries of writes that had already landed (overwrites).
    assert!(run.result.workload.retries > 0, "{}", run.explain());
}

/// An error injected after the server applied the write replaces its answer: the
/// write landed, so the side is unknown, never fail (it used to be a 400 read as
/// "not applied": 41 secondary `fail`s whose events were in the table).
#[test]
fn an_error_injected_after_the_write_is_unknown_and_every_one_landed() {
    let _guard = lock("dynamodb");
    let run = run_bundled("dynamo-throttled-secondary.toml", |t| {
        t.replace("when = \"before\"", "when = \"after\"").replace(
            "on_secondary_failure = \"log-and-continue\"",
            "on_secondary_failure = \"fail\"",
        )
    });
    let c = run.checker();
    let injected =
        |e: &HistoryEntry| e.error.as_deref() == Some("ProvisionedThroughputExceededException");
    let hit = run.count(injected);
    assert!(hit > 0, "{}", run.explain());
    assert_eq!(
        run.count(|e| injected(e) && e.secondary != SideOutcome::Unknown),
        0,
        "{}",
        run.explain()
    );
    // Every one of them landed: nothing diverged, and the checker found both
    // sides for each unknown operation.
    assert_eq!(c.divergence, 0, "{}", run.explain());
    assert_eq!(c.ambiguous_unknown.both, hit, "{}", run.explain());
    assert_eq!(run.count(|e| e.outcome == Outcome::Fail), 0);
    // Each injected error is counted in the result.
    assert_eq!(run.result.faults_injected["sdk-error@secondary"], hit);
}

#[test]
fn token_misuse_duplicates_every_retry_of_a_committed_transaction() {
    let _guard = lock("dynamodb");
    let run = run_bundled("dynamo-token-misuse.toml", |t| t);
    let c = run.checker();
    assert_eq!(run.code, 1, "{}", run.explain());
    let retries: u64 = run.history.iter().map(|e| u64::from(e.retries)).sum();
    assert!(c.duplicates > 0, "{}", run.explain());
    // Orders are keyed by order id (a re-execution overwrites); events get a fresh
    // id per attempt, so every extra event is a duplicate.
    assert_eq!(c.duplicates, c.scanned_secondary - c.scanned_primary);
    assert_eq!((c.orphans, c.ghosts, c.lost_acks), (0, 0, 0));
    // Each duplicate is a retry whose earlier attempt committed with its answer
    // lost. The rare retry that follows moto's own HTTP 500 (its transactions are
    // not thread-safe; such an attempt did not commit) makes no duplicate, so
    // duplicates can fall short of the retries, never exceed them.
    assert!(c.duplicates <= retries, "{} > {retries}", c.duplicates);
    assert!(
        run.result
            .server
            .not_exercised
            .iter()
            .any(|n| n.contains("ClientRequestToken"))
    );
}

const NON_IDEMPOTENT_RETRY: &str = r#"
name = "e2e-dynamo-nonidempotent-retry"
seed = 7
[target]
store = "dynamodb"
[pattern]
name = "naive"
on_secondary_failure = "retry"
secondary_key = "fresh"
retries = 2
backoff = "20ms"
[workload]
rate = 20
duration = "5s"
concurrency = 32
op_timeout = "500ms"
[[faults]]
kind = "latency"
side = "secondary"
direction = "downstream"
latency = "1500ms"
start = "2s"
duration = "1s"
"#;

#[test]
fn non_idempotent_retry_of_the_secondary_write_duplicates_at_most_once_per_retry() {
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let run = s.run(&s.write("retry.toml", NON_IDEMPOTENT_RETRY));
    let c = run.checker();
    assert_eq!(run.code, 1, "{}", run.explain());
    // Downstream latency past the op timeout: each retry follows a timed-out
    // PutItem that may or may not have landed (a request still unread when the
    // client gave up can be dropped with its connection), and writes a fresh
    // event id. So each extra copy is one retry whose predecessor landed: at most
    // one duplicate per retry, and how many is what the scan says, not luck.
    let retries: u64 = run.history.iter().map(|e| u64::from(e.retries)).sum();
    assert!(retries > 0, "{}", run.explain());
    assert!(
        c.duplicates > 0 && c.duplicates <= retries,
        "{}",
        run.explain()
    );
    // Every event on the secondary is one order's copy: one per order that has
    // any, plus the duplicates.
    assert_eq!(
        c.scanned_secondary,
        c.scanned_primary - c.orphans + c.duplicates,
        "{}",
        run.explain()
    );
    // An order with no event is one none of whose attempts was acknowledged.
    let unacknowledged = run.count(|e| e.secondary == SideOutcome::Unknown);
    assert!(c.orphans <= unacknowledged, "{}", run.explain());
    for id in c.samples.get("orphans").into_iter().flatten() {
        let e = run
            .history
            .iter()
            .find(|e| dualwrite::order::order_key(e.id) == *id)
            .unwrap();
        assert_eq!(e.secondary, SideOutcome::Unknown, "{e:?}");
    }
    assert_eq!((c.ghosts, c.mismatches), (0, 0));
}

const CONFLICTS: &str = r#"
name = "e2e-dynamo-conflict-drop"
seed = 11
[target]
store = "dynamodb"
[pattern]
name = "transaction"
on_conflict = "drop"
retries = 5
backoff = "10ms"
[workload]
rate = 25
duration = "5s"
concurrency = 8
op_timeout = "1s"
# moto never raises TransactionConflictException: inject it in the SDK, before
# sending (a conflict cancels the whole transaction, so nothing is applied).
[[faults]]
kind = "sdk-error"
side = "primary"
error = "TransactionConflictException"
when = "before"
rate = 0.3
start = "1s"
duration = "3s"
"#;

#[test]
fn log_and_drop_on_conflict_loses_every_conflicted_order_retry_loses_none() {
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let run = s.run(&s.write("drop.toml", CONFLICTS));
    let c = run.checker();
    assert_eq!(run.code, 1, "{}", run.explain());
    let dropped = run.count(|e| {
        e.outcome == Outcome::Ok
            && e.primary == SideOutcome::Fail
            && e.error.as_deref() == Some("TransactionConflictException")
    });
    assert!(dropped > 0, "{}", run.explain());
    // Dropped after logging, answered "ok": missing on both sides, a lost ack each.
    assert_eq!(c.lost_acks, dropped, "{}", run.explain());
    assert_eq!((c.orphans, c.ghosts, c.duplicates), (0, 0, 0));
    assert_eq!(c.scanned_primary, all_ok(&run) - dropped);
    assert_eq!(run.result.workload.retries, 0, "drop never retries");

    let run = s.run(&s.write(
        "retry.toml",
        &CONFLICTS.replace("on_conflict = \"drop\"", "on_conflict = \"retry\""),
    ));
    let c = run.checker();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0);
    assert!(run.result.workload.retries > 0, "{}", run.explain());
}

/// dynamo-streams with its relay-side outage replaced by SDK-injected 500s on the
/// relay's own calls, answered after the server applied them: its Streams reads
/// (the relay side) and its events writes (it publishes through the secondary side).
fn relay_sdk_errors(text: String, idempotent: bool) -> String {
    let fault = ["relay", "secondary"].map(|side| format!("[[faults]]\nkind = \"sdk-error\"\nside = \"{side}\"\nerror = \"InternalServerError\"\nwhen = \"after\"\nrate = 0.2\nstart = \"2s\"\nduration = \"3s\"\n")).concat();
    let start = text.find("[[faults]]").unwrap();
    let end = text.find("[check]").unwrap();
    format!("{}{fault}\n{}", &text[..start], &text[end..])
        .replace("idempotent = true", &format!("idempotent = {idempotent}"))
}

#[test]
fn sdk_errors_reach_the_relays_streams_reads_and_its_events_writes() {
    let _guard = lock("dynamodb");
    let run = run_bundled("dynamo-streams.toml", |t| relay_sdk_errors(t, true));
    let c = run.checker();
    let r = relay(&run).stats.clone();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0);
    assert!(r.errors > 0, "the relay saw the injected errors: {r:?}");
    // The client side was untouched (it writes the primary only), and every
    // injected error is counted in the result.
    assert_eq!(run.result.workload.ops.ok, run.result.workload.ops.total);
    let injected = &run.result.faults_injected;
    assert!(injected["sdk-error@relay"] > 0, "{injected:?}");
    assert!(injected["sdk-error@secondary"] > 0, "{injected:?}");
    assert_ttc(&run);

    let run = run_bundled("dynamo-streams.toml", |t| relay_sdk_errors(t, false));
    let c = run.checker();
    let r = relay(&run).stats.clone();
    assert_eq!(run.code, 1, "{}", run.explain());
    // An events PutItem that landed but was answered 500 is replayed under a new
    // id: each duplicate is one such relay error (reads that failed replay nothing).
    assert!(c.duplicates > 0, "{}", run.explain());
    assert_eq!(c.duplicates, c.scanned_secondary - c.scanned_primary);
    assert!(c.duplicates <= r.errors, "{} > {r:?}", c.duplicates);
    assert_eq!((c.orphans, c.ghosts, c.lost_acks), (0, 0, 0));
}

/// The outbox re-arm hazard (scenarios/dynamo-outbox-rearm.toml) and its fix: a
/// conditional put that never re-arms a published order.
#[test]
fn an_outbox_retry_re_arms_a_published_order_only_when_the_put_is_unconditional() {
    let _guard = lock("dynamodb");
    let run = run_bundled("dynamo-outbox-rearm.toml", |t| t);
    let c = run.checker();
    let stats = relay(&run).stats.clone();
    assert_eq!(run.code, 1, "{}", run.explain());
    assert!(stats.rearmed > 0, "{stats:?}: {}", run.explain());
    assert!(c.duplicates >= stats.rearmed, "{}", run.explain());
    assert_eq!(
        (c.orphans, c.ghosts, c.lost_acks),
        (0, 0, 0),
        "{}",
        run.explain()
    );
    // Every duplicated order has its cause: re-armed (or moto's record of an
    // unchanged put), none outside and none blamed on the fault window.
    let a = &c.attribution["duplicates"];
    assert!(a.causes.values().sum::<u64>() > 0, "{a:?}");
    assert!(
        a.windows.is_empty() && a.recovery.is_empty() && a.outside == 0,
        "{a:?}"
    );
    assert!(a.causes[dualwrite::relay::REARMED] > 0, "{a:?}");

    let run = run_bundled("dynamo-outbox-rearm.toml", |t| {
        t.replace("rearm = true", "rearm = false")
    });
    let c = run.checker();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0, "{}", run.explain());
    assert_eq!(relay(&run).stats.rearmed, 0);
    // The refused retries after lost answers proved the first put landed.
    assert!(run.result.workload.retries > 0, "{}", run.explain());
    assert_eq!(run.result.workload.ops.fail, 0, "{}", run.explain());
}
