//! The harness itself: crashes, dead stores, concurrent runs, unwritable results,
//! secrets. Against the real stack.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const SHORT: &str = r#"
name = "e2e-reliability"
[target]
store = "dynamodb"
[pattern]
name = "naive"
[workload]
rate = 20
duration = "3s"
op_timeout = "1s"
[expect]
divergence = "any"
orphans = "any"
lost_acks = "any"
"#;

fn with_latency_window(name: &str, seconds: u32) -> String {
    SHORT
        .replace("e2e-reliability", name)
        .replace("duration = \"3s\"", &format!("duration = \"{seconds}s\""))
        + "[[faults]]\nkind = \"latency\"\nlatency = \"100ms\"\nside = \"secondary\"\nstart = \"500ms\"\nduration = \"60s\"\n"
}

fn spawn_run(s: &Scratch, file: &std::path::Path) -> std::process::Child {
    Command::new(bin())
        .args(["run", file.to_str().unwrap(), "--quiet", "--results-dir"])
        .arg(s.results())
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for_toxic(proxy: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, toxics) = proxy_state(proxy);
        if !toxics.is_empty() || Instant::now() > deadline {
            return toxics;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kill_9_leftovers_are_found_and_removed_by_reset_and_by_the_next_run() {
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let file = s.write("k.toml", &with_latency_window("e2e-kill", 60));
    // Crash 1, cleaned by `dualwrite reset`.
    let mut child = spawn_run(&s, &file);
    let toxics = wait_for_toxic("dynamodb_secondary");
    child.kill().unwrap(); // SIGKILL: no cleanup can run
    child.wait().unwrap();
    assert_eq!(toxics.len(), 1);
    assert!(toxics[0].starts_with("dualwrite-"), "{toxics:?}");
    assert_eq!(
        proxy_state("dynamodb_secondary").1,
        toxics,
        "kill -9 leaves the toxic behind"
    );
    let out = s.dualwrite(&["reset"]);
    assert_eq!(out.status.code(), Some(0));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&toxics[0]) && said.contains("removed"),
        "{said}"
    );
    assert_eq!(proxy_state("dynamodb_secondary"), (true, vec![]));
    // Crash 2, cleaned by the next run, which says so and proceeds.
    let mut child = spawn_run(&s, &file);
    let toxics = wait_for_toxic("dynamodb_secondary");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(toxics.len(), 1);
    let next = s.write(
        "n.toml",
        &SHORT.replace("e2e-reliability", "e2e-after-kill"),
    );
    let out = Command::new(bin())
        .args(["run", next.to_str().unwrap(), "--results-dir"])
        .arg(s.results())
        .current_dir(repo())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&toxics[0]) && err.contains("earlier run"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(proxy_state("dynamodb_secondary"), (true, vec![]));
}

