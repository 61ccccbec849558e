//! Cassandra (5.0, one node) behind Toxiproxy: issue 5's must-shows.

use std::time::{Duration, Instant};

use dualwrite::fault::toxiproxy::Toxiproxy;
use dualwrite::history::SideOutcome;
use dualwrite::scenario::Side;
use dualwrite::store::cassandra::CassandraStore;
use dualwrite::store::{StoreContext, resolve_endpoints};

use crate::common::*;

const NAIVE: &str = r#"
name = "e2e-cassandra-naive"
seed = 7
[target]
store = "cassandra"
[pattern]
name = "naive"
on_secondary_failure = "log-and-continue"
[workload]
rate = 50
duration = "6s"
op_timeout = "1s"
[[faults]]
kind = "down"
side = "secondary"
start = "2s"
duration = "2s"
"#;

const OUTBOX: &str = r#"
name = "e2e-cassandra-outbox"
seed = 7
[target]
store = "cassandra"
[pattern]
name = "outbox"
retries = 5
backoff = "50ms"
[pattern.relay]
workers = 2
idempotent = false
poll_interval = "50ms"
claim_ttl = "1s"
[workload]
rate = 50
duration = "6s"
op_timeout = "1s"
[[faults]]
kind = "down"
side = "primary"
start = "1s"
duration = "1500ms"
[[faults]]
kind = "relay-crash"
start = "3s"
duration = "1s"
[check]
settle = "20s"
"#;

/// Issue 5, item 6: the driver learns 127.0.0.1:9042 from system.local, yet with
/// the side's proxy disabled every query of that side's session fails (quickly),
/// the other sides keep working, and re-enabling brings the side back.
#[test]
fn every_session_goes_through_its_own_proxy() {
    let _guard = lock("cassandra");
    block_on(sessions_go_through_their_proxies());
}

/// Runs a future on a fresh runtime, so a test can hold the store lock (a std
/// mutex) outside any `await`.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn sessions_go_through_their_proxies() {
    let scenario = parse(NAIVE);
    let toxiproxy = Toxiproxy::new(&scenario.target.toxiproxy);
    let endpoints = resolve_endpoints(&scenario.target, &toxiproxy)
        .await
        .unwrap();
    let store = CassandraStore::connect(StoreContext {
        scenario: scenario.clone(),
        namespace: "dualwrite_proxycheck".into(),
        server: "cassandra".into(),
        endpoints,
    })
    .await
    .expect("cassandra reachable (scripts/stack up)");
    for side in Side::ALL {
        let proxy = format!("cassandra_{side}");
        store.ping(side).await.unwrap();
        toxiproxy.set_enabled(&proxy, false).await.unwrap();
        // Several queries, so that every connection of the pool is exercised.
        let mut while_down = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(5), store.ping(side)).await;
            while_down.push((r.map(|r| r.is_err()).unwrap_or(false), start.elapsed()));
        }
        let others: Vec<bool> = {
            let mut v = Vec::new();
            for other in Side::ALL.into_iter().filter(|s| *s != side) {
                v.push(store.ping(other).await.is_ok());
            }
            v
        };
        toxiproxy.set_enabled(&proxy, true).await.unwrap();
        let back = Instant::now();
        let mut recovered = false;
        while back.elapsed() < Duration::from_secs(20) {
            if store.ping(side).await.is_ok() {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (failed, took) in &while_down {
            assert!(failed, "{side}: a query succeeded with {proxy} disabled");
            assert!(*took < Duration::from_secs(2), "{side}: took {took:?}");
        }
        assert!(
            others.iter().all(|ok| *ok),
            "{side} down broke another side"
        );
        assert!(
            recovered,
            "{side}: no recovery 20s after re-enabling {proxy}"
        );
    }
}

#[test]
fn naive_orphans_equal_the_history_primary_ok_secondary_failed() {
    let _guard = lock("cassandra");
    let s = Scratch::new();
    let run = s.run(&s.write("naive.toml", NAIVE));
    let c = run.checker();
    assert_eq!(run.code, 1, "{}", run.explain());
    assert!(c.orphans > 0, "{}", run.explain());
    // Down = no connection: those secondary inserts were never sent (`fail`), each an
    // orphan. The requests in flight when the proxy closed its connections are
    // `unknown`: they may have landed. The orphans are exactly the failed ones plus
    // the unknown ones that did not land.
    let failed = run.count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Fail);
    let unknown =
        run.count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Unknown);
    assert!(failed > 0, "{}", run.explain());
    assert!(
        (failed..=failed + unknown).contains(&c.orphans),
        "orphans {} vs {failed} failed + {unknown} unknown: {}",
        c.orphans,
        run.explain()
    );
    assert_eq!(
        c.scanned_secondary,
        run.count(|e| e.secondary == SideOutcome::Ok) + (failed + unknown - c.orphans),
        "{}",
        run.explain()
    );
    // log-and-continue told the caller "ok" for every orphan: each is a lost ack.
    assert_eq!(c.lost_acks, c.orphans);
    assert_eq!(
        (c.ghosts, c.duplicates, c.mismatches, c.strays),
        (0, 0, 0, 0)
    );
    assert_eq!(
        c.scanned_primary,
        run.count(|e| e.primary == SideOutcome::Ok)
    );
    assert!(run.result.complete);
}

