use super::*;
use std::path::Path;

const GOOD: &str = r#"
name = "t"
[target]
store = "dynamodb"
[pattern]
name = "naive"
[workload]
rate = 100
duration = "10s"
[[faults]]
kind = "down"
side = "secondary"
start = "2s"
duration = "1s"
"#;

/// A valid in-memory scenario, with `extra` appended (faults, expect tables).
pub(crate) fn memory_scenario(extra: &str) -> Scenario {
    let text = format!(
        "name = \"mem\"\n[target]\nstore = \"memory\"\n[pattern]\nname = \"naive\"\n[workload]\nrate = 100\nduration = \"1s\"\n{extra}"
    );
    parse(Path::new("mem.toml"), &text).expect("a valid in-memory scenario")
}

fn err(text: &str) -> ScenarioError {
    parse(Path::new("s.toml"), text).expect_err("must be rejected")
}

#[test]
fn valid_scenario_has_defaults() {
    let s = parse(Path::new("s.toml"), GOOD).unwrap();
    assert_eq!(
        s.target.primary.endpoint,
        SideEndpoint::Proxy("dynamodb_primary".into())
    );
    assert_eq!(s.workload.planned_ops(), 1000);
    assert_eq!(s.expect, Expect::zero());
    assert_eq!(s.faults[0].windows(Duration::from_secs(10)).len(), 1);
}

#[test]
fn unknown_key_names_line_and_field() {
    let e = err(&GOOD.replace("rate = 100", "rate = 100\nrat = 3"));
    assert_eq!(e.line, 9);
    assert_eq!(e.field, "rat");
}

#[test]
fn negative_rate_points_at_the_rate() {
    let e = err(&GOOD.replace("rate = 100", "rate = -5"));
    assert_eq!((e.line, e.field.as_str()), (8, "workload.rate"));
}

#[test]
fn wrong_type_is_rejected() {
    let e = err(&GOOD.replace("rate = 100", "rate = \"fast\""));
    assert_eq!(e.line, 8);
}

#[test]
fn fault_outside_the_run_is_rejected() {
    let e = err(&GOOD.replace("start = \"2s\"", "start = \"20s\""));
    assert_eq!(e.field, "faults[0].start");
    assert_eq!(e.line, 13);
}

#[test]
fn inapplicable_pattern_gives_the_reason() {
    let e = err(&GOOD.replace("\"naive\"", "\"logged-batch\""));
    assert_eq!(e.field, "pattern.name");
    assert!(e.problem.contains("Cassandra construct"), "{}", e.problem);
}

#[test]
fn bad_toml_syntax_is_located() {
    let e = err("name = \"x\"\n[target\n");
    assert_eq!(e.line, 2);
}

#[test]
fn attribute_of_another_fault_kind_is_rejected() {
    let e = err(&GOOD.replace("duration = \"1s\"", "duration = \"1s\"\nlatency = \"5ms\""));
    assert_eq!(e.field, "faults[0].latency");
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration("-1s"), None);
    assert_eq!(parse_duration("1e400s"), None);
}

#[test]
fn lwt_insert_is_rejected_for_the_cassandra_outbox() {
    let text = GOOD
        .replace("store = \"dynamodb\"", "store = \"cassandra\"")
        .replace("name = \"naive\"", "name = \"outbox\"\nlwt_insert = true");
    assert_eq!(err(&text).field, "pattern.lwt_insert");
}

