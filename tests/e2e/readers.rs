//! Readers (`[readers]`) on the real stack: what readers see while a run goes on.
//! Each test runs through Toxiproxy proxies of its own (created here, removed
//! after), so it never waits for, or disturbs, runs on the stack's proxies.
//! Every assertion is what the history and the reads prove; convergence is
//! asserted against a generous bound (the last delay), never a timing guess.

use std::collections::{BTreeMap, BTreeSet};

use dualwrite::history::{HistoryEntry, Outcome, SideOutcome};
use dualwrite::reader::entry::{ReadEntry, Seen};

use crate::common::*;

/// Where each store's test server listens (scripts/PORTS.md).
fn upstream(server: &str) -> &'static str {
    match server {
        "moto" => "127.0.0.1:5000",
        "cassandra" => "127.0.0.1:9042",
        "mongoeco" => "127.0.0.1:27018",
        _ => "127.0.0.1:27017",
    }
}

/// Runs `body` (pattern, workload, faults, readers...) on `store`/`server`
/// through proxies of its own.
fn run(name: &str, store: &str, server: &str, body: &str) -> ReadRun {
    let proxies = OwnProxies::new(store, upstream(server));
    let text = format!(
        "name = \"{name}\"\nseed = 11\n{}{body}",
        proxies.target(store, server)
    );
    let s = Scratch::new();
    let r = ReadRun::new(&s, &s.write(&format!("{name}.toml"), &text));
    drop(proxies);
    r
}

fn partial(r: &ReadEntry) -> bool {
    r.outcome == Outcome::Ok && ((r.primary == Seen::Seen) != (r.secondary == Seen::Seen))
}

const ANY: &str = "[expect]\norphans = \"any\"\nghosts = \"any\"\nduplicates = \"any\"\nlost_acks = \"any\"\ndivergence = \"any\"\n";

/// An async pattern: partial reads fall with the delay (per order, from the
/// reads: visibility only grows) and are zero at the last delay once the relay
/// delivered every order within it; the reader-side time to consistency is
/// stated next to the relay's and bounded by it plus one delay step.
fn relay_readers_converge(name: &str, store: &str, server: &str, pattern: &str, delays: &[u64]) {
    let delay_list: Vec<String> = delays.iter().map(|d| format!("\"{d}ms\"")).collect();
    let last = *delays.last().unwrap();
    let body = format!(
        "[pattern]\nname = \"{pattern}\"\n[pattern.relay]\npoll_interval = \"50ms\"\n{}\n[workload]\nrate = 10\nduration = \"5s\"\nconcurrency = 16\nop_timeout = \"5s\"\n[check]\nsettle = \"30s\"\n[readers]\nconcurrency = 64\ndelays = [{}]\n{}",
        if server == "mongoeco" {
            "mode = \"poll\""
        } else {
            ""
        },
        delay_list.join(", "),
        // moto serves one request at a time for every run on the machine: half
        // the orders are enough, and leave the relay its share of the server.
        if server == "moto" { "rate = 20\n" } else { "" }
    );
    let r = run(name, store, server, &body);
    assert_eq!(r.run.code, 0, "{}", r.explain());
    let x = r.readers();
    let relay = r.run.result.relay.as_ref().expect("a relay");
    assert!(relay.stats.drained, "{}", r.explain());
    assert_eq!(
        x.followed.acknowledged + x.followed.over_budget,
        r.run.result.workload.ops.ok
    );
    // Per order: a side never shows a record and then not (no fault, one copy
    // of the data), so a read that started after another ended is whole if
    // that one was. (Reads of one order at two delays may overlap when a read
    // is slow: then the earlier-planned one may be served last.)
    let mut by_order: BTreeMap<u64, Vec<&ReadEntry>> = BTreeMap::new();
    for read in r.reads.iter().filter(|e| e.outcome == Outcome::Ok) {
        by_order.entry(read.id).or_default().push(read);
    }
    for (id, reads) in &mut by_order {
        reads.sort_by_key(|e| e.delay_ms);
        for (i, a) in reads.iter().enumerate() {
            for b in reads[i + 1..].iter().filter(|b| b.start_us >= a.end_us) {
                assert!(
                    partial(a) || !partial(b),
                    "order {id}: whole at {} ms, half at {} ms (started after): {reads:?}",
                    a.delay_ms,
                    b.delay_ms
                );
            }
        }
    }
    assert_eq!(x.anomalous_reads(), 0, "{:?}", x.anomalies);
    // Orders read at every delay, each read after the previous one ended: their
    // partial count can only fall with the delay.
    let sequential: Vec<&Vec<&ReadEntry>> = by_order
        .values()
        .filter(|v| v.len() == delays.len() && v.windows(2).all(|w| w[1].start_us >= w[0].end_us))
        .collect();
    let partial_at: Vec<usize> = (0..delays.len())
        .map(|i| sequential.iter().filter(|v| partial(v[i])).count())
        .collect();
    assert!(
        partial_at.windows(2).all(|w| w[0] >= w[1]),
        "{partial_at:?}"
    );
    let first = &x.by_delay[0];
    assert!(
        first.primary_only > 0,
        "the relay polls every 50 ms, the first read follows the answer at once: {}",
        r.explain()
    );
    // The bound: the relay delivered every order within the last delay of its
    // intended start (generous: it took 0.1-5 s on a loaded moto); then every
    // read at that delay, which starts later still, saw both sides.
    let relay_max = relay.time_to_consistency_ms.max;
    assert!(relay_max < last as f64, "relay ttc {relay:?}");
    let at_last = x.by_delay.last().unwrap();
    assert_eq!(at_last.partial_fraction, Some(0.0), "{at_last:?}");
    // Reader-side time to consistency, stated next to the relay's: a reader
    // first sees both sides at most one delay step (plus the read) after the
    // relay delivered.
    let t = &x.time_to_consistency_ms;
    let step = delays.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as f64;
    eprintln!(
        "{name}: reader-side time to consistency p50 {} p99 {} max {} ms; relay p50 {} p99 {} max {} ms; partial by delay {:?}; of {} orders read one delay after the other, partial {partial_at:?}",
        t.p50,
        t.p99,
        t.max,
        relay.time_to_consistency_ms.p50,
        relay.time_to_consistency_ms.p99,
        relay_max,
        x.by_delay
            .iter()
            .map(|d| (d.delay_ms, d.partial_fraction))
            .collect::<Vec<_>>(),
        sequential.len()
    );
    assert_eq!(x.never_consistent, 0, "{}", r.explain());
    assert!(
        t.max <= relay_max + step + x.latency_ms.max + r.run.result.latency_ms.max,
        "reader ttc {t:?}, relay {relay:?}"
    );
}

