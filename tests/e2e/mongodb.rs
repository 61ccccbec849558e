//! MongoDB wire servers (FerretDB and mongoeco behind Toxiproxy): the issue's
//! must-shows and the bundled scenarios' verdicts, checked against the history.
//! Tests that fault the mongo proxies or set fail points hold `lock("mongodb")`.

use dualwrite::history::{Outcome, SideOutcome};

use crate::common::*;

/// A bundled scenario, renamed so results do not mix, edited for the suite.
fn bundled(file: &str, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(repo().join("scenarios").join(file)).unwrap();
    edit(text.replace("name = \"mongo-", "name = \"e2e-mongo-"))
}

const NAIVE: &str = r#"
name = "e2e-mongo-naive"
seed = 7
[target]
store = "mongodb"
server = "ferretdb"
[pattern]
name = "naive"
on_secondary_failure = "log-and-continue"
[workload]
rate = 50
duration = "5s"
op_timeout = "1s"
[[faults]]
kind = "down"
side = "secondary"
start = "1500ms"
duration = "2s"
"#;

#[test]
fn naive_orphans_equal_the_history_on_ferretdb() {
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let run = s.run(&s.write(
        "n.toml",
        &bundled("mongo-naive.toml", |t| {
            t.replace("duration = \"10s\"", "duration = \"7s\"")
        }),
    ));
    let c = run.checker();
    assert_eq!(run.code, 1, "{}", run.explain());
    assert!(c.orphans > 0, "{}", run.explain());
    // Refused / no server to select: certainly not written. A write cut mid-flight
    // (unknown) may have landed: the scan says how many did.
    let failed = run.count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Fail);
    let unknown =
        run.count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Unknown);
    let landed_unknowns = c.scanned_secondary - run.count(|e| e.secondary == SideOutcome::Ok);
    assert_eq!(
        c.orphans,
        failed + unknown - landed_unknowns,
        "{}",
        run.explain()
    );
    // log-and-continue told the caller "ok" for each of them.
    assert_eq!(
        run.count(|e| e.outcome != Outcome::Ok),
        0,
        "log-and-continue answers ok"
    );
    assert_eq!(c.lost_acks, c.orphans);
    assert_eq!(
        (c.ghosts, c.duplicates, c.mismatches, c.strays),
        (0, 0, 0, 0)
    );
    assert_eq!(c.attribution["orphans"].outside, 0, "{:?}", c.attribution);
    // The server and what it lacks are in the result.
    let server = &run.result.server;
    assert_eq!(server.product, "ferretdb");
    assert_eq!(server.capabilities.get("transactions"), Some(&false));
    assert_eq!(server.capabilities.get("change_streams"), Some(&false));
}

const TRANSACTION: &str = r#"
name = "e2e-mongo-transaction"
seed = 7
[target]
store = "mongodb"
server = "mongoeco"
[pattern]
name = "transaction"
retries = 6
backoff = "50ms"
[workload]
rate = 20
duration = "6s"
concurrency = 16
op_timeout = "1s"
[[faults]]
kind = "down"
side = "primary"
start = "1s"
duration = "1500ms"
[[faults]]
kind = "reset_peer"
side = "primary"
direction = "downstream"
start = "4s"
duration = "500ms"
"#;

#[test]
fn transaction_under_network_faults_has_zero_divergence_and_shows_retries() {
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let run = s.run(&s.write("tx.toml", TRANSACTION));
    let c = run.checker();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0, "{}", run.explain());
    let w = &run.result.workload;
    assert!(w.retries > 0, "{}", run.explain());
    assert_eq!(
        w.retries,
        run.history
            .iter()
            .map(|e| u64::from(e.retries))
            .sum::<u64>()
    );
    // Atomic: whatever an operation's answer, both documents landed or neither.
    assert_eq!(
        c.ambiguous_fail.primary_only + c.ambiguous_fail.secondary_only,
        0
    );
    assert_eq!(
        c.ambiguous_unknown.primary_only + c.ambiguous_unknown.secondary_only,
        0
    );
    assert_eq!(c.scanned_primary, c.scanned_secondary);
    assert_eq!(
        run.result.server.capabilities.get("transactions"),
        Some(&true)
    );
}

