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
    let token = "planted-session-token-8d2e4b";
    let file = s.write("sec.toml", &SHORT.replace("e2e-reliability", "e2e-secrets"));
    let html = s.results().join("report.html");
    let junit = s.results().join("junit.xml");
    let out = Command::new(bin())
        .args(["run", file.to_str().unwrap(), "--verbose", "--results-dir"])
        .arg(s.results())
        .arg("--html")
        .arg(&html)
        .arg("--junit")
        .arg(&junit)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_SESSION_TOKEN", token)
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = files_under(&s.results());
    assert!(
        files.len() >= 5,
        "result, history, scenario copy, reports: {files:?}"
    );
    assert_no_secrets(&out, &s.results(), &[key, secret, token]);
    // Reports rebuilt later read the same files.
    let compare = s.dualwrite(&[
        "compare",
        s.results().to_str().unwrap(),
        "--format",
        "markdown",
    ]);
    assert_no_secrets(&compare, &s.results(), &[key, secret, token]);

    // Passwords and TLS key files: the plain stack has neither logins nor TLS, so
    // these runs fail at connect, and their error messages and error results are
    // where a secret could slip (the TLS stack's successful runs are checked the
    // same way in deployments.rs).
    let password = "planted-password-61c0f2";
    let pem = s.path().join("client.key");
    let generated = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x",
            "-keyout",
        ])
        .arg(&pem)
        .arg("-out")
        .arg(s.path().join("client.pem"))
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let key_line = std::fs::read_to_string(&pem)
        .unwrap()
        .lines()
        .nth(3)
        .unwrap()
        .to_string();
    for (store, target) in [
        (
            "cassandra",
            "username = \"dw\"\ntls_cert_file = \"client.pem\"\ntls_key_file = \"client.key\"\ntls_ca_file = \"client.pem\"\n[target.primary]\nendpoint = \"127.0.0.1:9042\"\n[target.secondary]\nendpoint = \"127.0.0.1:9042\"",
        ),
        (
            "mongodb",
            "uri = \"mongodb://dw@127.0.0.1:27017/?authSource=admin\"",
        ),
    ] {
        let text = SHORT
            .replace("e2e-reliability", &format!("e2e-secrets-{store}"))
            .replace(
                "store = \"dynamodb\"",
                &format!("store = \"{store}\"\n{target}"),
            );
        let file = s.write(&format!("{store}.toml"), &text);
        let out = Command::new(bin())
            .args(["run", file.to_str().unwrap(), "--verbose", "--results-dir"])
            .arg(s.results())
            .env(
                format!("DUALWRITE_{}_PASSWORD", store.to_uppercase()),
                password,
            )
            .current_dir(repo())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{store}: {out:?}");
        assert_no_secrets(&out, &s.results(), &[password, &key_line]);
    }
}

