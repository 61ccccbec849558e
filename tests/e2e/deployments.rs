//! Runs against servers that check who connects and encrypt, as real deployments
//! do: `scripts/stack up --only tls` (scripts/lib/tls.sh) — a Cassandra node with
//! PasswordAuthenticator, CassandraAuthorizer and client TLS, FerretDB and moto
//! over TLS, each behind its own Toxiproxy proxies. Every certificate names
//! `*.dualwrite.test`, never 127.0.0.1: a run through a proxy passes only when
//! it checks the real server name (`tls_server_name`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::common::{Run, Scratch, assert_no_secrets, bin, repo};
use dualwrite::history::{Outcome, SideOutcome};
use dualwrite::result::Verdict;

/// The tests share the TLS stack's proxies, and a run locks the proxies it uses:
/// one test at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the TLS stack is (its `env` file) and its role's password.
struct Stack {
    dir: PathBuf,
    env: BTreeMap<String, String>,
}

impl Stack {
    fn get() -> Self {
        let state = std::env::var("DUALWRITE_STATE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo().join(".stack"));
        let dir = state.join("tls");
        let text = std::fs::read_to_string(dir.join("env")).unwrap_or_else(|e| {
            panic!(
                "the TLS stack is not up ({e}): scripts/stack up --only tls ({})",
                dir.display()
            )
        });
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self { dir, env }
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn cassandra_password(&self) -> String {
        std::fs::read_to_string(self.dir.join("cassandra-dualwrite.password"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// A line from the middle of a PEM file: its contents, to search outputs for.
    fn pem_line(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join(name)).unwrap();
        text.lines().nth(3).unwrap().to_string()
    }
}

/// Toxiproxy proxies of one test, deleted when dropped (also on a panic).
struct Proxies {
    names: Vec<String>,
}

impl Proxies {
    fn create(prefix: &str, upstream: &str) -> (Self, BTreeMap<&'static str, String>) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let http = reqwest::Client::new();
        let mut names = Vec::new();
        let mut by_side = BTreeMap::new();
        for side in ["primary", "secondary"] {
            let name = format!("{prefix}_{}_{side}", std::process::id());
            rt.block_on(async {
                let _ = http
                    .delete(format!("http://127.0.0.1:8474/proxies/{name}"))
                    .send()
                    .await;
                let r = http
                    .post("http://127.0.0.1:8474/proxies")
                    .json(&serde_json::json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{:?}", r.text().await);
            });
            by_side.insert(side, name.clone());
            names.push(name);
        }
        (Self { names }, by_side)
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let http = reqwest::Client::new();
        for name in &self.names {
            let _ = rt.block_on(
                http.delete(format!("http://127.0.0.1:8474/proxies/{name}"))
                    .send(),
            );
        }
    }
}

/// `naive` at 40/s for 6 s, the secondary side down from 2 s for 2 s, zero
/// divergence allowed: the verdict must be a failure with orphans.
fn down_scenario(name: &str, target: &str) -> String {
    format!(
        r#"name = "{name}"
[target]
{target}
[pattern]
name = "naive"
[workload]
rate = 40
duration = "6s"
op_timeout = "1s"
[[faults]]
kind = "down"
side = "secondary"
start = "2s"
duration = "2s"
"#
    )
}

fn run_with(
    s: &Scratch,
    file: &std::path::Path,
    env: &[(&str, String)],
    extra: &[&str],
) -> (Output, Run) {
    let mut cmd = Command::new(bin());
    cmd.args(["run", file.to_str().unwrap(), "--results-dir"])
        .arg(s.results())
        .args(extra)
        .current_dir(repo());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let scenario = dualwrite::scenario::load(file).unwrap();
    let latest = s.results().join(&scenario.name).join("latest");
    let result = dualwrite::result::RunResult::read(&latest).unwrap_or_else(|e| {
        panic!(
            "no result ({e:#}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let (_, history) =
        dualwrite::history::History::read_jsonl(&latest.join("history.jsonl")).unwrap_or_default();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        result,
        history,
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    };
    (out, run)
}

/// What a `down` on the secondary side does to `naive`, bounded by what the
/// history proves: orphans only among orders whose primary write was not refused
/// and whose secondary write did not succeed, lost acknowledgements only among
/// acknowledged ones of those; nothing else diverges.
fn assert_down_verdict(run: &Run, label: &str) {
    assert_eq!(run.code, 1, "{label}: {}", run.explain());
    assert_eq!(run.result.verdict, Verdict::Fail, "{label}");
    let c = run.checker();
    let may_orphan =
        run.count(|e| e.primary != SideOutcome::Fail && e.secondary != SideOutcome::Ok);
    let may_lose = run.count(|e| e.outcome == Outcome::Ok && e.secondary != SideOutcome::Ok);
    assert!(c.orphans > 0 && c.orphans <= may_orphan, "{label}: {c:?}");
    assert!(
        c.lost_acks <= may_lose && c.lost_acks <= c.orphans,
        "{label}: {c:?}"
    );
    assert_eq!(
        (c.ghosts, c.duplicates, c.mismatches, c.strays),
        (0, 0, 0, 0),
        "{label}: {c:?}"
    );
    let w = &run.result.faults[0];
    assert!(w.start_s.is_some() && w.end_s.is_some(), "{label}: {w:?}");
}

#[test]
fn cassandra_with_logins_and_client_tls_through_a_proxy_gives_the_verdict_of_plain_cassandra() {
    let _serial = serial();
    let stack = Stack::get();
    let s = Scratch::new();
    let password = stack.cassandra_password();
    // The same scenario on the stack's plain node, through proxies of this test.
    let (_plain, plain) = Proxies::create("dwtls_plain_cassandra", "127.0.0.1:9042");
    let plain_file = s.write(
        "plain.toml",
        &down_scenario(
            "dep-cassandra-plain",
            &format!(
                "store = \"cassandra\"\n[target.primary]\nproxy = \"{}\"\n[target.secondary]\nproxy = \"{}\"",
                plain["primary"], plain["secondary"]
            ),
        ),
    );
    let (_, plain_run) = run_with(&s, &plain_file, &[], &[]);
    assert_down_verdict(&plain_run, "plain");
    let tls_file = s.write(
        "tls.toml",
        &down_scenario(
            "dep-cassandra-tls",
            &format!(
                r#"store = "cassandra"
username = "dualwrite"
password_env = "DW_TEST_CASSANDRA_PASSWORD"
tls_ca_file = "{}"
tls_cert_file = "{}"
tls_key_file = "{}"
tls_server_name = "cassandra.dualwrite.test"
[target.primary]
proxy = "cassandra_tls_primary"
[target.secondary]
proxy = "cassandra_tls_secondary""#,
                stack.file("ca.pem"),
                stack.file("client.pem"),
                stack.file("client.key")
            ),
        ),
    );
    let html = s.results().join("report.html");
    let junit = s.results().join("junit.xml");
    let (out, tls_run) = run_with(
        &s,
        &tls_file,
        &[("DW_TEST_CASSANDRA_PASSWORD", password.clone())],
        &[
            "--verbose",
            "--html",
            html.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_down_verdict(&tls_run, "tls");
    assert_eq!(tls_run.result.verdict, plain_run.result.verdict);
    for (label, run) in [("plain", &plain_run), ("tls", &tls_run)] {
        let c = run.checker();
        eprintln!(
            "{label}: verdict {:?}, orphans {}, lost acks {}, p50 {} ms",
            run.result.verdict, c.orphans, c.lost_acks, run.result.latency_ms.p50
        );
    }
    // The role has CREATE ON ALL KEYSPACES only: it made, used and dropped its keyspace.
    assert!(
        tls_run.result.notes.is_empty(),
        "{:?}",
        tls_run.result.notes
    );
    // Secrets: the password, and the client key's contents.
    assert!(html.exists() && junit.exists());
    assert_no_secrets(
        &out,
        &s.results(),
        &[&password, &stack.pem_line("client.key")],
    );
}

#[test]
fn a_wrong_password_exits_3_naming_cassandra_and_the_reason_never_the_secret() {
    let _serial = serial();
    let stack = Stack::get();
    let s = Scratch::new();
    let wrong = format!("wrong-{}-password", std::process::id());
    let file = s.write(
        "wrong.toml",
        &down_scenario(
            "dep-cassandra-wrong",
            &format!(
                "store = \"cassandra\"\nusername = \"dualwrite\"\ntls_ca_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_server_name = \"cassandra.dualwrite.test\"\n[target.primary]\nproxy = \"cassandra_tls_primary\"\n[target.secondary]\nproxy = \"cassandra_tls_secondary\"",
                stack.file("ca.pem"),
                stack.file("client.pem"),
                stack.file("client.key")
            ),
        ),
    );
    let (out, run) = run_with(
        &s,
        &file,
        &[("DUALWRITE_CASSANDRA_PASSWORD", wrong.clone())],
        &[],
    );
    let err = &run.stderr;
    assert_eq!(run.code, 3, "{err}");
    assert!(err.contains("Cassandra at 127.0.0.1:29142"), "{err}");
    assert!(
        err.contains("password are incorrect") && err.contains("DUALWRITE_CASSANDRA_PASSWORD"),
        "{err}"
    );
    assert_eq!(run.result.verdict, Verdict::Error);
    assert!(run.history.is_empty(), "no operation may start");
    assert_no_secrets(&out, &s.results(), &[&wrong]);
}

#[test]
fn the_certificate_is_checked_for_the_server_name_with_the_ca_and_the_client_certificate() {
    let _serial = serial();
    let stack = Stack::get();
    let s = Scratch::new();
    let base = |ca: &str, cert: bool, name: bool| {
        let mut t = format!(
            "store = \"cassandra\"\nusername = \"dualwrite\"\ntls_ca_file = \"{}\"\n",
            stack.file(ca)
        );
        if cert {
            t += &format!(
                "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
                stack.file("client.pem"),
                stack.file("client.key")
            );
        }
        if name {
            t += "tls_server_name = \"cassandra.dualwrite.test\"\n";
        }
        t + "[target.primary]\nproxy = \"cassandra_tls_primary\"\n[target.secondary]\nproxy = \"cassandra_tls_secondary\""
    };
    for (label, target, expected) in [
        // The proxy's address is not on the certificate.
        (
            "no server name",
            base("ca.pem", true, false),
            "not valid for name \"127.0.0.1\"",
        ),
        (
            "another CA",
            base("other-ca.pem", true, true),
            "UnknownIssuer",
        ),
        (
            "no client certificate",
            base("ca.pem", false, true),
            "Cassandra at 127.0.0.1:29142",
        ),
    ] {
        let file = s.write("cert.toml", &down_scenario("dep-cert", &target));
        let (_, run) = run_with(
            &s,
            &file,
            &[("DUALWRITE_CASSANDRA_PASSWORD", stack.cassandra_password())],
            &[],
        );
        assert_eq!(run.code, 3, "{label}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{label}: {}", run.stderr);
        assert!(run.history.is_empty(), "{label}");
    }
}

#[test]
fn ferretdb_over_tls_through_a_proxy_checks_the_name_from_the_connection_string() {
    let _serial = serial();
    let stack = Stack::get();
    let s = Scratch::new();
    let target = |host: &str| {
        format!(
            "store = \"mongodb\"\nserver = \"ferretdb\"\nuri = \"mongodb://{host}:27017/?tls=true\"\ntls_ca_file = \"{}\"\ntls_cert_file = \"{}\"\n[target.primary]\nproxy = \"ferretdb_tls_primary\"\n[target.secondary]\nproxy = \"ferretdb_tls_secondary\"",
            stack.file("ca.pem"),
            stack.file("client-combined.pem")
        )
    };
    let file = s.write(
        "ferret.toml",
        &down_scenario("dep-ferretdb-tls", &target("ferretdb.dualwrite.test")),
    );
    let (out, run) = run_with(&s, &file, &[], &[]);
    assert_down_verdict(&run, "ferretdb over TLS");
    assert!(
        run.result.server.version.contains("FerretDB"),
        "{:?}",
        run.result.server
    );
    assert_no_secrets(&out, &s.results(), &[&stack.pem_line("client.key")]);
    // A name the certificate does not carry is refused before any operation.
    let file = s.write(
        "ferret-bad.toml",
        &down_scenario("dep-ferretdb-bad", &target("db.example.com")),
    );
    let (_, run) = run_with(&s, &file, &[], &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("db.example.com"), "{}", run.stderr);
}

#[test]
fn dynamodb_over_https_through_a_proxy_signs_and_checks_the_real_server_name() {
    let _serial = serial();
    let stack = Stack::get();
    let s = Scratch::new();
    let file = s.write(
        "dynamo.toml",
        &down_scenario(
            "dep-dynamodb-tls",
            &format!(
                "store = \"dynamodb\"\ntls_ca_file = \"{}\"\ntls_server_name = \"dynamodb.dualwrite.test\"\n[target.primary]\nproxy = \"dynamodb_tls_primary\"\n[target.secondary]\nproxy = \"dynamodb_tls_secondary\"",
                stack.file("ca.pem")
            ),
        ),
    );
    let token = format!("planted-session-token-{}", std::process::id());
    let secret = format!("planted-secret-{}", std::process::id());
    let (out, run) = run_with(
        &s,
        &file,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIADWTLSPLANTED0001".into()),
            ("AWS_SECRET_ACCESS_KEY", secret.clone()),
            ("AWS_SESSION_TOKEN", token.clone()),
        ],
        &[],
    );
    assert_down_verdict(&run, "dynamodb over https");
    assert_no_secrets(
        &out,
        &s.results(),
        &[&secret, &token, "AKIADWTLSPLANTED0001"],
    );
    assert!(stack.env.contains_key("TLS_MOTO"));
}
