//! `[app]` validation: what is accepted, its defaults, and every rejection
//! naming the field and the fix.

use super::tests::{app_scenario, app_text};
use super::*;
use std::path::Path;

const URL: &str = "url = \"http://127.0.0.1:{port}/orders\"";

fn err(app: &str, rest: &str) -> ScenarioError {
    parse(Path::new("app.toml"), &app_text(app, rest)).expect_err("must be rejected")
}

#[test]
fn an_app_scenario_has_defaults_and_needs_no_pattern() {
    let s = app_scenario(URL);
    let a = s.app.as_ref().unwrap();
    assert_eq!(a.request.method, "POST");
    assert_eq!(a.request.timeout, s.workload.op_timeout);
    assert!(
        a.request
            .headers
            .iter()
            .any(|(n, v)| n == "Content-Type" && v == "application/json")
    );
    assert!(a.fail_statuses.iter().any(|r| r.contains(400)));
    assert!(
        !a.fail_statuses
            .iter()
            .any(|r| r.contains(409) || r.contains(503))
    );
    assert!(!a.async_secondary);
    assert_eq!(a.primary.key, "orderId");
    assert_eq!(a.secondary.key, "eventId");
    assert!(
        a.primary.drop,
        "a table named from {{namespace}} is this run's own"
    );
    assert!(!a.primary.create);
    assert_eq!(s.check.fields, vec![Field::CustomerId, Field::AmountCents]);
    assert_eq!(s.pattern_name(), "app");
    assert!(!s.uses_relay_connection());
    assert_eq!(s.check.settle, Duration::from_secs(1));
}

#[test]
fn a_relay_makes_the_secondary_async_and_uses_the_relay_connection() {
    let text = app_text(URL, "").replace(
        "[app.primary]",
        "[app.relay]\ncommand = \"python3 outbox_relay.py\"\nenv = { ORDERS_ENDPOINT = \"http://{relay}\" }\n[app.primary]",
    );
    let s = parse(Path::new("a.toml"), &text).unwrap();
    let a = s.app.as_ref().unwrap();
    assert!(a.async_secondary && s.is_async() && s.uses_relay_connection());
    assert_eq!(s.check.settle, Duration::from_secs(30));
    assert_eq!(
        a.relay.as_ref().unwrap().command.as_ref().unwrap(),
        &vec![
            "/bin/sh".to_string(),
            "-c".into(),
            "python3 outbox_relay.py".into()
        ]
    );
    // Killing the relay dualwrite started: valid.
    let kill = format!(
        "{text}[[faults]]\nkind = \"process-kill\"\nprocess = \"relay\"\nstart = \"1s\"\nduration = \"1s\"\n"
    );
    let s = parse(Path::new("a.toml"), &kill).unwrap();
    assert_eq!(
        s.faults[0].kind,
        FaultKind::AppKill {
            process: "relay".into()
        }
    );
    assert_eq!(s.faults[0].short(), "process-kill@relay 1s+1s");
}

#[test]
fn malformed_app_sections_name_the_field_and_the_fix() {
    let cases: Vec<(String, &str, &str, &str)> = vec![
        ("url = \"ftp://x/orders\"".into(), "", "app.url", "http://"),
        (
            URL.replace("orders", "{ordres}"),
            "",
            "app.url",
            "unknown template",
        ),
        (format!("{URL}\nmethod = \"GET\""), "", "app.method", "POST"),
        (
            format!("{URL}\nbody = '{{\"id\": {{{{order_id}}}}}}'"),
            "",
            "app.body",
            "not JSON",
        ),
        (
            format!("{URL}\nbody = '{{\"n\": {{{{amount_cents}}}}}}'"),
            "",
            "app.body",
            "{{order_id}}",
        ),
        (
            format!("{URL}\nbody = '{{{{orderid}}}}'"),
            "",
            "app.body",
            "unknown placeholder",
        ),
        (
            format!("{URL}\nfail_statuses = [201]"),
            "",
            "app.fail_statuses",
            "2xx",
        ),
        (
            format!("{URL}\nfail_statuses = [\"6xx\"]"),
            "",
            "app.fail_statuses",
            "status class",
        ),
        (
            format!("{URL}\ntimeout = \"soon\""),
            "",
            "app.timeout",
            "duration",
        ),
        (
            format!("{URL}\nheaders = {{ \"Bad Header\" = \"x\" }}"),
            "",
            "app.headers.Bad Header",
            "header name",
        ),
        (format!("{URL}\ntypo = 1"), "", "typo", "unknown field"),
    ];
    for (app, rest, field, says) in cases {
        let e = err(&app, rest);
        assert_eq!(e.field, field, "{e}");
        assert!(e.to_string().contains(says), "expected `{says}` in: {e}");
        assert!(!e.fix.is_empty() && e.line > 0, "{e}");
    }
}

