//! Kafka (one KRaft broker, `scripts/stack up --only kafka`) as the secondary
//! side, behind its own proxy (`kafka_secondary`): issue 18's must-shows. Every
//! bundled Kafka scenario gives its expected verdict, and every count is the one
//! the history (or the relay's and the producer's own figures) says it must be.
//! `scripts/test` starts the broker for this module only (its HEAVY list).

use dualwrite::history::SideOutcome;
use dualwrite::result::RelayStats;

use crate::common::*;

/// Proxies of this module's own to the primary store (and its relay connection),
/// so these runs never wait for, or fault, another module's: created through
/// Toxiproxy's API on a free port, deleted on drop. The Kafka side keeps its
/// stack proxy (`kafka_secondary`: nothing else uses it).
struct OwnProxies(Vec<String>);

impl OwnProxies {
    /// `upstream`: the primary server's address (scripts/PORTS.md).
    fn new(upstream: &str) -> Self {
        let names: Vec<String> = ["primary", "relay"]
            .iter()
            .map(|side| format!("kafkae2e_{side}"))
            .collect();
        for name in &names {
            toxiproxy(&["-X", "DELETE", &format!("/proxies/{name}")]);
            let body = format!(
                r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}","enabled":true}}"#
            );
            let out = toxiproxy(&["-X", "POST", "-d", &body, "/proxies"]);
            assert!(out.contains(name.as_str()), "creating proxy {name}: {out}");
        }
        Self(names)
    }

    /// The scenario with its primary and relay connections on these proxies.
    fn route(&self, text: &str) -> String {
        let primary_table = text
            .find("[target.primary]\n")
            .expect("a [target.primary] table");
        let store_line = primary_table + text[primary_table..].find('\n').unwrap() + 1;
        let store_end = store_line + text[store_line..].find('\n').unwrap() + 1;
        let mut out = text[..store_end].to_string();
        out += &format!("proxy = \"{}\"\n", self.0[0]);
        let rest = &text[store_end..];
        let pattern = rest.find("[pattern]").expect("a [pattern] table");
        out += &rest[..pattern];
        if rest.contains("name = \"outbox\"") || rest.contains("name = \"streams\"") {
            out += &format!("[target.relay]\nproxy = \"{}\"\n\n", self.0[1]);
        }
        out += &rest[pattern..];
        out
    }
}

impl Drop for OwnProxies {
    fn drop(&mut self) {
        for name in &self.0 {
            toxiproxy(&["-X", "DELETE", &format!("/proxies/{name}")]);
        }
    }
}

