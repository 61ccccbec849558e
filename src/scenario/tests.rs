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

fn err(text: &str) -> ScenarioError {
    parse(Path::new("s.toml"), text).expect_err("must be rejected")
}

#[test]
fn valid_scenario_has_defaults() {
    let s = parse(Path::new("s.toml"), GOOD).unwrap();
    assert_eq!(
        s.target.primary,
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
