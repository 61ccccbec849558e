//! Bad input: every malformed scenario exits 2 naming the line and field.

use crate::common::*;

const GOOD: &str = r#"name = "cli"
[target]
store = "dynamodb"
[pattern]
name = "naive"
[workload]
rate = 10
duration = "5s"
[[faults]]
kind = "down"
side = "secondary"
start = "1s"
duration = "1s"
"#;

fn rejected(text: &str, line: usize, field: &str) {
    let s = Scratch::new();
    let f = s.write("bad.toml", text);
    for cmd in ["validate", "run"] {
        let out = s.dualwrite(&[cmd, f.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains(&format!("bad.toml:{line}:")),
            "{cmd}: line {line} not in: {err}"
        );
        assert!(err.contains(field), "{cmd}: field {field} not in: {err}");
        assert!(err.contains("fix:"), "{cmd}: no fix in: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn good_scenario_validates() {
    let s = Scratch::new();
    let out = s.dualwrite(&["validate", s.write("good.toml", GOOD).to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_toml_syntax() {
    rejected(&GOOD.replace("[pattern]", "[pattern"), 4, "-");
}

#[test]
fn unknown_key() {
    rejected(
        &GOOD.replace("rate = 10", "rate = 10\nburst = 3"),
        8,
        "burst",
    );
}

#[test]
fn wrong_type() {
    rejected(&GOOD.replace("rate = 10", "rate = \"ten\""), 7, "rate");
}

#[test]
fn negative_rate() {
    rejected(&GOOD.replace("rate = 10", "rate = -10"), 7, "workload.rate");
}

#[test]
fn fault_outside_the_run() {
    rejected(
        &GOOD.replace("start = \"1s\"", "start = \"9s\""),
        12,
        "faults[0].start",
    );
}

#[test]
fn inapplicable_pattern() {
    rejected(
        &GOOD.replace("name = \"naive\"", "name = \"logged-batch\""),
        5,
        "pattern.name",
    );
}

#[test]
fn missing_file_is_bad_input() {
    let s = Scratch::new();
    let out = s.dualwrite(&["validate", "/nonexistent/x.toml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bundled_scenarios_validate() {
    let s = Scratch::new();
    let mut files: Vec<String> = std::fs::read_dir(repo().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".toml"))
        .collect();
    files.sort();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = s.dualwrite(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
