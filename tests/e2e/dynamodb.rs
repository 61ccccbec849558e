//! DynamoDB (moto behind Toxiproxy): the vertical slice's must-shows.

use dualwrite::history::SideOutcome;

use crate::common::*;

const NAIVE: &str = r#"
name = "e2e-dynamo-naive"
seed = 7
[target]
store = "dynamodb"
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

#[test]
fn naive_orphans_equal_the_history_primary_ok_secondary_failed() {
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let run = s.run(&s.write("naive.toml", NAIVE));
    let c = run.checker();
    assert_eq!(run.code, 1, "{}", run.explain());
    assert!(c.orphans > 0, "{}", run.explain());
    // Down = connection refused: those secondary writes certainly did not land.
    // A request in flight when the proxy closed is `unknown`: it may have landed.
    let failed = run.count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Fail);
    let unknown =
        run.count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Unknown);
    assert!(
        (failed..=failed + unknown).contains(&c.orphans),
        "{failed}+{unknown}: {}",
        run.explain()
    );
    // Exactly: the unknowns that did not land are orphans too.
    let landed_unknowns = c.scanned_secondary - run.count(|e| e.secondary == SideOutcome::Ok);
    assert_eq!(
        c.orphans,
        failed + unknown - landed_unknowns,
        "{}",
        run.explain()
    );
    // log-and-continue told the caller "ok" for each of them: every orphan is a lost ack.
    assert_eq!(run.result.workload.ops.ok, run.result.workload.ops.total);
    assert_eq!(c.lost_acks, c.orphans);
    assert_eq!(
        (c.ghosts, c.duplicates, c.mismatches, c.strays),
        (0, 0, 0, 0)
    );
    // Every orphan fell inside the fault window or its recovery tail.
    assert_eq!(c.attribution["orphans"].outside, 0, "{:?}", c.attribution);
    // The recorded window is what the history shows: never opened early, and
    // every refused write happened while it was in force (how late it opened on
    // a loaded machine is the nemesis's business, measured, not asserted).
    let w = &run.result.faults[0];
    let (start, end) = (w.start_s.unwrap(), w.end_s.unwrap());
    assert!(start >= w.planned_start_s, "{w:?}");
    for e in run
        .history
        .iter()
        .filter(|e| e.secondary == SideOutcome::Fail)
    {
        assert!(
            e.end_us as f64 / 1e6 >= start && e.intended_us as f64 / 1e6 <= end,
            "refused outside the recorded window: {e:?} vs {w:?}"
        );
    }
    assert!(run.result.complete);
}

#[test]
fn transaction_under_the_same_fault_has_zero_divergence() {
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let text = NAIVE
        .replace(
            "name = \"e2e-dynamo-naive\"",
            "name = \"e2e-dynamo-transaction\"",
        )
        .replace(
            "name = \"naive\"\non_secondary_failure = \"log-and-continue\"",
            "name = \"transaction\"\nretries = 5\nbackoff = \"50ms\"",
        )
        .replace("side = \"secondary\"", "side = \"primary\"");
    let run = s.run(&s.write("tx.toml", &text));
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.checker().divergence, 0);
    // The fault did bite: some operations failed, were unknown or retried.
    let w = &run.result.workload;
    assert!(
        w.ops.fail + w.ops.unknown + w.retries > 0,
        "{}",
        run.explain()
    );
}

#[tokio::test]
async fn checker_counts_planted_divergence_exactly() {
    planted_divergence_is_counted_exactly(parse(NAIVE), SideOutcome::Ok, "dynamodb").await;
}

#[test]
fn ctrl_c_in_a_fault_window_restores_proxies_and_marks_the_result_incomplete() {
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let text = NAIVE
        .replace("e2e-dynamo-naive", "e2e-dynamo-interrupt")
        .replace("duration = \"6s\"", "duration = \"30s\"")
        .replace("kind = \"down\"", "kind = \"latency\"\nlatency = \"300ms\"")
        .replace(
            "start = \"2s\"\nduration = \"2s\"",
            "start = \"1s\"\nduration = \"20s\"",
        );
    let file = s.write("int.toml", &text);
    let mut child = std::process::Command::new(bin())
        .args(["run", file.to_str().unwrap(), "--quiet", "--results-dir"])
        .arg(s.results())
        .current_dir(repo())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (_, toxics) = proxy_state("dynamodb_secondary");
    assert_eq!(toxics.len(), 1, "the latency toxic is in force mid-window");
    let sent = std::time::Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(
        sent.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    for proxy in ["dynamodb_primary", "dynamodb_secondary"] {
        assert_eq!(proxy_state(proxy), (true, vec![]), "{proxy} restored");
    }
    let result =
        dualwrite::result::RunResult::read(&s.results().join("e2e-dynamo-interrupt/latest"))
            .unwrap();
    assert!(!result.complete);
    assert!(result.workload.ops.total < 1500, "the load stopped early");
}