#[test]
fn transaction_under_fail_command_transient_errors_has_zero_divergence() {
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let text = TRANSACTION
        .replace("e2e-mongo-transaction", "e2e-mongo-failcommand")
        .split("[[faults]]")
        .next()
        .unwrap()
        .to_string()
        + r#"
[[faults]]
kind = "fail-command"
side = "primary"
commands = ["insert"]
error_code = 112
error_labels = ["TransientTransactionError"]
start = "1s"
duration = "1s"
[[faults]]
kind = "fail-command"
side = "primary"
commands = ["insert"]
error_code = 91
close_connection = true
start = "3s"
duration = "1s"
"#;
    let run = s.run(&s.write("fc.toml", &text));
    let c = run.checker();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0, "{}", run.explain());
    assert!(run.result.workload.retries > 0, "{}", run.explain());
    for f in &run.result.faults {
        assert!(
            f.start_s.is_some() && f.end_s.is_some() && f.error.is_none(),
            "{f:?}"
        );
    }
    // Operations inside the insert window were retried.
    let in_window = run.count(|e| (1_000_000..1_900_000).contains(&e.intended_us) && e.retries > 0);
    assert!(in_window > 0, "{}", run.explain());
    // A body cut by a closed connection (mongoeco answers it with a reply the
    // driver cannot read) never committed: retried, never left unknown.
    assert_eq!(
        run.count(|e| e.outcome == dualwrite::history::Outcome::Unknown),
        0,
        "{}",
        run.explain()
    );
    let in_closing_window =
        run.count(|e| (3_000_000..3_900_000).contains(&e.intended_us) && e.retries > 0);
    assert!(in_closing_window > 0, "{}", run.explain());
    assert_eq!(
        run.result.server.capabilities.get("fail_point"),
        Some(&true)
    );
}

const OUTBOX: &str = r#"
name = "e2e-mongo-outbox"
seed = 7
[target]
store = "mongodb"
server = "ferretdb"
[pattern]
name = "outbox"
[pattern.relay]
mode = "poll"
poll_interval = "50ms"
[workload]
rate = 50
duration = "5s"
op_timeout = "1s"
[[faults]]
kind = "down"
side = "relay"
start = "1s"
duration = "1s"
[[faults]]
kind = "relay-crash"
start = "3s"
duration = "1500ms"
[check]
settle = "15s"
"#;

/// The outbox run's common verdict: drained, zero divergence, every acknowledged
/// order published exactly once.
fn assert_outbox_converged(run: &Run) {
    let c = run.checker();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0, "{}", run.explain());
    let relay = run.result.relay.as_ref().expect("relay figures");
    assert!(
        relay.stats.drained && relay.stats.delivered > 0,
        "{relay:?}\n{}",
        run.explain()
    );
    assert!(relay.time_to_consistency_ms.count > 0, "{relay:?}");
    let ok = run.count(|e| e.outcome == Outcome::Ok);
    assert_eq!(c.scanned_secondary, ok, "{}", run.explain());
    assert_eq!(c.scanned_primary, c.scanned_secondary);
}

#[test]
fn outbox_with_polling_relay_and_relay_outage_converges_after_settle() {
    let _guard = lock("mongodb");
    let s = Scratch::new();
    // The bundled scenario without its relay-crash window: the relay's proxy is
    // down for 2 s mid-load.
    let run = s.run(&s.write(
        "o.toml",
        &bundled("mongo-outbox.toml", |t| {
            let crash = t.find("[[faults]]\nkind = \"relay-crash\"").unwrap();
            t[..crash].to_string() + &t[t.find("[check]").unwrap()..]
        }),
    ));
    assert_outbox_converged(&run);
    let relay = run.result.relay.as_ref().unwrap();
    assert_eq!(relay.stats.fault_crashes, 0, "{relay:?}");
    assert_eq!(run.result.faults.len(), 1, "{:?}", run.result.faults);
}

#[test]
fn outbox_with_polling_relay_and_relay_crash_has_zero_divergence_after_settle() {
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let run = s.run(&s.write("outbox.toml", OUTBOX));
    assert_outbox_converged(&run);
    let relay = run.result.relay.as_ref().unwrap();
    assert_eq!(relay.stats.fault_crashes, 1, "{relay:?}");
}

#[test]
fn outbox_self_crashing_relay_republishes_idempotently() {
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let text = OUTBOX
        .replace("e2e-mongo-outbox", "e2e-mongo-outbox-crash")
        .replace(
            "poll_interval = \"50ms\"",
            "poll_interval = \"50ms\"\ncrash_every = 40",
        )
        .replace("server = \"ferretdb\"", "server = \"mongoeco\"");
    let run = s.run(&s.write("outbox-crash.toml", &text));
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.checker().divergence, 0, "{}", run.explain());
    let relay = run.result.relay.as_ref().unwrap();
    assert!(relay.stats.self_crashes > 0, "{relay:?}");
}