#[test]
fn dynamodb_streams_partial_reads_fall_with_the_delay_to_zero() {
    relay_readers_converge(
        "readers-dynamo-streams",
        "dynamodb",
        "moto",
        "streams",
        &[0, 1000, 5000, 30_000],
    );
}

#[test]
fn dynamodb_outbox_partial_reads_fall_with_the_delay_to_zero() {
    relay_readers_converge(
        "readers-dynamo-outbox",
        "dynamodb",
        "moto",
        "outbox",
        &[0, 1000, 5000, 30_000],
    );
}

#[test]
fn cassandra_outbox_partial_reads_fall_with_the_delay_to_zero() {
    relay_readers_converge(
        "readers-cassandra-outbox",
        "cassandra",
        "cassandra",
        "outbox",
        &[0, 300, 2000, 8000],
    );
}

#[test]
fn mongodb_outbox_partial_reads_fall_with_the_delay_to_zero() {
    relay_readers_converge(
        "readers-mongo-outbox",
        "mongodb",
        "mongoeco",
        "outbox",
        &[0, 300, 2000, 8000],
    );
}

#[test]
fn naive_with_the_secondary_down_has_partial_reads_exactly_for_the_orphans_just_after_the_window() {
    // Log-and-continue on DynamoDB: orders written while the secondary's proxy
    // is down are orphans. Readers read through the same proxies: inside the
    // window their secondary reads are refused; the last delay (3 s) is longer
    // than the window, so every order written in it is read after it too.
    let body = format!(
        "[pattern]\nname = \"naive\"\non_secondary_failure = \"log-and-continue\"\n[workload]\nrate = 10\nduration = \"6s\"\nconcurrency = 16\nop_timeout = \"2s\"\n[[faults]]\nkind = \"down\"\nside = \"secondary\"\nstart = \"2s\"\nduration = \"2s\"\n[check]\nsettle = \"1s\"\n{ANY}[readers]\nconcurrency = 64\ndelays = [\"0ms\", \"100ms\", \"1s\", \"3s\"]\n"
    );
    let r = run("readers-dynamo-naive-down", "dynamodb", "moto", &body);
    assert_eq!(r.run.code, 0, "{}", r.explain());
    let x = r.readers();
    let c = r.run.checker();
    assert!(c.orphans > 0, "{}", r.explain());
    // The history settles most orders: a refused secondary write is an orphan
    // (every answered read of it shows the primary only), an acknowledged one is
    // not (every answered read shows both). Those are counted exactly.
    let settled = |e: &HistoryEntry| {
        e.primary == SideOutcome::Ok && matches!(e.secondary, SideOutcome::Ok | SideOutcome::Fail)
    };
    let mut expected_partial = 0;
    let mut answered_orphans = BTreeSet::new();
    let mut ambiguous_half = BTreeSet::new();
    for read in r.reads.iter().filter(|e| e.outcome == Outcome::Ok) {
        let op = r.op(read.id);
        if settled(op) {
            let orphan = op.secondary == SideOutcome::Fail;
            let expected = if orphan { Seen::Absent } else { Seen::Seen };
            assert_eq!(
                (read.primary, read.secondary),
                (Seen::Seen, expected),
                "{read:?}"
            );
            if orphan {
                expected_partial += 1;
                answered_orphans.insert(read.id);
            }
        } else if partial(read) {
            // A write lost in flight: it landed or not; its reads agree (below).
            ambiguous_half.insert(read.id);
        }
    }
    let ambiguous: BTreeSet<u64> = r
        .run
        .history
        .iter()
        .filter(|e| !settled(e))
        .map(|e| e.id)
        .collect();
    for id in &ambiguous {
        let seen: BTreeSet<(Seen, Seen)> = r
            .reads
            .iter()
            .filter(|e| e.id == *id && e.outcome == Outcome::Ok)
            .map(|e| (e.primary, e.secondary))
            .collect();
        assert!(seen.len() <= 1, "order {id} flipped: {seen:?}");
    }
    let ambiguous_partial = r
        .reads
        .iter()
        .filter(|e| partial(e) && ambiguous_half.contains(&e.id))
        .count() as u64;
    assert_eq!(
        x.partial_reads(),
        expected_partial + ambiguous_partial,
        "{}",
        r.explain()
    );
    assert!(expected_partial > 0, "{}", r.explain());
    // Against the final scan: the orphans are the refused ones, plus those of
    // the ambiguous writes that did not land (read half, or never answered).
    let known = r
        .run
        .count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Fail);
    assert!(
        c.orphans >= known + ambiguous_half.len() as u64
            && c.orphans <= known + ambiguous.len() as u64,
        "orphans {} vs {known} refused + {} of {} ambiguous read half\n{}",
        c.orphans,
        ambiguous_half.len(),
        ambiguous.len(),
        r.explain()
    );
    // Partial reads only just after the window: an orphan's write was refused
    // inside it and answered then, and is read at most 3 s after its answer.
    let w = &r.run.result.faults[0];
    let (start, end) = (
        (w.start_s.unwrap() * 1e6) as u64,
        (w.end_s.unwrap() * 1e6) as u64,
    );
    for read in r
        .reads
        .iter()
        .filter(|e| partial(e) && !ambiguous_half.contains(&e.id))
    {
        assert!(
            read.planned_us >= start && read.planned_us <= end + 3_000_000 + 1_000_000,
            "{read:?} outside {w:?}"
        );
        // The proxy came back once the removal was sent, at the planned end at
        // the earliest (the window's recorded end is when it was answered).
        assert!(
            read.end_us as f64 >= w.planned_end_s * 1e6,
            "the secondary answered inside the window: {read:?} vs {w:?}"
        );
    }
    // Inside it the secondary did not answer: refused or lost, never partial.
    assert!(
        r.reads.iter().any(|e| e.secondary == Seen::Fail),
        "{}",
        r.explain()
    );
    eprintln!(
        "naive, secondary down 2 s: {} orphans ({} read, {} partial reads) partial by delay {:?}",
        c.orphans,
        answered_orphans.len(),
        x.partial_reads(),
        x.by_delay
            .iter()
            .map(|d| (d.delay_ms, d.partial_fraction, d.fail + d.unknown))
            .collect::<Vec<_>>()
    );
    assert_eq!(x.anomalous_reads(), 0, "{:?}", x.anomalies);
}