/// Every option that used to be accepted and silently ignored is now rejected,
/// naming the file, line, field and the options that do apply.
#[test]
fn options_a_store_does_not_honour_are_rejected_with_the_ones_it_does() {
    let scenario = |store: &str, server: &str, pattern: &str, option: &str| {
        format!(
            "name = \"t\"\n[target]\nstore = \"{store}\"\n{server}[pattern]\nname = \"{pattern}\"\n{option}\n[workload]\nrate = 10\nduration = \"2s\"\n"
        )
    };
    let mongoeco = "server = \"mongoeco\"\n";
    let cases = [
        // MongoDB transactions take no token, report no conflicts, put no conditions.
        (
            "mongodb",
            mongoeco,
            "transaction",
            "idempotency_token = \"fresh\"",
            "pattern.idempotency_token",
        ),
        (
            "mongodb",
            mongoeco,
            "transaction",
            "on_conflict = \"drop\"",
            "pattern.on_conflict",
        ),
        (
            "mongodb",
            mongoeco,
            "transaction",
            "conditions = false",
            "pattern.conditions",
        ),
        // Cassandra's secondary table is keyed by (customer, order), not an event id.
        (
            "cassandra",
            "",
            "naive",
            "secondary_key = \"fresh\"",
            "pattern.secondary_key",
        ),
        // Consistency levels are Cassandra's.
        (
            "dynamodb",
            "",
            "naive",
            "consistency = \"one\"",
            "pattern.consistency",
        ),
        (
            "mongodb",
            "",
            "naive",
            "consistency = \"one\"",
            "pattern.consistency",
        ),
        // Retries of `naive` act only with the retry policy.
        ("dynamodb", "", "naive", "retries = 3", "pattern.retries"),
        // Relay options only some sources have.
        (
            "dynamodb",
            "",
            "streams",
            "[pattern.relay]\nclaim_ttl = \"1s\"",
            "pattern.relay.claim_ttl",
        ),
        (
            "mongodb",
            "",
            "outbox",
            "[pattern.relay]\nworkers = 2",
            "pattern.relay.workers",
        ),
        (
            "cassandra",
            "",
            "outbox",
            "[pattern.relay]\nmode = \"poll\"",
            "pattern.relay.mode",
        ),
        (
            "dynamodb",
            "",
            "transaction",
            "rearm = true",
            "pattern.rearm",
        ),
    ];
    for (store, server, pattern, option, field) in cases {
        let text = scenario(store, server, pattern, option);
        let e = err(&text);
        assert_eq!(e.field, field, "{store}/{pattern}: {e}");
        let line = text
            .lines()
            .position(|l| option.lines().last() == Some(l))
            .unwrap()
            + 1;
        assert_eq!(e.line, line, "{e}");
        assert!(e.problem.contains("is not honoured by"), "{e}");
        assert!(e.fix.starts_with("remove it; here"), "{e}");
    }
    // And the same options where they are honoured pass.
    for (store, server, pattern, option) in [
        (
            "dynamodb",
            "",
            "transaction",
            "idempotency_token = \"fresh\"\non_conflict = \"drop\"\nconditions = false",
        ),
        ("cassandra", "", "naive", "consistency = \"one\""),
        ("dynamodb", "", "naive", "secondary_key = \"fresh\""),
        ("dynamodb", "", "outbox", "rearm = true"),
        (
            "cassandra",
            "",
            "outbox",
            "[pattern.relay]\nclaim_ttl = \"1s\"\nworkers = 2",
        ),
        ("mongodb", "", "outbox", "[pattern.relay]\nmode = \"poll\""),
    ] {
        let text = scenario(store, server, pattern, option);
        parse(Path::new("s.toml"), &text).unwrap_or_else(|e| panic!("{store}/{pattern}: {e}"));
    }
}

#[test]
fn sides_may_live_in_two_stores_but_one_atomic_call_needs_one() {
    let text = "name = \"t\"\n[target.primary]\nstore = \"dynamodb\"\n[target.secondary]\nstore = \"mongodb\"\n[pattern]\nname = \"naive\"\nsecondary_key = \"fresh\"\n[workload]\nrate = 10\nduration = \"2s\"\n";
    let s = parse(Path::new("s.toml"), text).unwrap();
    assert_eq!(s.target.stores_label(), "dynamodb+mongodb");
    assert_eq!(s.target.servers_label(), "moto+ferretdb");
    assert_eq!(s.target.relay, SideEndpoint::Proxy("dynamodb_relay".into()));
    assert_eq!(
        s.target.secondary.endpoint,
        SideEndpoint::Proxy("ferretdb_secondary".into())
    );
    // A relay from one store to another is fine; a transaction across two is not.
    parse(
        Path::new("s.toml"),
        &text.replace(
            "name = \"naive\"\nsecondary_key = \"fresh\"",
            "name = \"streams\"",
        ),
    )
    .unwrap();
    let e = err(&text.replace(
        "name = \"naive\"\nsecondary_key = \"fresh\"",
        "name = \"transaction\"",
    ));
    assert_eq!(e.field, "pattern.name");
    assert!(
        e.problem.contains("both sides must live in one store"),
        "{e}"
    );
}

#[test]
fn process_faults_name_a_local_server_this_scenario_uses() {
    let fault = |server: &str| {
        format!(
            "{GOOD}[[faults]]\nkind = \"process-kill\"\nserver = \"{server}\"\nstart = \"2s\"\nduration = \"1s\"\n"
        )
    };
    // A DynamoDB scenario that kills Cassandra: rejected.
    let e = err(&fault("cassandra"));
    assert_eq!(e.field, "faults[1].server");
    assert!(e.fix.contains("moto"), "{e}");
    // Killing moto: valid, with a warning that its data is in memory.
    let s = parse(Path::new("s.toml"), &fault("moto")).unwrap();
    assert!(s.warnings[0].contains("in memory"), "{:?}", s.warnings);
}

/// `text` with a `[readers]` section appended.
fn with_readers(text: &str, readers: &str) -> String {
    format!("{text}\n[readers]\n{readers}")
}

#[test]
fn readers_have_defaults_and_sorted_delays() {
    let s = parse(Path::new("s.toml"), &with_readers(GOOD, "")).unwrap();
    let r = s.readers.unwrap();
    assert_eq!(r.rate, None);
    assert_eq!(r.concurrency, 16);
    assert_eq!(
        r.delays,
        [0, 10, 100, 1000].map(Duration::from_millis).to_vec()
    );
    assert_eq!(
        (r.unacknowledged, r.primary.consistency.clone()),
        (1.0, None)
    );
    let s = parse(
        Path::new("s.toml"),
        &with_readers(GOOD, "rate = 50\ndelays = [\"1s\", \"0ms\"]\n[readers.secondary]\nconsistency = \"STRONG\"\n"),
    )
    .unwrap();
    let r = s.readers.unwrap();
    assert_eq!(r.delays, [0, 1000].map(Duration::from_millis).to_vec());
    assert_eq!(r.secondary.consistency.as_deref(), Some("strong"));
    assert!(parse(Path::new("s.toml"), GOOD).unwrap().readers.is_none());
}