/// Regression (f5b631a): with `crash_every` below the relay's batch (100) the batch
/// relay used to redo the same batch forever. A crash now falls between publishing
/// and marking one entry, so a non-idempotent relay writes exactly one extra event
/// per crash (more only if a step failed and was redone).
#[test]
fn outbox_relay_crashing_more_often_than_its_batch_drains_with_one_duplicate_per_crash() {
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let text = OUTBOX
        .replace("e2e-mongo-outbox", "e2e-mongo-outbox-crash-every")
        .replace(
            "poll_interval = \"50ms\"",
            "poll_interval = \"50ms\"\ncrash_every = 25\nidempotent = false",
        );
    let text = text[..text.find("[[faults]]").unwrap()].to_string() + "[check]\nsettle = \"20s\"\n";
    let run = s.run(&s.write("outbox-crash-every.toml", &text));
    let c = run.checker();
    let relay = run.result.relay.as_ref().expect("relay figures");
    assert!(relay.stats.drained, "{relay:?}\n{}", run.explain());
    assert!(relay.stats.self_crashes >= 5, "{relay:?}");
    assert_eq!((c.orphans, c.ghosts, c.mismatches), (0, 0, 0), "{c:?}");
    assert!(c.duplicates >= relay.stats.self_crashes, "{relay:?}\n{c:?}");
    if relay.stats.errors == 0 {
        assert_eq!(c.duplicates, relay.stats.self_crashes, "{relay:?}\n{c:?}");
    }
    assert_eq!(run.code, 1, "duplicates are divergence: {}", run.explain());
}

#[test]
fn streams_scenario_on_a_server_without_change_streams_exits_3_naming_the_capability() {
    // A run takes the proxies' run locks before probing: alone, or it could stop
    // with "in use by another dualwrite run" instead of the capability.
    let _guard = lock("mongodb");
    let s = Scratch::new();
    for server in ["ferretdb", "mongoeco"] {
        let text = bundled("mongo-streams.toml", |t| {
            t.replace("server = \"mongodb\"", &format!("server = \"{server}\""))
        });
        let file = s.write(&format!("streams-{server}.toml"), &text);
        let out = s.dualwrite(&["run", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{server}: {stderr}");
        assert!(stderr.contains("change streams"), "{stderr}");
        assert!(stderr.contains(&format!("`{server}`")), "{stderr}");
        assert!(stderr.contains("pattern `streams`"), "{stderr}");
        assert!(stderr.contains("docker/compose.yml"), "{stderr}");
    }
    // Outbox asking for a stream relay on FerretDB: same stop, with the poll way out.
    let text = OUTBOX
        .replace("mode = \"poll\"", "mode = \"stream\"")
        .replace("e2e-mongo-outbox", "e2e-mongo-outbox-stream");
    let file = s.write("outbox-stream.toml", &text);
    let out = s.dualwrite(&["run", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("`ferretdb`") && stderr.contains("relay.mode = \"poll\""),
        "{stderr}"
    );
}

#[test]
fn transaction_on_ferretdb_exits_3_naming_transactions() {
    // A run takes the proxies' run locks before probing: alone, or it could stop
    // with "in use by another dualwrite run" instead of the capability.
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let text = TRANSACTION.replace("server = \"mongoeco\"", "server = \"ferretdb\"");
    let file = s.write("tx-ferret.toml", &text);
    let out = s.dualwrite(&["run", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("needs transactions") && stderr.contains("`ferretdb`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn checker_counts_planted_divergence_exactly() {
    for server in ["ferretdb", "mongoeco"] {
        let scenario =
            parse(&NAIVE.replace("server = \"ferretdb\"", &format!("server = \"{server}\"")));
        planted_divergence_is_counted_exactly(scenario, SideOutcome::Ok, server).await;
    }
}

/// mongoeco accepts `configureFailPoint` but its wire layer handles
/// `commitTransaction` without consulting it: a commit window would fail nothing.
/// dualwrite proves each targeted command fails before the run, and stops.
#[test]
fn a_commit_fail_point_the_server_ignores_stops_the_run_before_the_load() {
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let text = TRANSACTION
        .replace("e2e-mongo-transaction", "e2e-mongo-commit-fp")
        .split("[[faults]]")
        .next()
        .unwrap()
        .to_string()
        + "[[faults]]\nkind = \"fail-command\"\nside = \"primary\"\ncommands = [\"commitTransaction\"]\nerror_code = 91\nerror_labels = [\"UnknownTransactionCommitResult\"]\nstart = \"1s\"\nduration = \"1s\"\n";
    let out = s.dualwrite(&["run", s.write("commit.toml", &text).to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("targets `commitTransaction`") && err.contains("ignores failCommand"),
        "{err}"
    );
    // Nothing ran: no operation in the history.
    let latest = s.results().join("e2e-mongo-commit-fp/latest");
    let (_, history) =
        dualwrite::history::History::read_jsonl(&latest.join("history.jsonl")).unwrap_or_default();
    assert!(history.is_empty());
}