/// One call to Toxiproxy's HTTP API (its body, or the error).
fn toxiproxy(args: &[&str]) -> String {
    let (path, rest) = args.split_last().unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(rest)
        .arg(format!("http://127.0.0.1:8474{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// The primary server's address by store (scripts/PORTS.md).
fn upstream(primary: &str) -> &'static str {
    match primary {
        "dynamodb" => "127.0.0.1:5000",
        "cassandra" => "127.0.0.1:9042",
        "ferretdb" => "127.0.0.1:27017",
        other => panic!("no upstream for {other}"),
    }
}

/// Runs a bundled scenario (from `scenarios/`), edited, through this module's own
/// proxies; Kafka's lock keeps the module's runs (and their broker faults) apart.
fn run_bundled(file: &str, primary: &str, edit: impl Fn(String) -> String) -> Run {
    let _kafka = lock("kafka");
    let proxies = OwnProxies::new(upstream(primary));
    let s = Scratch::new();
    let text = std::fs::read_to_string(repo().join("scenarios").join(file)).unwrap();
    let path = s.write(file, &proxies.route(&edit(text)));
    s.run(&path)
}

fn relay(run: &Run) -> &RelayStats {
    &run.result
        .relay
        .as_ref()
        .unwrap_or_else(|| panic!("async pattern without relay figures\n{}", run.explain()))
        .stats
}

fn client(run: &Run, name: &str) -> u64 {
    run.result
        .client_counts
        .get(name)
        .copied()
        .unwrap_or_else(|| panic!("no client count `{name}`\n{}", run.explain()))
}

/// What every naive run into a topic must satisfy, whatever the fault. A publish
/// the history calls failed never landed (librdkafka's "not persisted"); an
/// indeterminate one may have. From the scans: `x` indeterminate publishes landed
/// (the topic holds the acknowledged ones, those, and the duplicates), and `y`
/// orders whose primary write was indeterminate landed on the primary alone (no
/// publish was attempted for them). Then the orphans are exactly the failed and
/// indeterminate publishes that did not land, plus those `y`.
fn assert_naive_formula(run: &Run) {
    let c = run.checker();
    let failed = run.count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Fail);
    let unknown =
        run.count(|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Unknown);
    let acked = run.count(|e| e.secondary == SideOutcome::Ok);
    let primary_ok = run.count(|e| e.primary == SideOutcome::Ok);
    let primary_unknown = run.count(|e| e.primary == SideOutcome::Unknown);
    let x = c.scanned_secondary - c.duplicates - acked;
    let y = c.scanned_primary - primary_ok;
    assert!(
        x <= unknown,
        "{x} of {unknown} unknown landed: {}",
        run.explain()
    );
    assert!(
        y <= primary_unknown,
        "{y} of {primary_unknown}: {}",
        run.explain()
    );
    assert_eq!(
        c.orphans,
        failed + unknown - x + y,
        "orphans vs {failed} failed + {unknown} unknown - {x} + {y}: {}",
        run.explain()
    );
    // The outcome rule: no operation reported `fail` had anything land.
    let landed_after_fail =
        c.ambiguous_fail.primary_only + c.ambiguous_fail.secondary_only + c.ambiguous_fail.both;
    assert_eq!(landed_after_fail, 0, "{}", run.explain());
    assert_eq!(
        (c.ghosts, c.mismatches, c.strays),
        (0, 0, 0),
        "{}",
        run.explain()
    );
}

#[test]
fn checker_counts_planted_divergence_on_a_topic_exactly() {
    let _kafka = lock("kafka");
    let proxies = OwnProxies::new(upstream("dynamodb"));
    // A topic appends: the three copies of order 7 are three messages.
    let text = std::fs::read_to_string(repo().join("scenarios/kafka-producer-retries.toml"))
        .unwrap()
        .split("[[faults]]")
        .next()
        .unwrap()
        .to_string();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(planted_divergence_is_counted_exactly(
            parse(&proxies.route(&text)),
            SideOutcome::Ok,
            "kafka",
        ));
}

#[test]
fn naive_publish_under_a_killed_broker_orphans_what_the_history_says() {
    let run = run_bundled("kafka-naive-dynamo-broker-down.toml", "dynamodb", |t| t);
    let c = run.checker();
    assert_eq!(run.code, 1, "{}", run.explain());
    // Publishes queued while the broker was gone are "not persisted" (fail);
    // librdkafka calls some "possibly persisted" (unknown) when it had handed them
    // to a connection that then died. Either way none of them landed here.
    let missed = run.count(|e| e.primary == SideOutcome::Ok && e.secondary != SideOutcome::Ok);
    assert!(missed > 0, "the outage did not bite: {}", run.explain());
    assert_naive_formula(&run);
    // Log-and-continue told the caller "ok" for every orphan. Nothing landed twice
    // but what the producer itself sent twice (docs/KAFKA.md: even idempotent,
    // librdkafka re-sequences in-doubt messages under a new epoch).
    // (An order whose DynamoDB write timed out and landed is an orphan the caller
    // was not told "ok" about.)
    let primary_ok = run.count(|e| e.primary == SideOutcome::Ok);
    let landed_unacked = c.scanned_primary - primary_ok;
    assert_eq!(c.lost_acks, c.orphans - landed_unacked, "{}", run.explain());
    assert!(
        c.duplicates <= client(&run, "resent@secondary"),
        "{}",
        run.explain()
    );
    assert!(
        run.result.faults.iter().all(|w| w.error.is_none()),
        "{:?}",
        run.result.faults
    );
}

#[test]
fn producer_retries_after_lost_answers_duplicate_unless_idempotent() {
    let run = run_bundled("kafka-producer-retries.toml", "dynamodb", |t| t);
    let c = run.checker();
    let resent = client(&run, "resent@secondary");
    assert_eq!(run.code, 1, "{}", run.explain());
    assert_answers_were_lost_after_the_append(&run);
    // Each duplicate is a resend whose earlier transmission reached the broker. A
    // resend of a request still queued on the connection librdkafka dropped (never
    // transmitted) appends nothing twice: duplicates can fall short of resends,
    // never exceed them.
    assert!(
        (1..=resent).contains(&c.duplicates),
        "duplicates {} vs {resent} resends: {}",
        c.duplicates,
        run.explain()
    );
    assert_eq!((c.orphans, c.lost_acks), (0, 0), "{}", run.explain());
    assert_naive_formula(&run);

    let without = c.duplicates;

    let run = run_bundled("kafka-producer-retries-idempotent.toml", "dynamodb", |t| t);
    let c = run.checker();
    assert_answers_were_lost_after_the_append(&run);
    // The producer resent; the broker recognised the resends by producer id and
    // sequence number. librdkafka can still re-sequence an in-doubt message under
    // a new producer epoch, which the broker cannot recognise (docs/KAFKA.md):
    // far fewer duplicates, never more than the resends, usually none (the
    // scenario's verdict PASS).
    let resent = client(&run, "resent@secondary");
    assert!(resent > 0, "{}", run.explain());
    assert!(c.duplicates <= resent, "{}", run.explain());
    assert!(
        c.duplicates < without,
        "idempotent {} vs {without}: {}",
        c.duplicates,
        run.explain()
    );
    assert_eq!(c.divergence, c.duplicates, "{}", run.explain());
    assert_eq!(run.code, if c.duplicates == 0 { 0 } else { 1 });
    assert_naive_formula(&run);
}

/// Downstream latency delays answers, never requests: every publish the history
/// calls indeterminate landed (most end `ok` after the producer's own resend).
fn assert_answers_were_lost_after_the_append(run: &Run) {
    let unknown = run.count(|e| e.secondary == SideOutcome::Unknown);
    assert_eq!(
        run.checker().ambiguous_unknown.both,
        unknown,
        "{}",
        run.explain()
    );
}

#[test]
fn exactly_once_relay_survives_twenty_crashes_without_a_duplicate_at_least_once_duplicates_each() {
    let run = run_bundled(
        "kafka-outbox-cassandra-at-least-once.toml",
        "cassandra",
        |t| t,
    );
    let c = run.checker();
    let r = relay(&run);
    assert_eq!(run.code, 1, "{}", run.explain());
    assert!(r.drained && r.self_crashes > 0, "{r:?}");
    // Each crash left its event published and unmarked: published again.
    assert_eq!(c.duplicates, r.self_crashes, "{}", run.explain());
    assert_eq!(c.scanned_secondary, c.scanned_primary + c.duplicates);
    assert_eq!(r.delivered, c.scanned_primary + r.self_crashes, "{r:?}");
    assert_eq!(r.already_published, 0, "{r:?}");
    assert_eq!(
        (c.orphans, c.ghosts, c.mismatches, c.lost_acks, c.strays),
        (0, 0, 0, 0, 0),
        "{}",
        run.explain()
    );
    let at_least_once = r.self_crashes;

    let run = run_bundled(
        "kafka-outbox-cassandra-exactly-once.toml",
        "cassandra",
        |t| t,
    );
    let c = run.checker();
    let r = relay(&run);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert!(r.drained, "{r:?}");
    assert!(
        r.self_crashes >= 20,
        "only {} crashes: {r:?}",
        r.self_crashes
    );
    assert_eq!(c.divergence, 0, "{}", run.explain());
    assert_eq!(c.scanned_secondary, c.scanned_primary, "{}", run.explain());
    // Every crash's event was committed, found after the restart, and marked
    // without a second publication; each order was published once.
    assert_eq!(r.already_published, r.self_crashes, "{r:?}");
    assert_eq!(r.delivered, c.scanned_primary, "{r:?}");
    assert_eq!(r.delivery, "exactly-once");
    eprintln!(
        "at-least-once: {at_least_once} crashes, {at_least_once} duplicates; exactly-once: {} crashes, 0 duplicates",
        r.self_crashes
    );
}

#[test]
fn mongo_polling_outbox_into_a_topic_exactly_once_under_faults() {
    let run = run_bundled("kafka-outbox-mongo-poll.toml", "ferretdb", |t| t);
    let c = run.checker();
    let r = relay(&run);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(c.divergence, 0, "{}", run.explain());
    assert_eq!(c.scanned_secondary, c.scanned_primary, "{}", run.explain());
    assert!(r.drained, "{r:?}");
    // The faults bit: the transactions waited out the topic's proxy being down
    // (librdkafka reconnects within the commit's bound), the relay was killed
    // once, and it crashed between publishing and marking.
    let ttc = &run.result.relay.as_ref().unwrap().time_to_consistency_ms;
    assert!(ttc.max >= 1500.0, "{ttc:?}");
    assert_eq!(r.fault_crashes, 1, "{r:?}");
    assert!(r.self_crashes > 0, "{r:?}");
    // What a crash had committed was marked, never published twice: the relay's
    // publications never exceed the orders, and with what it found committed
    // after its restarts they cover every order. (A publication committed by an
    // incarnation that died before marking is counted by no incarnation's
    // `delivered`; how many depends on where the kill lands.)
    assert!(r.delivered <= c.scanned_primary, "{r:?}");
    assert!(
        r.delivered + r.already_published >= c.scanned_primary,
        "{r:?}"
    );
    assert_eq!(c.duplicates, 0, "{}", run.explain());
}

/// Every Toxiproxy fault on the producer's connection, and a paused broker, one
/// after another in one run: whatever each does, the history's formula holds, and
/// nothing lands twice but what the producer itself sent twice.
#[test]
fn every_fault_on_the_producers_connection_keeps_the_history_honest() {
    let faults = [
        ("latency", "latency = \"800ms\""),
        ("bandwidth", "rate_kbps = 32"),
        ("slow_close", "delay = \"800ms\""),
        ("timeout", "timeout = \"0ms\""),
        ("reset_peer", "timeout = \"0ms\""),
        (
            "slicer",
            "average_size = 8\nsize_variation = 4\ndelay = \"10ms\"",
        ),
        ("limit_data", "bytes = 2000"),
        ("down", ""),
    ];
    let mut text = std::fs::read_to_string(repo().join("scenarios/kafka-producer-retries.toml"))
        .unwrap()
        .split("[[faults]]")
        .next()
        .unwrap()
        .replace(
            "name = \"kafka-producer-retries\"",
            "name = \"e2e-kafka-every-fault\"",
        )
        .replace("idempotence = false", "idempotence = true")
        .replace("duration = \"7s\"", "duration = \"30s\"")
        .replace("op_timeout = \"3s\"", "op_timeout = \"2s\"");
    for (i, (kind, attributes)) in faults.iter().enumerate() {
        text += &format!(
            "[[faults]]\nkind = \"{kind}\"\nside = \"secondary\"\nstart = \"{}s\"\nduration = \"1500ms\"\n{attributes}\n",
            1 + 3 * i
        );
    }
    text += "[[faults]]\nkind = \"process-pause\"\nserver = \"kafka\"\nstart = \"25s\"\nduration = \"2s\"\n";
    text += "[check]\nsettle = \"3s\"\n[expect]\norphans = \"any\"\nlost_acks = \"any\"\nduplicates = \"any\"\ndivergence = \"any\"\n";
    let _kafka = lock("kafka");
    let proxies = OwnProxies::new(upstream("dynamodb"));
    let s = Scratch::new();
    let run = s.run(&s.write("every-fault.toml", &proxies.route(&text)));
    let c = run.checker();
    assert!(run.code == 0 || run.code == 1, "{}", run.explain());
    assert_eq!(
        run.result.faults.len(),
        faults.len() + 1,
        "{}",
        run.explain()
    );
    assert!(
        run.result.faults.iter().all(|w| w.error.is_none()),
        "{:?}",
        run.result.faults
    );
    // The faults bit: publishes failed or stayed unanswered, or the producer had
    // to send again (most faults here are ridden out by its own retries).
    let resent = client(&run, "resent@secondary");
    let bitten = run.count(|e| e.secondary != SideOutcome::Ok);
    assert!(bitten + resent > 0, "no fault bit: {}", run.explain());
    assert_naive_formula(&run);
    // Even idempotent, librdkafka re-sequences messages under a new producer
    // epoch after an in-flight timeout (the paused broker), so a message whose
    // first copy the broker held can land twice. Never more than it resent.
    assert!(
        c.duplicates <= resent,
        "{} duplicates, {resent} resends: {}",
        c.duplicates,
        run.explain()
    );
    // `fail` policy: the caller heard "ok" only for acknowledged publishes.
    assert_eq!(c.lost_acks, 0, "{}", run.explain());
}
