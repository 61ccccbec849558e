//! The whole engine — driver, nemesis, pattern engine, relay supervisor, checker,
//! verdict, result files — over the in-memory store, in-process: no servers, a
//! few seconds. Every assertion is what the history and the recorded windows
//! prove, never a timing guess. The same paths against real servers are in
//! tests/e2e.

use std::path::{Path, PathBuf};

use dualwrite::history::{History, HistoryEntry, Outcome, SideOutcome};
use dualwrite::result::{RunResult, Verdict};
use dualwrite::run::{RunOptions, run_scenario};
use dualwrite::scenario;

struct Ran {
    result: RunResult,
    history: Vec<HistoryEntry>,
    _dir: tempfile::TempDir,
}

impl Ran {
    fn count(&self, f: impl Fn(&HistoryEntry) -> bool) -> u64 {
        self.history.iter().filter(|e| f(e)).count() as u64
    }

    fn checker(&self) -> &dualwrite::checker::CheckerReport {
        self.result.checker.as_ref().expect("the checker ran")
    }
}

async fn run(text: &str) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario::parse(Path::new("engine.toml"), text).expect("valid scenario");
    let opts = RunOptions {
        results_dir: dir.path().to_path_buf(),
        quiet: true,
        verbose: false,
        check_on_interrupt: false,
        keep_data: false,
        stack_state: PathBuf::from(".stack"),
        stack_script: PathBuf::from("scripts/stack"),
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let (result, run_dir) = run_scenario(scenario, &opts, rx)
        .await
        .unwrap_or_else(|e| panic!("run failed: {e:#}"));
    // What is on disk is what the run returned.
    assert_eq!(RunResult::read(&run_dir.path).unwrap(), result);
    let (_, history) = History::read_jsonl(&run_dir.history_file()).unwrap();
    assert_eq!(history.len() as u64, result.workload.ops.total);
    Ran {
        result,
        history,
        _dir: dir,
    }
}

