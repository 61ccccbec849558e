//! MongoDB wire servers (FerretDB, mongoeco) behind Toxiproxy: the bundled
//! scenarios' verdicts, checked against the history.

use dualwrite::history::{Outcome, SideOutcome};

use crate::common::*;

/// A bundled scenario, shortened for the suite and renamed so results do not mix.
fn bundled(file: &str, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(repo().join("scenarios").join(file)).unwrap();
    edit(text.replace("name = \"mongo-", "name = \"e2e-mongo-"))
}

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
    let c = &run.result.checker;
    assert_eq!(run.code, 1, "{}", run.explain());
    assert!(c.orphans > 0, "{}", run.explain());
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
    assert_eq!(run.result.server.product, "ferretdb");
}

#[test]
fn transaction_on_mongoeco_has_zero_divergence_under_its_faults() {
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let run = s.run(&s.write("t.toml", &bundled("mongo-transaction.toml", |t| t)));
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.result.checker.divergence, 0);
    let w = &run.result.workload;
    assert!(
        w.retries + w.ops.fail + w.ops.unknown > 0,
        "the faults bit: {}",
        run.explain()
    );
    assert_eq!(
        run.result.server.capabilities.get("transactions"),
        Some(&true)
    );
}

#[test]
fn outbox_with_the_polling_relay_converges_after_settle() {
    let _guard = lock("mongodb");
    let s = Scratch::new();
    // Without the bundled scenario's faults: with a relay-side outage and a relay
    // crash in the schedule the polling relay is left with pending entries after
    // the settle time (an open bug, see the issue note), so that case is not yet
    // part of the suite.
    let run = s.run(&s.write(
        "o.toml",
        &bundled("mongo-outbox.toml", |t| {
            t[..t.find("[[faults]]").unwrap()].to_string() + &t[t.find("[check]").unwrap()..]
        }),
    ));
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.result.checker.divergence, 0);
    let relay = run.result.relay.as_ref().expect("relay figures");
    assert!(
        relay.stats.drained && relay.stats.delivered > 0,
        "{relay:?}"
    );
    assert!(relay.time_to_consistency_ms.count > 0);
}

#[test]
fn change_streams_on_a_server_without_them_stop_before_the_run() {
    let s = Scratch::new();
    let text = bundled("mongo-streams.toml", |t| {
        t.replace("server = \"mongodb\"", "server = \"ferretdb\"")
    });
    let out = s.dualwrite(&["run", s.write("s.toml", &text).to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("change stream")
            && err.contains("ferretdb")
            && err.contains("docker/compose.yml"),
        "{err}"
    );
}