#[test]
fn processes_and_locations_are_checked_against_what_can_apply() {
    let base = app_text(URL, "");
    let bad = |from: &str, to: &str| {
        parse(Path::new("a.toml"), &base.replacen(from, to, 1)).expect_err("must be rejected")
    };
    let e = bad(
        "command = [\"python3\", \"order_service.py\"]",
        "attach = true",
    );
    assert_eq!(e.field, "app.service.env", "{e}");
    let e = bad(
        "command = [\"python3\", \"order_service.py\"]",
        "command = []",
    );
    assert_eq!(e.field, "app.service.command", "{e}");
    let e = bad("order_id = \"orderId\"\nfields", "fields");
    assert_eq!(e.field, "app.primary.order_id", "{e}");
    let e = bad("table = \"{namespace}_orders\"", "collection = \"orders\"");
    assert_eq!(e.field, "app.primary.collection", "{e}");
    assert!(e.fix.contains("`table`"), "{e}");
    let e = bad(
        "amount_cents = \"totalCents\" }",
        "total = \"totalCents\" }",
    );
    assert_eq!(e.field, "app.primary.fields.total", "{e}");
    // Cassandra tables need the service's schema: dualwrite does not create them.
    let cass = base
        .replace("store = \"dynamodb\"", "store = \"cassandra\"")
        .replace(
            "table = \"{namespace}_orders\"",
            "keyspace = \"{namespace}\"\ntable = \"orders\"\ncreate = true",
        )
        .replace(
            "table = \"{namespace}_order_events\"",
            "keyspace = \"{namespace}\"\ntable = \"events\"",
        );
    let e = parse(Path::new("a.toml"), &cass).expect_err("create on cassandra");
    assert_eq!(e.field, "app.primary.create", "{e}");
    // MongoDB names a side by database and collection, keyed by _id.
    let mongo = base
        .replace("store = \"dynamodb\"", "store = \"mongodb\"")
        .replace(
            "table = \"{namespace}_orders\"\norder_id = \"orderId\"",
            "database = \"{namespace}\"\ncollection = \"orders\"\norder_id = \"_id\"",
        )
        .replace(
            "table = \"{namespace}_order_events\"\nkey = \"eventId\"",
            "database = \"{namespace}\"\ncollection = \"events\"",
        );
    let s = parse(Path::new("a.toml"), &mongo).unwrap();
    assert_eq!(s.app.as_ref().unwrap().secondary.key, "_id");
    // A compared field must be mapped on both sides.
    let one_sided = base.replacen(
        "fields = { customer_id = \"customerId\", amount_cents = \"totalCents\" }",
        "fields = { amount_cents = \"totalCents\" }",
        1,
    );
    let s = parse(Path::new("a.toml"), &one_sided).unwrap();
    assert_eq!(s.check.fields, vec![Field::AmountCents]);
    let e = parse(
        Path::new("a.toml"),
        &one_sided.replace(
            "[workload]",
            "[check]\nfields = [\"customer_id\"]\n[workload]",
        ),
    )
    .expect_err("unmapped compared field");
    assert_eq!(e.field, "check.fields", "{e}");
}

#[test]
fn faults_that_cannot_reach_the_service_are_rejected() {
    let fault = |body: &str| {
        format!(
            "{}[[faults]]\n{body}\nstart = \"1s\"\nduration = \"1s\"\n",
            app_text(URL, "")
        )
    };
    let bad = |body: &str| parse(Path::new("a.toml"), &fault(body)).expect_err("must be rejected");
    // Killing an attached service dualwrite did not start.
    let attached = app_text(URL.replace("{port}", "8080").as_str(), "")
        .replace("command = [\"python3\", \"order_service.py\"]\nenv = { STORE = \"dynamodb\", PORT = \"{port}\", ORDERS_ENDPOINT = \"http://{primary}\", EVENTS_ENDPOINT = \"http://{secondary}\" }\nready = \"http://127.0.0.1:{port}/health\"", "attach = true");
    let e = parse(
        Path::new("a.toml"),
        &format!("{attached}[[faults]]\nkind = \"process-kill\"\nprocess = \"service\"\nstart = \"1s\"\nduration = \"1s\"\n"),
    )
    .expect_err("attached");
    assert_eq!(e.field, "faults[0].process", "{e}");
    assert!(e.problem.contains("attached"), "{e}");
    // An attached service's URL cannot use the port dualwrite would have chosen.
    let e = parse(
        Path::new("a.toml"),
        &attached.replace("127.0.0.1:8080", "127.0.0.1:{port}"),
    )
    .expect_err("port");
    assert_eq!(e.field, "app.url", "{e}");
    let e = bad("kind = \"process-kill\"\nprocess = \"relay\"");
    assert!(e.problem.contains("no relay"), "{e}");
    let e = bad("kind = \"process-pause\"\nprocess = \"servce\"");
    assert_eq!(e.field, "faults[0].process", "{e}");
    let e = bad("kind = \"relay-crash\"");
    assert!(e.problem.contains("dualwrite's own relay"), "{e}");
    let e = bad("kind = \"sdk-error\"");
    assert_eq!(e.field, "faults[0].kind", "{e}");
    let e = bad("kind = \"down\"\nside = \"relay\"");
    assert_eq!(e.field, "faults[0].side", "{e}");
    let e = bad("kind = \"process-kill\"\nprocess = \"service\"\nserver = \"moto\"");
    assert_eq!(e.field, "faults[0].server", "{e}");
    // Network faults on the service's store connections, and killing it: valid.
    parse(
        Path::new("a.toml"),
        &fault("kind = \"down\"\nside = \"secondary\""),
    )
    .unwrap();
    parse(
        Path::new("a.toml"),
        &fault("kind = \"process-pause\"\nprocess = \"service\""),
    )
    .unwrap();
}

#[test]
fn pattern_and_app_exclude_each_other_and_one_is_needed() {
    let both = app_text(URL, "[pattern]\nname = \"naive\"");
    let e = parse(Path::new("a.toml"), &both).expect_err("both");
    assert_eq!(e.field, "pattern", "{e}");
    let neither =
        "name = \"x\"\n[target]\nstore = \"dynamodb\"\n[workload]\nrate = 1\nduration = \"1s\"\n";
    let e = parse(Path::new("a.toml"), neither).expect_err("neither");
    assert!(e.problem.contains("neither [pattern] nor [app]"), "{e}");
    let memory = app_text(URL, "").replace("store = \"dynamodb\"", "store = \"memory\"");
    let e = parse(Path::new("a.toml"), &memory).expect_err("memory");
    assert!(e.problem.contains("in-memory"), "{e}");
}