#[test]
fn a_paused_store_gives_unknowns_and_the_checker_runs_after_recovery() {
    let _servers = servers_to_myself();
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let text = SHORT
        .replace("e2e-reliability", "e2e-pause")
        .replace("duration = \"3s\"", "duration = \"6s\"")
        .replace("op_timeout = \"1s\"", "op_timeout = \"500ms\"")
        + "[[faults]]\nkind = \"process-pause\"\nserver = \"moto\"\nstart = \"2s\"\nduration = \"2s\"\n";
    // `--stack-state` defaults to $DUALWRITE_STATE or ./.stack, as the stack's own.
    let run = s.run(&s.write("pause.toml", &text));
    assert!(matches!(run.code, 0 | 1), "{}", run.explain());
    use dualwrite::history::{Outcome, SideOutcome};
    let (result, history) = (&run.result, &run.history);
    let count = |f: &dyn Fn(&dualwrite::history::HistoryEntry) -> bool| run.count(f);
    let c = result.checker.as_ref().expect("checked");
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

/// FerretDB keeps its data in SQLite, so it can be killed and restarted mid-run
/// without losing what landed (moto and mongoeco are in memory).
#[test]
fn a_killed_and_restarted_store_fails_operations_and_the_checker_counts_after_recovery() {
    let _servers = servers_to_myself();
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let text = r#"
name = "e2e-process-kill"
seed = 3
[target]
store = "mongodb"
server = "ferretdb"
[pattern]
name = "naive"
on_secondary_failure = "log-and-continue"
[workload]
rate = 20
duration = "12s"
op_timeout = "1s"
[[faults]]
kind = "process-kill"
server = "ferretdb"
start = "3s"
duration = "3s"
[expect]
divergence = "any"
orphans = "any"
lost_acks = "any"
"#;
    // `--stack-state` defaults to $DUALWRITE_STATE or ./.stack, as the stack's own.
    let run = s.run(&s.write("kill.toml", text));
    assert!(matches!(run.code, 0 | 1), "{}", run.explain());
    use dualwrite::history::{Outcome, SideOutcome};
    let (result, history) = (&run.result, &run.history);
    let count = |f: &dyn Fn(&dualwrite::history::HistoryEntry) -> bool| run.count(f);
    let c = result.checker.as_ref().expect("checked");
    assert!(result.complete && result.checked, "{:?}", result.notes);
    let window = &result.faults[0];
    assert!(
        window.start_s.is_some() && window.end_s.is_some(),
        "{:?}",
        result.faults
    );
    // While the server is dead, operations fail or are unknown; none hangs the run.
    assert!(
        count(&|e| e.outcome != Outcome::Ok) > 0,
        "{:?}",
        result.workload
    );
    // After the restart the run goes on and writes succeed again.
    let restarted_us = (window.end_s.unwrap() * 1e6) as u64;
    assert!(
        history
            .iter()
            .any(|e| e.intended_us > restarted_us && e.outcome == Outcome::Ok),
        "no successful write after the restart at {restarted_us} us"
    );
    // The checker scans the restarted server: everything acknowledged is there, and
    // an unknown write counts only if it landed.
    let primary_ok = count(&|e| e.primary == SideOutcome::Ok);
    let primary_unknown = count(&|e| e.primary == SideOutcome::Unknown);
    assert!(
        (primary_ok..=primary_ok + primary_unknown).contains(&c.scanned_primary),
        "{c:?}"
    );
    // Orphans from the history: the secondary insert failed, or was cut (unknown) and
    // did not land, after a primary insert that succeeded; or the primary insert was
    // cut, landed, and the secondary was never tried.
    let secondary_failed =
        count(&|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Fail);
    let secondary_cut =
        count(&|e| e.primary == SideOutcome::Ok && e.secondary == SideOutcome::Unknown);
    let secondary_landed_cut = c.scanned_secondary - count(&|e| e.secondary == SideOutcome::Ok);
    let primary_landed_cut = c.scanned_primary - primary_ok;
    assert_eq!(
        c.orphans,
        secondary_failed + secondary_cut - secondary_landed_cut + primary_landed_cut,
        "{c:?}"
    );
    assert_eq!(
        (c.ghosts, c.duplicates, c.mismatches, c.strays),
        (0, 0, 0, 0),
        "{c:?}"
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
    assert_eq!(result.checker.as_ref().expect("checked").orphans, expected);
    assert!(!latest.join(".result.json.tmp").exists());
}

/// Issue 9 point 9, the relay path: the relay's proxy is a black hole (a `timeout`
/// toxic with timeout 0: connections stay open, answers never come) for the whole
/// load. The run must still end within the load + settle + a margin, with its
/// normal verdict (no hang, no panic), the relay must catch up once the proxy is
/// restored, and no toxic may be left behind.
fn black_holed_relay_ends_in_bounded_time(store: &str, server: &str, pattern: &str) {
    let _guard = lock(store);
    let s = Scratch::new();
    let name = format!("e2e-relay-hole-{store}");
    let (load_s, settle_s) = (6, 20);
    // Proxies are named after the server where a store has several (MongoDB).
    let server_line = match server {
        "" => String::new(),
        s => format!("server = \"{s}\""),
    };
    let prefix = if server.is_empty() { store } else { server };
    let text = format!(
        r#"
name = "{name}"
[target]
store = "{store}"
{server_line}
{pattern}
[workload]
rate = 20
duration = "{load_s}s"
op_timeout = "1s"
[[faults]]
kind = "timeout"
timeout = "0s"
direction = "downstream"
side = "relay"
start = "0s"
duration = "{load_s}s"
[check]
settle = "{settle_s}s"
"#
    );
    let mut child = spawn_run(&s, &s.write("relay-hole.toml", &text));
    let started = Instant::now();
    // Set-up (tables, keyspace) and the final scan come on top of load + settle.
    let bound = Duration::from_secs(load_s + settle_s + 30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{store}: the run hung with a black-holed relay (killed after {bound:?})");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{store}: {stderr}");
    let result =
        dualwrite::result::RunResult::read(&s.results().join(&name).join("latest")).unwrap();
    let code = match result.verdict {
        dualwrite::result::Verdict::Pass => 0,
        dualwrite::result::Verdict::Fail => 1,
        dualwrite::result::Verdict::Error => 3,
    };
    assert_eq!(status.code(), Some(code), "{store}: {stderr}");
    assert!(
        result.complete && result.checked,
        "{store}: {:?}",
        result.notes
    );
    // The window was applied, and it bit: the relay delivered nothing during the
    // load, so everything was pending when the load stopped.
    let w = &result.faults[0];
    assert!(w.start_s.is_some() && w.end_s.is_some(), "{store}: {w:?}");
    let relay = result.relay.as_ref().expect("an async pattern has a relay");
    assert!(relay.stats.pending_at_load_end > 0, "{store}: {relay:?}");
    // Restored with the load's end, the relay drains well within the settle time:
    // nothing left stuck on a black-holed connection.
    assert!(relay.stats.drained, "{store}: {relay:?} {:?}", result.notes);
    assert_eq!(
        result.checker.as_ref().expect("checked").divergence,
        0,
        "{store}: {:?}",
        result.checker
    );
    assert_eq!(code, 0, "{store}: {stderr}");
    for side in ["primary", "secondary", "relay"] {
        let p = format!("{prefix}_{side}");
        assert_eq!(proxy_state(&p), (true, vec![]), "{p} restored");
    }
}

#[test]
fn black_holed_relay_proxy_dynamodb_streams_ends_in_bounded_time() {
    black_holed_relay_ends_in_bounded_time(
        "dynamodb",
        "",
        "[pattern]\nname = \"streams\"\n[pattern.relay]\npoll_interval = \"50ms\"",
    );
}

#[test]
fn black_holed_relay_proxy_cassandra_outbox_ends_in_bounded_time() {
    black_holed_relay_ends_in_bounded_time(
        "cassandra",
        "",
        "[pattern]\nname = \"outbox\"\n[pattern.relay]\nworkers = 2\npoll_interval = \"100ms\"\nclaim_ttl = \"2s\"",
    );
}

/// The relay side pointed at a listener that accepts and never answers, for the
/// whole run *and* the settle period (a proxy fault ends with the load; this does
/// not): every relay call, including the drain's `pending` checks, meets the
/// hole. The run still ends within load + settle + a margin, with verdict FAIL
/// (the events never arrive), not a hang.
#[test]
fn relay_endpoint_black_hole_through_the_settle_period_still_ends_in_bounded_time() {
    let _guard = lock("dynamodb");
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hole.local_addr().unwrap().to_string();
    let s = Scratch::new();
    let (load_s, settle_s) = (4, 8);
    let text = format!(
        r#"
name = "e2e-relay-endpoint-hole"
[target]
store = "dynamodb"
[target.relay]
endpoint = "{addr}"
[pattern]
name = "streams"
[workload]
rate = 10
duration = "{load_s}s"
op_timeout = "1s"
[check]
settle = "{settle_s}s"
"#
    );
    let started = Instant::now();
    let mut child = spawn_run(&s, &s.write("relay-endpoint-hole.toml", &text));
    let bound = Duration::from_secs(load_s + settle_s + 25);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run hung with a black-holed relay endpoint (killed after {bound:?})");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let result =
        dualwrite::result::RunResult::read(&s.results().join("e2e-relay-endpoint-hole/latest"))
            .unwrap();
    let relay = result.relay.as_ref().expect("streams has a relay");
    assert!(
        !relay.stats.drained && relay.stats.delivered == 0,
        "{relay:?}"
    );
    assert!(relay.stats.errors > 0, "{relay:?}");
    assert!(
        result.notes.iter().any(|n| n.contains("did not drain")),
        "{:?}",
        result.notes
    );
    // Every order is missing its event: orphans, one per acknowledged order.
    assert!(
        result.checker.as_ref().expect("checked").orphans > 0,
        "{:?}",
        result.checker
    );
    assert!(result.complete && result.checked, "{:?}", result.notes);
    assert!(
        started.elapsed() >= Duration::from_secs(load_s + settle_s),
        "the drain waited its settle time"
    );
}

#[test]
fn black_holed_relay_proxy_mongodb_polling_outbox_ends_in_bounded_time() {
    black_holed_relay_ends_in_bounded_time(
        "mongodb",
        "ferretdb",
        "[pattern]\nname = \"outbox\"\n[pattern.relay]\nmode = \"poll\"\npoll_interval = \"50ms\"",
    );
}

#[test]
fn a_scan_that_fails_after_the_load_still_reports_the_load() {
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let text = SHORT
        .replace("e2e-reliability", "e2e-scan-fails")
        .replace("duration = \"3s\"", "duration = \"2s\"")
        + "[check]\nsettle = \"8s\"\n";
    let mut child = spawn_run(&s, &s.write("scan-fails.toml", &text));
    // The history is complete once the load is over; the settle period follows.
    let planned = 40;
    let deadline = Instant::now() + Duration::from_secs(20);
    let history = loop {
        let found = files_under(&s.results())
            .into_iter()
            .find(|p| p.ends_with("history.jsonl"));
        if let Some(p) = &found
            && std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .count()
                >= planned
        {
            break p.clone();
        }
        assert!(Instant::now() < deadline, "the load never finished");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Pull the secondary away in the settle period: the checker's scan must fail.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = dualwrite::fault::toxiproxy::Toxiproxy::new("http://127.0.0.1:8474");
    rt.block_on(api.set_enabled("dynamodb_secondary", false))
        .unwrap();
    let status = child.wait().unwrap();
    let restored_by_the_run = proxy_state("dynamodb_secondary").0;
    rt.block_on(api.set_enabled("dynamodb_secondary", true))
        .unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    let result =
        dualwrite::result::RunResult::read(&s.results().join("e2e-scan-fails/latest")).unwrap();
    assert_eq!(result.verdict, dualwrite::result::Verdict::Error);
    assert!(!result.complete && !result.checked, "{result:?}");
    // What the load did is still there, and agrees with the history on disk.
    let lines = std::fs::read_to_string(&history).unwrap().lines().count() as u64;
    assert_eq!(result.workload.ops.total, lines, "{:?}", result.workload);
    assert_eq!(
        result.workload.ops.ok + result.workload.ops.fail + result.workload.ops.unknown,
        lines
    );
    assert!(result.latency_ms.p50 > 0.0, "{:?}", result.latency_ms);
    assert!(!result.timeline.is_empty());
    // And the proxy disabled behind its back was restored by the run itself.
    assert!(restored_by_the_run);
}

/// moto keeps its tables in memory: killed mid-run and restarted, it comes back
/// empty. The run says the server lost its data and counts every acknowledged
/// order as lost; it used to exit 3 with a checker block of zeros beside
/// `checked: false`, so a CI job reading `lost_acks` saw 0.
#[test]
fn a_killed_in_memory_server_loses_its_data_and_every_acknowledged_order_is_lost() {
    let _servers = servers_to_myself();
    let _guard = lock("dynamodb");
    let s = Scratch::new();
    let text = r#"
name = "e2e-kill-moto"
seed = 3
[target]
store = "dynamodb"
[pattern]
name = "naive"
on_secondary_failure = "log-and-continue"
[workload]
rate = 20
duration = "8s"
op_timeout = "1s"
[[faults]]
kind = "process-kill"
server = "moto"
start = "3s"
duration = "2s"
[expect]
divergence = "any"
orphans = "any"
lost_acks = "any"
"#;
    let run = s.run(&s.write("kill-moto.toml", text));
    use dualwrite::history::Outcome;
    assert_eq!(run.code, 0, "{}", run.explain());
    let r = &run.result;
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("keeps its data in memory")),
        "{:?}",
        r.warnings
    );
    assert!(
        r.notes.iter().any(|n| n.contains("its data is lost")),
        "{:?}",
        r.notes
    );
    let c = run.checker();
    assert_eq!(c.scanned_primary + c.scanned_secondary, 0, "{c:?}");
    let acknowledged = run.count(|e| e.outcome == Outcome::Ok);
    assert!(acknowledged > 0);
    assert_eq!(c.lost_acks, acknowledged, "{}", run.explain());
    // The server came back (restarted by the stack's script), empty.
    assert!(
        r.faults[0].end_s.is_some() && r.faults[0].error.is_none(),
        "{:?}",
        r.faults
    );
}

/// A process fault restarts its server with the stack's own script, found from
/// the stack's state whatever directory dualwrite runs from; without the stack's
/// state the run stops before the load (exit 3) instead of leaving a server down.
#[test]
fn process_faults_work_from_any_directory_or_stop_before_the_load() {
    let _servers = servers_to_myself();
    let _guard = lock("mongodb");
    let s = Scratch::new();
    let text = r#"
name = "e2e-kill-elsewhere"
seed = 3
[target]
store = "mongodb"
server = "ferretdb"
[pattern]
name = "naive"
on_secondary_failure = "log-and-continue"
[workload]
rate = 20
duration = "5s"
op_timeout = "1s"
[[faults]]
kind = "process-kill"
server = "ferretdb"
start = "1s"
duration = "1s"
[expect]
divergence = "any"
orphans = "any"
lost_acks = "any"
"#;
    let file = s.write("kill.toml", text);
    let state = std::env::var_os("DUALWRITE_STATE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo().join(".stack"));
    let run = |state: &std::path::Path| {
        std::process::Command::new(bin())
            .arg("run")
            .arg(&file)
            .arg("--results-dir")
            .arg(s.results())
            .arg("--quiet")
            .current_dir(s.path())
            .env("DUALWRITE_STATE", state)
            .env_remove("DUALWRITE_STACK_SCRIPT")
            .output()
            .unwrap()
    };
    // From a scratch directory, with the stack's state: killed and restarted.
    let out = run(&state);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{err}");
    let r =
        dualwrite::result::RunResult::read(&s.results().join("e2e-kill-elsewhere/latest")).unwrap();
    let w = &r.faults[0];
    assert!(
        w.end_s.is_some() && w.error.is_none(),
        "restart failed: {w:?}"
    );
    assert!(
        r.availability.recovered == Some(true),
        "{:?}",
        r.availability
    );
    // Without it: exit 3 before any operation, naming the missing pid file.
    let empty = tempfile::tempdir().unwrap();
    let out = run(empty.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("no pid for `ferretdb`") && err.contains("DUALWRITE_STATE"),
        "{err}"
    );
    let r =
        dualwrite::result::RunResult::read(&s.results().join("e2e-kill-elsewhere/latest")).unwrap();
    assert_eq!(r.workload.ops.total, 0, "nothing ran");
    assert!(r.checker.is_none());
}
