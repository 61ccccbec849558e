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

#[test]
fn a_kafka_topic_holds_only_a_secondary_and_takes_its_own_options_only() {
    let kafka = "name = \"t\"\n[target.primary]\nstore = \"cassandra\"\n[target.secondary]\nstore = \"kafka\"\n[pattern]\nname = \"outbox\"\nidempotence = true\n[pattern.relay]\ndelivery = \"exactly-once\"\n[workload]\nrate = 10\nduration = \"2s\"\n";
    let s = parse(Path::new("s.toml"), kafka).unwrap();
    assert!(s.pattern.idempotence);
    assert_eq!(
        s.pattern.relay.delivery,
        crate::pattern::Delivery::ExactlyOnce
    );
    // A topic appends: the relay is not idempotent, whatever it keys by.
    assert!(!s.pattern.relay.idempotent);
    assert_eq!(
        s.target.secondary.endpoint,
        SideEndpoint::Proxy("kafka_secondary".into())
    );
    // Keying cannot make a replay an overwrite on a topic.
    let e = err(&kafka.replace("[pattern.relay]\n", "[pattern.relay]\nidempotent = true\n"));
    assert_eq!(e.field, "pattern.relay.idempotent");
    assert!(e.problem.contains("appends"), "{e}");
    // Exactly-once with several workers: rejected, with the fix.
    let e = err(&kafka.replace("[pattern.relay]\n", "[pattern.relay]\nworkers = 2\n"));
    assert_eq!(e.field, "pattern.relay.delivery");
    assert!(e.fix.contains("workers = 1"), "{e}");
    // Kafka's options elsewhere: rejected.
    let cassandra = kafka.replace("store = \"kafka\"", "store = \"cassandra\"");
    let e = err(&cassandra);
    assert_eq!(e.field, "pattern.idempotence");
    let e = err(&cassandra.replace("idempotence = true\n", ""));
    assert_eq!(e.field, "pattern.relay.delivery");
    // Naive takes the producer's idempotence, not the relay's delivery.
    let naive = "name = \"t\"\n[target.primary]\nstore = \"dynamodb\"\n[target.secondary]\nstore = \"kafka\"\n[pattern]\nname = \"naive\"\nidempotence = true\n[workload]\nrate = 10\nduration = \"2s\"\n";
    parse(Path::new("s.toml"), naive).unwrap();
    let e = err(&naive.replace("idempotence = true", "secondary_key = \"fresh\""));
    assert_eq!(e.field, "pattern.secondary_key");
    assert!(!e.fix.contains("relay.delivery"), "{e}");
    // Kafka as the primary, or in a pattern that needs one store: rejected.
    let e = err(&naive.replace("store = \"dynamodb\"", "store = \"kafka\""));
    assert_eq!(e.field, "target.primary.store");
    let e = err(&naive.replace(
        "name = \"naive\"\nidempotence = true",
        "name = \"transaction\"",
    ));
    assert_eq!(e.field, "pattern.name");
}

/// An `[app]` scenario on DynamoDB (the example naive service's schema), with
/// `app` as the `[app]` table's keys (at least `url`).
pub(crate) const APP_SIDES: &str = r#"
[app.service]
command = ["python3", "order_service.py"]
env = { STORE = "dynamodb", PORT = "{port}", ORDERS_ENDPOINT = "http://{primary}", EVENTS_ENDPOINT = "http://{secondary}" }
ready = "http://127.0.0.1:{port}/health"
[app.primary]
table = "{namespace}_orders"
order_id = "orderId"
fields = { customer_id = "customerId", amount_cents = "totalCents" }
[app.secondary]
table = "{namespace}_order_events"
key = "eventId"
order_id = "orderId"
fields = { customer_id = "customerId", amount_cents = "totalCents" }
"#;

pub(crate) fn app_text(app: &str, rest: &str) -> String {
    format!(
        "name = \"app\"\n[target]\nstore = \"dynamodb\"\n[workload]\nrate = 10\nduration = \"5s\"\n{rest}\n[app]\n{app}\n{APP_SIDES}"
    )
}

pub(crate) fn app_scenario(app: &str) -> Scenario {
    parse(Path::new("app.toml"), &app_text(app, "")).expect("a valid [app] scenario")
}

/// A scenario on the three-node cluster with `extra` appended.
fn cluster(pattern: &str, extra: &str) -> String {
    format!(
        "name = \"c\"\n[target]\nstore = \"cassandra\"\nserver = \"cassandra-cluster\"\n{extra}\n[pattern]\nname = \"{pattern}\"\n[workload]\nrate = 10\nduration = \"10s\"\n"
    )
}