#[test]
fn a_second_run_on_the_same_proxies_is_refused_with_a_clear_message() {
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let mut first = spawn_run(&s, &s.write("a.toml", &with_latency_window("e2e-first", 8)));
    wait_for_toxic("dynamodb_secondary");
    let out = s.dualwrite(&[
        "run",
        s.write("b.toml", &SHORT.replace("e2e-reliability", "e2e-second"))
            .to_str()
            .unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("in use by another dualwrite run") && err.contains("e2e-first"),
        "{err}"
    );
    // The first run is unharmed: its toxic is still there and it finishes normally.
    assert_eq!(proxy_state("dynamodb_secondary").1.len(), 1);
    assert_eq!(first.wait().unwrap().code(), Some(0));
}

#[test]
fn unreachable_store_exits_3_quickly_naming_the_endpoint() {
    let s = Scratch::new();
    let text = SHORT.replace("store = \"dynamodb\"", "store = \"dynamodb\"\n[target.primary]\nendpoint = \"127.0.0.1:9\"\n[target.secondary]\nendpoint = \"127.0.0.1:9\"");
    let started = Instant::now();
    let out = s.dualwrite(&["run", s.write("dead.toml", &text).to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("127.0.0.1:9") && err.contains("hint"), "{err}");
}

#[test]
fn black_holed_store_and_toxiproxy_api_time_out_instead_of_hanging() {
    // A listener that accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hole.local_addr().unwrap().to_string();
    let s = Scratch::new();
    for (what, text) in [
        ("store", SHORT.replace("store = \"dynamodb\"", &format!("store = \"dynamodb\"\n[target.primary]\nendpoint = \"{addr}\"\n[target.secondary]\nendpoint = \"{addr}\""))),
        ("toxiproxy", SHORT.replace("store = \"dynamodb\"", &format!("store = \"dynamodb\"\ntoxiproxy = \"http://{addr}\""))),
    ] {
        let started = Instant::now();
        let out = s.dualwrite(&["run", s.write("hole.toml", &text).to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{what}: {err}");
        assert!(started.elapsed() < Duration::from_secs(15), "{what}: {:?}", started.elapsed());
        assert!(err.contains(&addr), "{what}: {err}");
    }
}

#[test]
fn unwritable_or_full_results_directory_is_refused_before_the_load() {
    let s = Scratch::new();
    let file = s.write("r.toml", &SHORT.replace("e2e-reliability", "e2e-results"));
    // A file where a directory should be.
    let blocker = s.write("not-a-dir", "x");
    let out = Command::new(bin())
        .args(["run", file.to_str().unwrap(), "--results-dir"])
        .arg(blocker.join("sub"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot create the results directory"), "{err}");
    // A full disk: a 256 KiB tmpfs (we run as root here and in CI).
    let small = s.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a tmpfs needs root");
    let out = Command::new(bin())
        .args(["run", file.to_str().unwrap(), "--results-dir"])
        .arg(&small)
        .output()
        .unwrap();
    let _ = Command::new("umount").arg(&small).status();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("disk full"), "{err}");
    assert!(!err.contains("ops at"), "no load may start: {err}");
}

#[test]
fn credentials_never_reach_results_history_or_output() {
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let key = "AKIADUALWRITEPLANTED1";
    let secret = "planted-secret-3f9a1c";
    let file = s.write("sec.toml", &SHORT.replace("e2e-reliability", "e2e-secrets"));
    let out = Command::new(bin())
        .args(["run", file.to_str().unwrap(), "--verbose", "--results-dir"])
        .arg(s.results())
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut haystack =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let mut files = 0;
    for entry in walk(&s.results()) {
        haystack.push_str(&std::fs::read_to_string(&entry).unwrap_or_default());
        files += 1;
    }
    assert!(files >= 3, "result, history and scenario copy were written");
    assert!(
        !haystack.contains(key) && !haystack.contains(secret),
        "a credential leaked"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_paused_store_gives_unknowns_and_the_checker_runs_after_recovery() {
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let text = SHORT
        .replace("e2e-reliability", "e2e-pause")
        .replace("duration = \"3s\"", "duration = \"6s\"")
        .replace("op_timeout = \"1s\"", "op_timeout = \"500ms\"")
        + "[[faults]]\nkind = \"process-pause\"\nserver = \"moto\"\nstart = \"2s\"\nduration = \"2s\"\n";
    let file = s.write("pause.toml", &text);
    let state = std::env::var("DUALWRITE_STATE")
        .unwrap_or_else(|_| repo().join(".stack").display().to_string());
    let out = Command::new(bin())
        .args([
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--stack-state",
            &state,
            "--results-dir",
        ])
        .arg(s.results())
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let latest = s.results().join("e2e-pause/latest");
    let result = dualwrite::result::RunResult::read(&latest).unwrap();
    let (_, history) =
        dualwrite::history::History::read_jsonl(&latest.join("history.jsonl")).unwrap();
    use dualwrite::history::{Outcome, SideOutcome};
    let count = |f: &dyn Fn(&dualwrite::history::HistoryEntry) -> bool| {
        history.iter().filter(|e| f(e)).count() as u64
    };
    let c = &result.checker;
    assert!(result.complete && result.checked, "{:?}", result.notes);
    assert!(
        result.faults[0].start_s.is_some() && result.faults[0].end_s.is_some(),
        "{:?}",
        result.faults
    );
    assert!(
        result.workload.ops.unknown > 0,
        "operations during the pause are unknown: {:?}",
        result.workload
    );
    // Late-applied writes make some unknowns land; the checker counts what landed.
    assert!(
        c.orphans <= count(&|e| e.primary != SideOutcome::Fail && e.secondary != SideOutcome::Ok),
        "{c:?}"
    );
    assert!(
        c.lost_acks <= count(&|e| e.outcome == Outcome::Ok && e.secondary != SideOutcome::Ok),
        "{c:?}"
    );
    assert_eq!(
        (c.ghosts, c.duplicates, c.mismatches, c.strays),
        (0, 0, 0, 0),
        "{c:?}"
    );
    // The run went on after the pause: operations after it succeeded.
    assert!(
        history
            .iter()
            .any(|e| e.intended_us > 4_500_000 && e.outcome == Outcome::Ok)
    );
}

#[test]
fn sigterm_with_check_on_interrupt_still_counts_divergence() {
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let text = SHORT
        .replace("e2e-reliability", "e2e-sigterm")
        .replace("duration = \"3s\"", "duration = \"30s\"")
        + "[[faults]]\nkind = \"down\"\nside = \"secondary\"\nstart = \"1s\"\nduration = \"20s\"\n";
    let file = s.write("term.toml", &text);
    let mut child = Command::new(bin())
        .args([
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--check-on-interrupt",
            "--results-dir",
        ])
        .arg(s.results())
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert_eq!(proxy_state("dynamodb_secondary"), (true, vec![]));
    let latest = s.results().join("e2e-sigterm/latest");
    let result = dualwrite::result::RunResult::read(&latest).unwrap();
    assert!(
        !result.complete && result.checked,
        "{:?}",
        result.verdict_reasons
    );
    // About 2 s of orders written while the secondary was down: all orphans.
    let (_, history) =
        dualwrite::history::History::read_jsonl(&latest.join("history.jsonl")).unwrap();
    let expected = history
        .iter()
        .filter(|e| {
            e.primary == dualwrite::history::SideOutcome::Ok
                && e.secondary != dualwrite::history::SideOutcome::Ok
        })
        .count() as u64;
    assert!(expected > 10, "{expected}");
    assert_eq!(result.checker.orphans, expected);
    assert!(!latest.join(".result.json.tmp").exists());
}