#[test]
fn read_options_a_store_does_not_honour_are_rejected_with_the_reason() {
    // The in-memory store reads one way only.
    let mem = "name = \"m\"\n[target]\nstore = \"memory\"\n[pattern]\nname = \"naive\"\n[workload]\nrate = 10\nduration = \"1s\"\n";
    let e = err(&with_readers(
        mem,
        "[readers.primary]\nconsistency = \"strong\"\n",
    ));
    assert_eq!(
        (e.field.as_str(), e.line),
        ("readers.primary.consistency", 12)
    );
    assert!(e.problem.contains("reads one way only"), "{e}");
    // DynamoDB: `eventually` / `strong`, not Cassandra's levels, no read concern.
    let e = err(&with_readers(
        GOOD,
        "[readers.primary]\nconsistency = \"quorum\"\n",
    ));
    assert!(e.fix.contains("eventually, strong"), "{e}");
    let e = err(&with_readers(
        GOOD,
        "[readers.secondary]\nread_concern = \"majority\"\n",
    ));
    assert_eq!(e.field, "readers.secondary.read_concern");
    // Strong reads of events with fresh ids would go through an index: impossible.
    let fresh = GOOD.replace(
        "name = \"naive\"",
        "name = \"naive\"\nsecondary_key = \"fresh\"",
    );
    let e = err(&with_readers(
        &fresh,
        "[readers.secondary]\nconsistency = \"strong\"\n",
    ));
    assert!(e.problem.contains("index"), "{e}");
    parse(Path::new("s.toml"), &with_readers(&fresh, "[readers.primary]\nconsistency = \"strong\"\n[readers.secondary]\nconsistency = \"eventually\"\n")).unwrap();
    // Cassandra levels; MongoDB read concern per server, read preference primary only.
    let cassandra = GOOD.replace("store = \"dynamodb\"", "store = \"cassandra\"");
    parse(
        Path::new("s.toml"),
        &with_readers(&cassandra, "[readers.secondary]\nconsistency = \"ALL\"\n"),
    )
    .unwrap();
    let mongo = GOOD.replace("store = \"dynamodb\"", "store = \"mongodb\"");
    parse(
        Path::new("s.toml"),
        &with_readers(
            &mongo,
            "[readers.primary]\nread_concern = \"local\"\nread_preference = \"primary\"\n",
        ),
    )
    .unwrap();
    let e = err(&with_readers(
        &mongo,
        "[readers.primary]\nread_concern = \"majority\"\n",
    ));
    assert!(e.problem.contains("not honoured by ferretdb"), "{e}");
    assert!(e.fix.contains("ignores it"), "{e}");
    let real = mongo.replace(
        "store = \"mongodb\"",
        "store = \"mongodb\"\nserver = \"mongodb\"",
    );
    parse(
        Path::new("s.toml"),
        &with_readers(&real, "[readers.primary]\nread_concern = \"majority\"\n"),
    )
    .unwrap();
    let e = err(&with_readers(
        &mongo,
        "[readers.secondary]\nread_preference = \"secondary\"\n",
    ));
    assert!(e.problem.contains("directConnection"), "{e}");
    let e = err(&with_readers(
        &mongo,
        "[readers.secondary]\nconsistency = \"one\"\n",
    ));
    assert_eq!(e.field, "readers.secondary.consistency");
}

#[test]
fn bad_readers_and_read_limits_without_readers_are_rejected() {
    for (readers, field) in [
        ("rate = 0", "readers.rate"),
        ("concurrency = 0", "readers.concurrency"),
        ("delays = []", "readers.delays"),
        ("delays = [\"5\"]", "readers.delays[0]"),
        ("delays = [\"10ms\", \"0.01s\"]", "readers.delays[1]"),
        ("unacknowledged = 2.0", "readers.unacknowledged"),
    ] {
        let e = err(&with_readers(GOOD, readers));
        assert_eq!(e.field, field, "{readers}: {e}");
    }
    let e = err(&with_readers(GOOD, "speed = 3"));
    assert_eq!(e.field, "speed");
    let e = err(&format!("{GOOD}\n[expect]\npartial_reads = 0\n"));
    assert_eq!(e.field, "expect.partial_reads");
    assert!(e.fix.contains("[readers]"), "{e}");
    let s = parse(
        Path::new("s.toml"),
        &with_readers(
            &format!("{GOOD}\n[expect]\npartial_reads = 0\nread_anomalies = \"any\"\n"),
            "",
        ),
    )
    .unwrap();
    assert_eq!(
        (s.expect.partial_reads, s.expect.read_anomalies),
        (Some(0), None)
    );
}