#[test]
fn cluster_sides_go_through_the_per_node_proxies_and_a_coordinator_is_the_contact() {
    let s = parse(Path::new("c.toml"), &cluster("naive", "")).unwrap();
    assert_eq!(
        s.target.primary.endpoint,
        SideEndpoint::Proxy("cassandra_cluster_primary_n1".into())
    );
    assert_eq!(
        s.target.proxies(Side::Secondary),
        vec![
            "cassandra_cluster_secondary_n1",
            "cassandra_cluster_secondary_n2",
            "cassandra_cluster_secondary_n3"
        ]
    );
    let s = parse(
        Path::new("c.toml"),
        &cluster(
            "naive",
            "[target.primary]\ncoordinator = \"c3\"\nconsistency = \"ONE\"\n[target.secondary]\nconsistency = \"all\"",
        ),
    )
    .unwrap();
    assert_eq!(
        s.target.primary.endpoint,
        SideEndpoint::Proxy("cassandra_cluster_primary_n3".into())
    );
    let p = s.target.cql(Side::Primary);
    assert_eq!(p.coordinator.map(|n| n.to_string()).as_deref(), Some("c3"));
    assert_eq!(p.consistency.as_deref(), Some("one"));
    assert_eq!(
        s.target.cql(Side::Secondary).consistency.as_deref(),
        Some("all")
    );
    assert_eq!(s.target.cql(Side::Relay), CqlSettings::default());
    // The cluster's proxies are its own.
    let e = err(&cluster("naive", "[target.primary]\nproxy = \"mine\""));
    assert_eq!(e.field, "target.primary");
    assert!(e.fix.contains("coordinator"), "{}", e.fix);
}

#[test]
fn connection_settings_apply_only_where_they_have_an_effect() {
    // Not Cassandra.
    let e = err(&GOOD.replace(
        "[pattern]",
        "[target.primary]\nconsistency = \"one\"\n[pattern]",
    ));
    assert_eq!(e.field, "target.primary.consistency");
    assert!(e.problem.contains("dynamodb"), "{}", e.problem);
    // A coordinator needs several nodes.
    let single = cluster("naive", "[target.primary]\ncoordinator = \"c1\"")
        .replace("server = \"cassandra-cluster\"", "server = \"cassandra\"");
    let e = err(&single);
    assert_eq!(e.field, "target.primary.coordinator");
    assert!(e.fix.contains("cassandra-cluster"), "{}", e.fix);
    // No such node.
    let e = err(&cluster("naive", "[target.primary]\ncoordinator = \"c4\""));
    assert!(e.fix.contains("c1, c2 or c3"), "{}", e.fix);
    // A logged batch sends nothing through the secondary connection.
    let e = err(&cluster(
        "logged-batch",
        "[target.secondary]\nconsistency = \"one\"",
    ));
    assert_eq!(e.field, "target.secondary.consistency");
    assert!(e.fix.contains("[target.primary]"), "{}", e.fix);
    // A synchronous pattern has no relay.
    let e = err(&cluster("naive", "[target.relay]\nconsistency = \"one\""));
    assert!(e.problem.contains("has no relay"), "{}", e.problem);
    // SERIAL is the Paxos phase's level, and only where LWTs are sent.
    let e = err(&cluster(
        "naive",
        "[target.primary]\nconsistency = \"serial\"",
    ));
    assert!(e.fix.contains("serial_consistency"), "{}", e.fix);
    let e = err(&cluster(
        "naive",
        "[target.primary]\nserial_consistency = \"serial\"",
    ));
    assert!(
        e.problem.contains("no lightweight transaction"),
        "{}",
        e.problem
    );
    let ok = cluster(
        "outbox",
        "[target.relay]\nserial_consistency = \"local_serial\"\ncoordinator = \"c2\"",
    );
    let s = parse(Path::new("c.toml"), &ok).unwrap();
    assert_eq!(
        s.target.cql(Side::Relay).serial_consistency.as_deref(),
        Some("local_serial")
    );
    assert_eq!(
        s.target.relay,
        SideEndpoint::Proxy("cassandra_cluster_relay_n2".into())
    );
}