#[test]
fn same_partition_logged_batch_has_zero_divergence_under_the_same_fault() {
    let _guard = lock("cassandra");
    let s = Scratch::new();
    let text = NAIVE
        .replace("e2e-cassandra-naive", "e2e-cassandra-batch-same")
        .replace(
            "name = \"naive\"\non_secondary_failure = \"log-and-continue\"",
            "name = \"logged-batch\"\npartitioning = \"same\"\nretries = 5\nbackoff = \"50ms\"",
        )
        .replace("side = \"secondary\"", "side = \"primary\"");
    let run = s.run(&s.write("batch.toml", &text));
    let c = run.checker();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0);
    let w = &run.result.workload;
    assert!(
        w.ops.fail + w.ops.unknown + w.retries > 0,
        "the fault did not bite: {}",
        run.explain()
    );
    // Both tables hold exactly the acknowledged orders (plus unknowns that landed whole).
    let landed = c.ambiguous_unknown.both + c.ambiguous_fail.both;
    assert_eq!(c.scanned_primary, w.ops.ok + landed, "{}", run.explain());
    assert_eq!(c.scanned_secondary, c.scanned_primary);
}

#[test]
fn outbox_with_two_lwt_claiming_workers_never_double_publishes() {
    let _guard = lock("cassandra");
    let s = Scratch::new();
    let run = s.run(&s.write("outbox.toml", OUTBOX));
    let c = run.checker();
    let relay = &run.result.relay.as_ref().expect("relay stats").stats;
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0, "{}", run.explain());
    assert!(relay.drained, "{relay:?}");
    assert_eq!(relay.workers, 2);
    // With a fresh event id per publication, a double publication would be a second
    // row: each order is in events exactly once, and published exactly once.
    assert_eq!(c.scanned_secondary, c.scanned_primary, "{}", run.explain());
    assert_eq!(relay.delivered, c.scanned_primary, "{relay:?}");
    let w = &run.result.workload;
    assert!(
        w.ops.fail + w.ops.unknown + w.retries > 0,
        "{}",
        run.explain()
    );
    assert_eq!(relay.fault_crashes, 1);
}

#[test]
fn outbox_crash_between_publish_and_mark_duplicates_exactly_once_per_crash() {
    let _guard = lock("cassandra");
    let s = Scratch::new();
    let text = OUTBOX
        .replace("e2e-cassandra-outbox", "e2e-cassandra-outbox-crash")
        .replace("workers = 2", "workers = 1\ncrash_every = 7")
        .replace("duration = \"6s\"", "duration = \"4s\"");
    // No network faults: only the relay's own crashes.
    let text = text.split("[[faults]]").next().unwrap().to_string() + "[check]\nsettle = \"30s\"\n";
    let run = s.run(&s.write("crash.toml", &text));
    let c = run.checker();
    let relay = &run.result.relay.as_ref().expect("relay stats").stats;
    assert_eq!(run.code, 1, "{}", run.explain());
    assert!(relay.drained, "{relay:?}");
    assert!(relay.self_crashes > 0, "{relay:?}");
    // Each crash leaves a claimed, unmarked entry: retaken after claim_ttl and
    // published again with a fresh event id, one extra row per crash.
    assert_eq!(c.duplicates, relay.self_crashes, "{}", run.explain());
    assert_eq!(relay.delivered, c.scanned_primary + relay.self_crashes);
    assert_eq!(c.scanned_secondary, c.scanned_primary + c.duplicates);
    assert_eq!(c.scanned_primary, run.result.workload.ops.ok);
    assert_eq!(
        (c.orphans, c.ghosts, c.mismatches, c.lost_acks, c.strays),
        (0, 0, 0, 0, 0)
    );
}

#[test]
fn checker_counts_planted_divergence_exactly() {
    // Another test may take this store's proxies down meanwhile.
    let _guard = lock("cassandra");
    // The outbox pattern's secondary side is `events`, keyed (order_id, event_id):
    // a second copy of an order is a second row there.
    block_on(planted_divergence_is_counted_exactly(
        parse(OUTBOX),
        SideOutcome::Async,
        "cassandra",
    ));
}

