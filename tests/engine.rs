//! The whole engine — driver, nemesis, pattern engine, relay supervisor, checker,
//! verdict, result files — over the in-memory store, in-process: no servers, a
//! few seconds. Every assertion is what the history and the recorded windows
//! prove, never a timing guess. The same paths against real servers are in
//! tests/e2e.

use std::path::{Path, PathBuf};

use dualwrite::history::{History, HistoryEntry, Outcome, SideOutcome};
use dualwrite::reader::entry::{ReadEntry, Seen};
use dualwrite::result::{RunResult, Verdict};
use dualwrite::run::{RunOptions, run_scenario};
use dualwrite::scenario;

struct Ran {
    result: RunResult,
    history: Vec<HistoryEntry>,
    /// `reads.jsonl` (empty without `[readers]`).
    reads: Vec<ReadEntry>,
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
    let reads = if run_dir.reads_file().is_file() {
        dualwrite::reader::entry::read_jsonl(&run_dir.reads_file()).unwrap()
    } else {
        Vec::new()
    };
    if let Some(r) = &result.readers {
        assert_eq!(
            reads.len() as u64,
            r.reads.total,
            "reads.jsonl holds every read"
        );
    }
    Ran {
        result,
        history,
        reads,
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

/// `[readers]` reading every order at `delays`.
fn readers(delays: &str) -> String {
    format!("[readers]\nconcurrency = 64\ndelays = [{delays}]\n")
}

impl Ran {
    fn readers(&self) -> &dualwrite::result::ReadersResult {
        self.result.readers.as_ref().expect("the run had readers")
    }

    fn op(&self, id: u64) -> &HistoryEntry {
        self.history
            .iter()
            .find(|e| e.id == id)
            .expect("in the history")
    }
}

fn partial(r: &ReadEntry) -> bool {
    r.outcome == Outcome::Ok && ((r.primary == Seen::Seen) != (r.secondary == Seen::Seen))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_naive_with_the_secondary_down_see_exactly_the_orphans_and_only_after_the_window()
 {
    // Log-and-continue: orders written while the secondary is down are
    // acknowledged orphans. Readers go through the same (down) side: their
    // secondary reads in the window are refused; once it is back, every read
    // of an orphan shows the primary only, every other read shows both.
    let text = scenario("naive", 100, "3s", "")
        + "[[faults]]\nkind = \"down\"\nside = \"secondary\"\nstart = \"1s\"\nduration = \"1s\"\n"
        + &readers("\"0ms\", \"100ms\", \"600ms\"");
    let r = run(&text).await;
    let x = r.readers();
    assert_eq!(x.followed.acknowledged, r.result.workload.ops.ok);
    assert_eq!(
        x.reads.total,
        3 * x.followed.acknowledged,
        "{:?}",
        x.followed
    );
    let orphan = |id: u64| r.op(id).secondary == SideOutcome::Fail;
    let mut expected_partial = 0;
    for read in r.reads.iter().filter(|e| e.outcome == Outcome::Ok) {
        let expected = if orphan(read.id) {
            (Seen::Seen, Seen::Absent)
        } else {
            (Seen::Seen, Seen::Seen)
        };
        assert_eq!((read.primary, read.secondary), expected, "{read:?}");
        expected_partial += u64::from(orphan(read.id));
    }
    assert!(expected_partial > 0, "no orphan read after the window");
    assert_eq!(x.partial_reads(), expected_partial, "{:?}", x.by_delay);
    // Reads of the secondary in the window were refused: unanswered, not partial.
    let w = &r.result.faults[0];
    let (start_us, end_us) = (
        (w.start_s.unwrap() * 1e6) as u64,
        (w.end_s.unwrap() * 1e6) as u64,
    );
    assert!(r.reads.iter().any(|e| e.secondary == Seen::Fail));
    for read in r.reads.iter().filter(|e| e.secondary == Seen::Fail) {
        assert!(
            read.end_us >= start_us && read.start_us <= end_us,
            "{read:?} vs {w:?}"
        );
    }
    // Partial reads only just after the window: an orphan is written inside it
    // and read at most 600 ms (+ slack) after its answer.
    for read in r.reads.iter().filter(|e| partial(e)) {
        assert!(
            read.start_us >= end_us && read.start_us <= end_us + 600_000 + 300_000,
            "{read:?} vs {w:?}"
        );
    }
    // The orphans never converge: each is "never consistent".
    let orphans_read = r
        .reads
        .iter()
        .filter(|e| orphan(e.id))
        .map(|e| e.id)
        .collect::<std::collections::BTreeSet<_>>();
    assert!(x.never_consistent >= orphans_read.len() as u64);
    assert_eq!(x.anomalous_reads(), 0, "{:?}", x.anomalies);
    // What the readers saw stays consistent with the checker's final scan.
    assert_eq!(
        r.checker().orphans,
        r.count(|e| e.secondary == SideOutcome::Fail)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_half_a_transaction() {
    // Lost answers on the primary for half the run: acknowledged, failed and
    // unknown transactions alike are read, at once and later; every answered
    // read shows both records or neither.
    let text = scenario("transaction", 100, "2s", "retries = 1\nbackoff = \"20ms\"")
        + "[[faults]]\nkind = \"timeout\"\nside = \"primary\"\ndirection = \"downstream\"\ntoxicity = 0.5\nstart = \"500ms\"\nduration = \"800ms\"\n"
        + &readers("\"0ms\", \"10ms\", \"300ms\"")
        + "unacknowledged = 1.0\n";
    let text = text.replace(
        "divergence = \"any\"\n",
        "divergence = \"any\"\npartial_reads = 0\nread_anomalies = 0\n",
    );
    let r = run(&text).await;
    let x = r.readers();
    let answered = r.reads.iter().filter(|e| e.outcome == Outcome::Ok).count();
    assert!(answered > 100, "{:?}", x.reads);
    let half: Vec<&ReadEntry> = r.reads.iter().filter(|e| partial(e)).collect();
    assert!(half.is_empty(), "a reader saw half a transaction: {half:?}");
    assert_eq!(x.partial_reads(), 0);
    assert_eq!(x.anomalous_reads(), 0, "{:?}", x.anomalies);
    // Some reads were refused an answer by the fault (lost: unknown), and some
    // unacknowledged transactions were read too.
    assert!(x.reads.unknown > 0, "{:?}", x.reads);
    assert!(x.followed.unacknowledged > 0, "{:?}", x.followed);
    assert_eq!(
        r.result.verdict,
        Verdict::Pass,
        "{:?}",
        r.result.verdict_reasons
    );
    // Every acknowledged order was seen whole by its first answered read.
    assert_eq!(
        x.by_delay
            .iter()
            .map(|d| d.primary_only + d.secondary_only + d.neither)
            .sum::<u64>(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_a_streams_relay_see_partial_reads_fall_with_the_delay_to_zero() {
    let text = scenario(
        "streams",
        100,
        "2s",
        "[pattern.relay]\nidempotent = true\npoll_interval = \"150ms\"",
    ) + &readers("\"0ms\", \"50ms\", \"2s\"");
    let r = run(&text).await;
    let x = r.readers();
    let relay = r.result.relay.as_ref().unwrap();
    // Records never disappear here, so an order partial at a later delay was
    // partial at every earlier one: the counts can only fall with the delay.
    let partial_at = |d: u64| x.by_delay.iter().find(|b| b.delay_ms == d).unwrap();
    let (p0, p50, p2000) = (partial_at(0), partial_at(50), partial_at(2000));
    assert_eq!(x.reads.ok, x.reads.total, "no fault: every read answered");
    assert!(p0.primary_only > 0, "the relay polls every 150 ms: {p0:?}");
    assert!(p0.primary_only >= p50.primary_only, "{:?}", x.by_delay);
    assert!(p50.primary_only >= p2000.primary_only, "{:?}", x.by_delay);
    // The relay caught up well within 2 s: then no reader sees half an order.
    assert!(relay.time_to_consistency_ms.max < 2000.0, "{relay:?}");
    assert_eq!(p2000.partial_fraction, Some(0.0), "{p2000:?}");
    assert_eq!((p2000.secondary_only, x.anomalous_reads()), (0, 0));
    // Reader-side time to consistency is bounded below by the relay's own (a
    // reader can only see what was delivered) for every order.
    let t = &x.time_to_consistency_ms;
    assert_eq!(t.count, x.followed.acknowledged, "{x:?}");
    assert!(
        t.p50 >= relay.time_to_consistency_ms.p50 * 0.99,
        "{t:?} vs {relay:?}"
    );
    assert_eq!(x.never_consistent, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_rate_follows_a_share_of_the_orders_and_the_jepsen_export_has_the_reads() {
    let text =
        scenario("naive", 200, "2s", "") + "[readers]\nrate = 100\ndelays = [\"0ms\", \"20ms\"]\n";
    let r = run(&text).await;
    let x = r.readers();
    let f = &x.followed;
    assert_eq!(
        f.acknowledged + f.over_budget,
        r.result.workload.ops.ok,
        "{f:?}"
    );
    // 100 reads/s at 2 reads per order: about 50 of the 200 orders a second,
    // plus the first second's budget.
    assert!((80..=170).contains(&f.acknowledged), "{f:?}");
    assert_eq!(x.reads.total, 2 * f.acknowledged);
    let text = dualwrite::report::jepsen::export(&r.history, &r.reads);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reads = lines.iter().filter(|v| v["f"] == "read").count() as u64;
    let writes = lines.iter().filter(|v| v["f"] == "write").count() as u64;
    assert_eq!(
        (reads, writes),
        (2 * x.reads.total, 2 * r.result.workload.ops.total)
    );
    let ok = lines
        .iter()
        .find(|v| v["f"] == "read" && v["type"] == "ok")
        .unwrap();
    assert_eq!(ok["value"]["primary"], "seen");
    assert_eq!(ok["value"]["secondary"], "seen");
}