#[test]
fn faults_between_nodes_need_the_cluster_and_name_its_nodes() {
    let fault = |attrs: &str| format!("[[faults]]\nstart = \"2s\"\nduration = \"3s\"\n{attrs}\n");
    let on = |attrs: &str| format!("{}{}", cluster("naive", ""), fault(attrs));
    let s = parse(
        Path::new("c.toml"),
        &on("kind = \"partition\"\nnodes = [\"c3\"]"),
    )
    .unwrap();
    assert_eq!(s.faults[0].short(), "partition@c3 2s+3s");
    let json = serde_json::to_value(&s.faults[0]).unwrap();
    assert_eq!(
        (json["kind"].as_str(), json["nodes"][0].as_str()),
        (Some("partition"), Some("c3"))
    );
    let s = parse(
        Path::new("c.toml"),
        &on("kind = \"partition\"\nfrom = \"c3\"\nto = \"c1\""),
    )
    .unwrap();
    assert_eq!(s.faults[0].kind.nodes().as_deref(), Some("c3->c1"));
    for (attrs, field, says) in [
        ("kind = \"partition\"", "faults[0].nodes", "either `nodes`"),
        (
            "kind = \"partition\"\nnodes = [\"c1\", \"c2\", \"c3\"]",
            "faults[0].nodes",
            "nothing is cut",
        ),
        (
            "kind = \"partition\"\nfrom = \"c1\"\nto = \"c1\"",
            "faults[0].to",
            "two nodes",
        ),
        (
            "kind = \"loss\"\nnodes = [\"c1\"]",
            "faults[0].percent",
            "missing",
        ),
        (
            "kind = \"loss\"\nnodes = [\"c1\"]\npercent = 0",
            "faults[0].percent",
            "not a percentage",
        ),
        (
            "kind = \"delay\"\nnodes = [\"c9\"]\ndelay = \"5ms\"",
            "faults[0].nodes",
            "not a node",
        ),
        ("kind = \"node-kill\"", "faults[0].node", "missing"),
        (
            "kind = \"node-pause\"\nnode = \"c2\"\nside = \"primary\"",
            "faults[0].side",
            "not on a side",
        ),
        (
            "kind = \"node-kill\"\nnode = \"c2\"\npercent = 3",
            "faults[0].percent",
            "not an attribute",
        ),
    ] {
        let e = err(&on(attrs));
        assert_eq!(e.field, field, "{attrs}: {e}");
        assert!(e.problem.contains(says), "{attrs}: {}", e.problem);
    }
    // Elsewhere than on the cluster.
    let e = err(&format!("{}{}", GOOD, fault("kind = \"node-kill\"\nnode = \"c1\"")).replace(
        "[[faults]]\nkind = \"down\"\nside = \"secondary\"\nstart = \"2s\"\nduration = \"1s\"\n",
        "",
    ));
    assert_eq!(e.field, "faults[0].kind");
    assert!(e.fix.contains("cassandra-cluster"), "{}", e.fix);
    // The cluster's processes are its nodes.
    let e = err(&on(
        "kind = \"process-kill\"\nserver = \"cassandra-cluster\"",
    ));
    assert!(e.fix.contains("node-kill"), "{}", e.fix);
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
fn a_reader_chooses_its_coordinator_on_the_cluster_only() {
    let on_cluster = with_readers(
        &cluster("naive", ""),
        "[readers.primary]\nconsistency = \"one\"\ncoordinator = \"c3\"\n",
    );
    let s = parse(Path::new("c.toml"), &on_cluster).unwrap();
    let r = s.readers.unwrap();
    assert_eq!(
        r.primary.coordinator.map(|n| n.to_string()).as_deref(),
        Some("c3")
    );
    assert_eq!(r.secondary.coordinator, None);
    assert_eq!(r.primary.describe(), "consistency one, coordinator c3");
    // The writes keep their own coordinator (the contact point c1).
    assert_eq!(s.target.cql(Side::Primary).coordinator, None);
    // A single server has no node to choose.
    let single = on_cluster.replace("server = \"cassandra-cluster\"", "server = \"cassandra\"");
    let e = err(&single);
    assert_eq!(e.field, "readers.primary.coordinator");
    assert!(e.fix.contains("cassandra-cluster"), "{e}");
    // Nor do stores without nodes to choose.
    let e = err(&with_readers(
        GOOD,
        "[readers.secondary]\ncoordinator = \"c1\"\n",
    ));
    assert_eq!(e.field, "readers.secondary.coordinator");
    assert!(e.fix.contains("no such choice"), "{e}");
    // No such node.
    let e = err(&on_cluster.replace("\"c3\"", "\"c4\""));
    assert_eq!(e.field, "readers.primary.coordinator");
    assert!(e.fix.contains("c1, c2 or c3"), "{e}");
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