#[test]
fn naive_with_lwt_insert_writes_each_order_once() {
    let _guard = lock("cassandra");
    let s = Scratch::new();
    let text = NAIVE
        .replace("e2e-cassandra-naive", "e2e-cassandra-lwt")
        .replace(
            "on_secondary_failure = \"log-and-continue\"",
            "on_secondary_failure = \"retry\"\nlwt_insert = true",
        )
        .replace("duration = \"6s\"", "duration = \"2s\"");
    let text = text.split("[[faults]]").next().unwrap().to_string();
    let run = s.run(&s.write("lwt.toml", &text));
    let c = run.checker();
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.result.workload.ops.ok, 100, "{}", run.explain());
    assert_eq!((c.scanned_primary, c.scanned_secondary), (100, 100));
    assert_eq!(c.divergence, 0);
}

/// A downstream latency longer than `op_timeout` on the secondary: the insert
/// reaches Cassandra, the answer comes too late. Every such write is `unknown`,
/// and every one of them landed: ambiguous, not an orphan.
#[test]
fn secondary_timeouts_are_unknown_and_landed() {
    let _guard = lock("cassandra");
    let s = Scratch::new();
    let text = NAIVE
        .replace("e2e-cassandra-naive", "e2e-cassandra-timeout")
        .replace("log-and-continue", "fail")
        .replace("duration = \"6s\"", "duration = \"5s\"")
        // Removing the toxic releases what it held: the window must outlast the
        // latency for answers to arrive after op_timeout.
        .replace(
            "kind = \"down\"",
            "kind = \"latency\"\nlatency = \"1500ms\"\ndirection = \"downstream\"",
        );
    let run = s.run(&s.write("timeout.toml", &text));
    let c = run.checker();
    let unknown = run.count(|e| e.secondary == SideOutcome::Unknown);
    assert!(unknown > 0, "{}", run.explain());
    assert_eq!(
        run.result.workload.errors.get("timeout").copied(),
        Some(unknown),
        "{}",
        run.explain()
    );
    assert_eq!(c.ambiguous_unknown.both, unknown, "{}", run.explain());
    assert_eq!(c.divergence, 0, "{}", run.explain());
    assert_eq!(run.code, 0);
}

/// A repeating `reset_peer` on the secondary: the driver reconnects after each
/// window, and writes issued meanwhile fail. They are attributed to that
/// window's recovery tail (from its end until the side's first success), which
/// each window records, not to "outside" (issue: 97 of 261 were).
#[test]
fn divergence_while_the_driver_reconnects_is_in_the_windows_recovery_tail() {
    let _guard = lock("cassandra");
    let s = Scratch::new();
    let text = r#"
name = "e2e-cassandra-reset-peer"
seed = 4
[target]
store = "cassandra"
[pattern]
name = "naive"
on_secondary_failure = "log-and-continue"
[workload]
rate = 50
duration = "8s"
op_timeout = "1s"
[[faults]]
kind = "reset_peer"
side = "secondary"
timeout = "0ms"
start = "1s"
duration = "300ms"
every = "2s"
"#;
    let run = s.run(&s.write("reset.toml", text));
    let c = run.checker();
    assert_eq!(run.code, 1, "{}", run.explain());
    let windows = &run.result.faults;
    assert_eq!(windows.len(), 4);
    for w in windows {
        let (end, recovered) = (w.end_s.unwrap(), w.recovered_s.unwrap());
        assert!(recovered >= end, "{w:?}");
    }
    // The checker's tail counts agree with the history: a lost ack whose
    // operation overlaps no window but a window's recovery tail is counted there.
    // Certainly lost: the second write refused; possibly: it is unknown (the
    // scan decides), so the history bounds each tail's count.
    let a = &c.attribution["lost_acks"];
    let ms = |us: u64| (us / 1000) as f64 / 1000.0;
    let in_tail = |w: &dualwrite::result::FaultWindow, e: &dualwrite::history::HistoryEntry| {
        let (from, to) = (ms(e.intended_us), ms(e.end_us) + 0.001);
        let in_any = windows
            .iter()
            .any(|x| from < x.end_s.unwrap() && to >= x.start_s.unwrap());
        !in_any && from < w.recovered_s.unwrap() && to >= w.end_s.unwrap()
    };
    for w in windows {
        let certain = run.count(|e| e.secondary == SideOutcome::Fail && in_tail(w, e));
        let possible = run.count(|e| e.secondary != SideOutcome::Ok && in_tail(w, e));
        let counted = a.recovery.get(&w.label()).copied().unwrap_or(0);
        assert!(
            (certain..=possible).contains(&counted),
            "{}: {certain}..={possible} vs {counted}: {a:?}",
            w.label()
        );
    }
    assert!(
        a.recovery.values().sum::<u64>() > 0,
        "no recovery tail: {a:?}"
    );
    assert_eq!(
        a.windows.values().sum::<u64>() + a.recovery.values().sum::<u64>() + a.outside,
        c.lost_acks,
        "{a:?}"
    );
}