/// A transaction under lost answers: no reader ever sees half of one.
fn transaction_readers_see_no_half(name: &str, store: &str, server: &str, pattern: &str) {
    let body = format!(
        "[pattern]\nname = \"{pattern}\"\n[workload]\nrate = 20\nduration = \"5s\"\nconcurrency = 16\nop_timeout = \"1s\"\n[[faults]]\nkind = \"timeout\"\nside = \"primary\"\ndirection = \"downstream\"\ntoxicity = 0.3\nstart = \"1s\"\nduration = \"2s\"\n[check]\nsettle = \"1s\"\n[expect]\npartial_reads = 0\nread_anomalies = 0\nindeterminate = 1.0\n[readers]\nrate = 40\nconcurrency = 64\ndelays = [\"0ms\", \"10ms\", \"500ms\", \"2s\"]\n"
    );
    let r = run(name, store, server, &body);
    let x = r.readers();
    let half: Vec<&ReadEntry> = r.reads.iter().filter(|e| partial(e)).collect();
    assert!(
        half.is_empty(),
        "a reader saw half a transaction: {half:?}\n{}",
        r.explain()
    );
    assert_eq!(x.partial_reads(), 0);
    assert_eq!(x.anomalous_reads(), 0, "{:?}", x.anomalies);
    assert!(x.reads.ok > 0, "{}", r.explain());
    assert_eq!(r.run.code, 0, "{}", r.explain());
}