fn scenario(pattern: &str, rate: u32, duration: &str, extra: &str) -> String {
    format!(
        "name = \"engine\"\nseed = 7\n[target]\nstore = \"memory\"\n[pattern]\nname = \"{pattern}\"\n{extra}\n[workload]\nrate = {rate}\nduration = \"{duration}\"\nop_timeout = \"200ms\"\n[check]\nsettle = \"2s\"\n[expect]\norphans = \"any\"\nghosts = \"any\"\nduplicates = \"any\"\nlost_acks = \"any\"\ndivergence = \"any\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naive_orphans_are_exactly_the_acknowledged_ops_whose_second_write_was_refused() {
    let text = scenario("naive", 200, "3s", "")
        + "[[faults]]\nkind = \"down\"\nside = \"secondary\"\nstart = \"1s\"\nduration = \"1s\"\n";
    let r = run(&text).await;
    let refused = r.count(|e| {
        e.outcome == Outcome::Ok && e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Fail
    });
    assert!(
        refused > 0,
        "the window refused nothing: {:?}",
        r.result.faults
    );
    let c = r.checker();
    assert_eq!(c.orphans, refused);
    assert_eq!(c.lost_acks, refused);
    assert_eq!(c.divergence, 2 * refused);
    // Every orphan happened while the window was in force, none outside it.
    let a = &c.attribution["orphans"];
    assert_eq!(a.outside, 0, "{a:?}");
    assert_eq!(a.windows.values().sum::<u64>(), refused);
    // The window really was where the history says the refusals were.
    let w = &r.result.faults[0];
    let (start, end) = (w.start_s.unwrap() * 1e6, w.end_s.unwrap() * 1e6);
    for e in r
        .history
        .iter()
        .filter(|e| e.secondary == SideOutcome::Fail)
    {
        assert!(
            (e.end_us as f64) >= start && (e.intended_us as f64) <= end,
            "refused outside the window: {e:?} vs {w:?}"
        );
    }
    assert_eq!(r.result.verdict, Verdict::Pass, "limits are `any`");
    assert_eq!(r.result.availability.recovered, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_then_refusals_is_unknown_and_the_event_is_there() {
    // The secondary loses every answer (applied, then silence), then is down:
    // each retry after the first lost answer is refused. The side may have been
    // written by the first attempt: it is `unknown`, never `fail`.
    let text = scenario(
        "naive",
        50,
        "2s",
        "on_secondary_failure = \"retry\"\nretries = 3\nbackoff = \"50ms\"",
    ) + "[[faults]]\nkind = \"timeout\"\nside = \"secondary\"\ndirection = \"downstream\"\nstart = \"500ms\"\nduration = \"300ms\"\n\
         [[faults]]\nkind = \"down\"\nside = \"secondary\"\nstart = \"800ms\"\nduration = \"700ms\"\n";
    let r = run(&text).await;
    let lost_then_refused =
        r.count(|e| e.secondary == SideOutcome::Unknown && e.error.as_deref() == Some("refused"));
    assert!(
        lost_then_refused > 0,
        "no operation saw a lost answer then a refusal"
    );
    // No operation is recorded `fail` with something of it applied.
    assert_eq!(
        r.count(|e| e.outcome == Outcome::Fail && e.primary == SideOutcome::Ok),
        0
    );
    let c = r.checker();
    assert_eq!(c.ambiguous_fail.primary_only + c.ambiguous_fail.both, 0);
    // Every unknown secondary landed: the first, lost, attempt applied it. An
    // operation whose second write was only refused, told "failed" with its
    // order written, is unknown too (not a clean failure), and an orphan.
    assert_eq!(
        c.ambiguous_unknown.both,
        r.count(|e| e.secondary == SideOutcome::Unknown)
    );
    assert_eq!(
        c.ambiguous_unknown.primary_only,
        r.count(|e| e.outcome == Outcome::Unknown && e.secondary == SideOutcome::Fail)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_under_lost_answers_has_no_divergence_and_retries_prove_the_commit() {
    let text = scenario("transaction", 100, "2s", "retries = 4\nbackoff = \"20ms\"")
        + "[[faults]]\nkind = \"timeout\"\nside = \"primary\"\ndirection = \"downstream\"\ntoxicity = 0.5\nstart = \"500ms\"\nduration = \"800ms\"\n";
    let r = run(&text).await;
    let c = r.checker();
    assert_eq!(c.divergence, 0, "{c:?}");
    assert!(r.result.workload.retries > 0);
    // A retry that finds the order there after a lost answer is a success.
    assert_eq!(
        r.result.workload.ops.ok, r.result.workload.ops.total,
        "{:?}",
        r.result.workload
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_idempotent_relay_duplicates_once_per_crash_and_says_why() {
    let text = scenario(
        "outbox",
        100,
        "2s",
        "[pattern.relay]\nidempotent = false\ncrash_every = 25\npoll_interval = \"20ms\"",
    );
    let r = run(&text).await;
    let relay = r.result.relay.as_ref().unwrap();
    assert!(relay.stats.drained, "{relay:?}");
    assert!(relay.stats.self_crashes > 0);
    let c = r.checker();
    assert_eq!(c.duplicates, relay.stats.self_crashes, "{c:?}");
    assert_eq!(c.orphans + c.ghosts + c.lost_acks, 0, "{c:?}");
    // Each duplicate is tied to the crash that made it, none is "outside".
    let a = &c.attribution["duplicates"];
    assert_eq!(a.causes.values().sum::<u64>(), c.duplicates, "{a:?}");
    assert_eq!(a.outside, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_streams_relay_converges_after_a_crash_window() {
    let text = scenario(
        "streams",
        100,
        "2s",
        "[pattern.relay]\nidempotent = true\npoll_interval = \"20ms\"",
    ) + "[[faults]]\nkind = \"relay-crash\"\nstart = \"500ms\"\nduration = \"500ms\"\n";
    let r = run(&text).await;
    let c = r.checker();
    assert_eq!(c.divergence, 0, "{c:?}");
    let relay = r.result.relay.as_ref().unwrap();
    assert_eq!(relay.stats.fault_crashes, 1);
    assert_eq!(relay.time_to_consistency_ms.count, r.result.workload.ops.ok);
    // Orders written while the relay was down waited at least until it came back.
    assert!(relay.time_to_consistency_ms.max >= 100.0, "{relay:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mostly_indeterminate_operations_pass_with_a_warning_and_fail_when_asked() {
    // Every request to the primary is lost for three quarters of the run.
    let text = scenario("transaction", 100, "2s", "retries = 0")
        + "[[faults]]\nkind = \"timeout\"\nside = \"primary\"\ndirection = \"upstream\"\nstart = \"200ms\"\nduration = \"1500ms\"\n";
    let r = run(&text).await;
    let a = &r.result.availability;
    assert!(a.unknown_fraction > 0.5, "{a:?}");
    assert_eq!(a.recovered, Some(true), "{a:?}");
    assert_eq!(r.checker().divergence, 0);
    assert_eq!(r.result.verdict, Verdict::Pass);
    assert!(
        r.result
            .warnings
            .iter()
            .any(|w| w.contains("indeterminate")),
        "{:?}",
        r.result.warnings
    );
    let strict = text.replace(
        "divergence = \"any\"",
        "divergence = \"any\"\nindeterminate = 0.2",
    );
    let r = run(&strict).await;
    assert_eq!(r.result.verdict, Verdict::Fail);
    assert!(r.result.verdict_reasons[0].starts_with("indeterminate:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_switch_shows_in_latency_not_in_divergence() {
    let text = scenario("naive", 100, "2s", "")
        + "[[faults]]\nkind = \"latency\"\nside = \"primary\"\nlatency = \"50ms\"\nstart = \"500ms\"\nduration = \"500ms\"\n";
    let r = run(&text).await;
    assert_eq!(r.checker().divergence, 0);
    // Operations that started inside the window took at least the added latency.
    let w = &r.result.faults[0];
    let (start, end) = (w.start_s.unwrap() * 1e6, w.end_s.unwrap() * 1e6);
    let inside: Vec<&HistoryEntry> = r
        .history
        .iter()
        .filter(|e| e.start_us as f64 > start + 1000.0 && (e.end_us as f64) < end)
        .collect();
    assert!(!inside.is_empty());
    for e in inside {
        assert!(e.end_us - e.start_us >= 50_000, "{e:?}");
    }
}
