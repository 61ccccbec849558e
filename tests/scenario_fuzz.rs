//! Property-based fuzzing of the scenario parser and validator (no server needed).
//!
//! Mutates the bundled scenarios (delete/duplicate/swap lines, replace values with
//! hostile tokens, insert bytes, truncate) and asserts that parsing never panics and
//! every rejection names a line, a field and a fix. `DUALWRITE_FUZZ_SECS=600` runs it
//! for ten minutes; `DUALWRITE_FUZZ_SAVE=1` adds new distinct rejections to the corpus
//! in tests/fuzz-corpus/, which `corpus_inputs_are_rejected_cleanly` replays in CI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dualwrite::order::splitmix64;
use dualwrite::scenario;

const TOKENS: &[&str] = &[
    "-1",
    "0",
    "1e309",
    "nan",
    "inf",
    "-inf",
    "18446744073709551616",
    "9223372036854775807",
    "\"\"",
    "\"x\"",
    "\"-5s\"",
    "\"0ms\"",
    "\"999999999h\"",
    "\"1.5.5s\"",
    "true",
    "[]",
    "{}",
    "[1, \"a\"]",
    "\"\\u0000\"",
    "\"🦀\"",
    "'''",
    "\"\"\"",
    "=",
    "[[faults]]",
    "[target]",
    "\"logged-batch\"",
    "\"streams\"",
    "\"relay-crash\"",
    "\"sdk-error\"",
    "\"fail-command\"",
    "\"relay\"",
    "\"any\"",
    "1.0000001",
    "0.5",
    "2026-11-28T00:00:00Z",
    "\"upstream\"",
];

fn seeds() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    out.sort();
    out
}

fn mutate(input: &str, rng: &mut u64) -> String {
    let mut next = |n: usize| {
        *rng = splitmix64(*rng);
        (*rng % n.max(1) as u64) as usize
    };
    let mut lines: Vec<String> = input.lines().map(String::from).collect();
    for _ in 0..1 + next(4) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = next(lines.len());
        match next(8) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let j = next(lines.len());
                lines.swap(i, j);
            }
            3 | 4 => {
                if let Some((k, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{k}= {}", TOKENS[next(TOKENS.len())]);
                }
            }
            5 => {
                let pos = next(lines[i].len() + 1);
                let pos = (0..=pos)
                    .rev()
                    .find(|p| lines[i].is_char_boundary(*p))
                    .unwrap_or(0);
                let byte = [b'"', b'[', b']', b'=', b'\n', b'#', b'.', b'\\'][next(8)] as char;
                lines[i].insert(pos, byte);
            }
            6 => lines.truncate(i),
            _ => lines.insert(
                i,
                format!(
                    "{} = {}",
                    ["rate", "kind", "start", "every", "side", "x"][next(6)],
                    TOKENS[next(TOKENS.len())]
                ),
            ),
        }
    }
    lines.join("\n")
}

/// Parses one input; panics (failing the test) on a panic inside the parser or an
/// error that does not say where and how to fix.
fn check_one(input: &str) -> Option<String> {
    let result = std::panic::catch_unwind(|| scenario::parse(Path::new("fuzz.toml"), input));
    let result = result.unwrap_or_else(|_| panic!("parser panicked on:\n{input}"));
    match result {
        Ok(_) => None,
        Err(e) => {
            assert!(e.line >= 1, "no line in {e} for:\n{input}");
            assert!(
                !e.field.is_empty() && !e.fix.is_empty(),
                "no field/fix in {e} for:\n{input}"
            );
            Some(
                e.problem
                    .split(['`', '"'])
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            )
        }
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus")
}

#[test]
fn mutated_scenarios_never_panic_and_always_locate_errors() {
    let seeds = seeds();
    let budget = std::env::var("DUALWRITE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs);
    let iterations: u64 = if budget.is_some() { u64::MAX } else { 3000 };
    let save = std::env::var_os("DUALWRITE_FUZZ_SAVE").is_some();
    let started = Instant::now();
    let mut rng = 0x5eed_u64;
    let mut classes = BTreeSet::new();
    let mut executions = 0u64;
    for i in 0..iterations {
        if budget.is_some_and(|b| started.elapsed() > b) {
            break;
        }
        let input = mutate(&seeds[i as usize % seeds.len()], &mut rng);
        executions += 1;
        if let Some(class) = check_one(&input)
            && classes.insert(class.clone())
            && save
        {
            let name = format!("{:016x}.toml", splitmix64(classes.len() as u64 ^ rng));
            std::fs::write(corpus_dir().join(name), &input).unwrap();
        }
    }
    eprintln!(
        "fuzz: {executions} executions in {:?}, {} distinct rejection classes",
        started.elapsed(),
        classes.len()
    );
    assert!(
        classes.len() > 10,
        "the mutator should reach many validation paths"
    );
}

#[test]
fn corpus_inputs_are_rejected_cleanly() {
    let mut n = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            check_one(&text);
            n += 1;
        }
    }
    assert!(n > 0, "corpus is empty");
}