#[test]
fn dynamodb_transaction_readers_never_see_half_an_order() {
    transaction_readers_see_no_half(
        "readers-dynamo-transaction",
        "dynamodb",
        "moto",
        "transaction",
    );
}

#[test]
fn mongodb_transaction_readers_never_see_half_an_order() {
    transaction_readers_see_no_half(
        "readers-mongo-transaction",
        "mongodb",
        "mongoeco",
        "transaction",
    );
}

#[test]
fn read_options_reach_the_servers_and_the_jepsen_export_has_the_reads() {
    // Strong and index reads on DynamoDB (fresh event ids: the GSI), levels on
    // Cassandra, a read concern on MongoDB: each accepted by its server.
    for (name, store, server, pattern, readers) in [
        (
            "readers-dynamo-gsi",
            "dynamodb",
            "moto",
            "[pattern]\nname = \"naive\"\nsecondary_key = \"fresh\"\n",
            "[readers.primary]\nconsistency = \"strong\"\n[readers.secondary]\nconsistency = \"eventually\"\n",
        ),
        (
            "readers-cassandra-levels",
            "cassandra",
            "cassandra",
            "[pattern]\nname = \"naive\"\n",
            "[readers.primary]\nconsistency = \"one\"\n[readers.secondary]\nconsistency = \"all\"\n",
        ),
        (
            "readers-ferretdb-concern",
            "mongodb",
            "ferretdb",
            "[pattern]\nname = \"naive\"\n",
            "[readers.primary]\nread_concern = \"local\"\nread_preference = \"primary\"\n",
        ),
    ] {
        let body = format!(
            "{pattern}[workload]\nrate = 10\nduration = \"2s\"\nop_timeout = \"3s\"\n[check]\nsettle = \"1s\"\n[expect]\npartial_reads = 0\nread_anomalies = 0\n[readers]\ndelays = [\"0ms\", \"200ms\"]\n{readers}"
        );
        let r = run(name, store, server, &body);
        let x = r.readers();
        assert_eq!(r.run.code, 0, "{}", r.explain());
        // Each option is accepted: reads are answered, and a read that failed
        // failed in transport (a loaded server dropping connections), never
        // because the server refused what it was asked.
        assert!(x.reads.ok > 0, "{name}: {}", r.explain());
        for class in x.errors.keys() {
            let class = class.rsplit(' ').next().unwrap_or(class);
            let refusal = class.contains("Invalid")
                || class.contains("Validation")
                || class.starts_with("code-")
                || [
                    "BadValue",
                    "FailedToParse",
                    "SyntaxError",
                    "prepare",
                    "bad-query",
                ]
                .contains(&class);
            assert!(
                !refusal,
                "{name}: a read was refused: {class}: {}",
                r.explain()
            );
        }
        assert_eq!(x.by_delay[0].both, x.by_delay[0].answered, "{name}");
        assert_ne!(
            x.plan.primary,
            Default::default(),
            "{name}: the options are recorded"
        );
        let text = dualwrite::report::jepsen::export(&r.run.history, &r.reads);
        let reads = text
            .lines()
            .filter(|l| l.contains("\"f\":\"read\""))
            .count() as u64;
        assert_eq!(reads, 2 * x.reads.total, "{name}");
    }
}
