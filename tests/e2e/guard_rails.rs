//! Guard rails for real deployments, on the default stack (or no server at all):
//! remote endpoints refused at validation, before any socket exists; `plan` for
//! every bundled scenario; namespaces that already exist refused unless reused;
//! DynamoDB credentials from a named profile of the shared files, proven by the
//! key the requests were signed with.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use crate::common::{Scratch, bin, repo, servers_stay_up};

/// A scenario on documentation addresses (RFC 5737), never routed anywhere.
const REMOTE: &str = r#"
name = "remote"
[target]
store = "cassandra"
[target.primary]
endpoint = "203.0.113.7:9042"
[target.secondary]
endpoint = "203.0.113.7:9042"
[pattern]
name = "naive"
[workload]
rate = 10
duration = "2s"
"#;

/// Runs dualwrite where no packet can leave: in a new network namespace (only a
/// loopback device, down) when the machine allows it, under strace recording
/// every socket(2) and connect(2). Returns the output and the trace (`None`
/// when strace or unshare is missing: the exit code and the files prove the rest).
fn sealed(s: &Scratch, args: &[&str]) -> (Output, Option<String>) {
    let trace = s.path().join("trace.txt");
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut cmd = if have("unshare") && have("strace") {
        let mut c = Command::new("unshare");
        c.args([
            "-n",
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=socket,connect",
            "-o",
        ])
        .arg(&trace)
        .arg(bin());
        c
    } else {
        Command::new(bin())
    };
    let out = cmd.args(args).current_dir(repo()).output().unwrap();
    let trace = std::fs::read_to_string(&trace).ok();
    (out, trace)
}

#[test]
fn a_remote_endpoint_without_allow_remote_is_refused_at_validation_by_validate_plan_and_run() {
    let s = Scratch::new();
    let file = s.write("remote.toml", REMOTE);
    let results = s.results();
    for command in ["validate", "plan", "run"] {
        let mut args = vec![command, file.to_str().unwrap()];
        if command == "run" {
            args.extend(["--results-dir", results.to_str().unwrap()]);
        }
        let (out, trace) = sealed(&s, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        // The validation error: file, line, field, the host, the way out.
        assert!(
            err.contains("remote.toml:6:1: field `target.primary.endpoint`")
                && err.contains("203.0.113.7")
                && err.contains("--allow-remote"),
            "{command}: {err}"
        );
        // Refused before any client existed: not one socket was opened...
        if let Some(trace) = trace {
            let calls: Vec<&str> = trace
                .lines()
                .filter(|l| l.contains("socket(") || l.contains("connect("))
                .collect();
            assert!(calls.is_empty(), "{command} opened sockets: {calls:?}");
        }
        // ...and no run began (a run's directory is its first act).
        assert!(!results.exists(), "{command} made {}", results.display());
    }
    // The flag allows what the file does not; validate and plan connect nowhere.
    for command in ["validate", "plan"] {
        let (out, trace) = sealed(&s, &[command, file.to_str().unwrap(), "--allow-remote"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{command}: {out:?}");
        if command == "plan" {
            assert!(text.contains("endpoints: REMOTE 203.0.113.7"), "{text}");
        }
        if let Some(trace) = trace {
            assert!(!trace.contains("connect("), "{command}: {trace}");
        }
    }
}

#[test]
fn plan_prints_what_every_bundled_scenario_creates_writes_faults_and_drops() {
    servers_stay_up();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for file in &files {
        let s = dualwrite::scenario::load(file).unwrap();
        let out = Command::new(bin())
            .args(["plan", file.to_str().unwrap()])
            .current_dir(repo())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{}: {out:?}", file.display());
        let name = file.display();
        for section in ["create:", "write:", "fault:", "drop (after the check):"] {
            assert!(text.contains(section), "{name}: no {section}\n{text}");
        }
        assert!(text.contains("endpoints: loopback only"), "{name}\n{text}");
        assert!(
            text.contains(&format!("{} operations", s.workload.planned_ops())),
            "{name}\n{text}"
        );
        for f in &s.faults {
            assert!(text.contains(&f.short()), "{name}: {}\n{text}", f.short());
        }
        // What is created is named per store: the run's own namespace only.
        let store_word = match s.target.primary.store.name() {
            "cassandra" => "keyspace dw_<time>_<hex>",
            "mongodb" => "database dw_<time>_<hex>",
            "memory" => "in-memory tables of dw_<time>_<hex>",
            _ => "table dw_<time>_<hex>_orders",
        };
        assert!(text.contains(store_word), "{name}\n{text}");
    }
}

/// A scenario on moto, directly (no proxy: nothing here needs a fault);
/// `side` is added to both sides' tables.
fn moto_scenario(name: &str, side: &str, namespace: &str, endpoint: &str) -> String {
    format!(
        "name = \"{name}\"\n[target]\nstore = \"dynamodb\"\n[target.primary]\nendpoint = \"{endpoint}\"\n{side}\n[target.secondary]\nendpoint = \"{endpoint}\"\n{side}\n[namespace]\n{namespace}\n[pattern]\nname = \"naive\"\n[workload]\nrate = 20\nops = 20\nop_timeout = \"2s\"\n"
    )
}

#[test]
fn a_namespace_that_exists_is_refused_unless_reused_and_what_existed_is_never_dropped() {
    let s = Scratch::new();
    let name = format!("dwexists{}", std::process::id());
    let run = |ns: &str| {
        let text = moto_scenario("exists", "", ns, "127.0.0.1:5000");
        s.dualwrite(&["run", s.write("exists.toml", &text).to_str().unwrap()])
    };
    // The first run makes the namespace and keeps it.
    let out = run(&format!("name = \"{name}\"\nkeep = true"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The second is refused before it creates or writes anything.
    let out = run(&format!("name = \"{name}\""));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("refused")
            && err.contains(&format!("table {name}_orders"))
            && err.contains("reuse = true"),
        "{err}"
    );
    // Told to reuse it, a run goes ahead and drops nothing that was there before.
    let out = run(&format!("name = \"{name}\"\nreuse = true"));
    let err = String::from_utf8_lossy(&out.stderr);
    // The first run's 20 orders are records no operation of this run wrote...
    assert!(matches!(out.status.code(), Some(0 | 1)), "{err}");
    let out = run(&format!("name = \"{name}\""));
    assert_eq!(out.status.code(), Some(3), "the tables are still there");
    // Clean up: a reusing run with nothing kept would still not drop them.
    drop_tables(&[format!("{name}_orders"), format!("{name}_events")]);
}

fn drop_tables(tables: &[String]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let scenario = crate::common::parse(&moto_scenario("c", "", "", "127.0.0.1:5000"));
        let conn = dualwrite::store::dynamodb::DynamoConn::new(
            "127.0.0.1:5000",
            dualwrite::scenario::Side::Primary,
            &scenario,
        )
        .await
        .unwrap();
        let client = conn.client(std::time::Duration::from_secs(5), None);
        for t in tables {
            client.delete_table().table_name(t).send().await.unwrap();
        }
    });
}

/// A loopback TCP relay to moto that keeps the client's bytes, to read back the
/// `Credential=<key>/<date>/<region>/dynamodb/aws4_request` each request was signed with.
struct Recorder {
    addr: String,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    fn start(upstream: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let keep = sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                let keep = keep.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        keep.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { addr, sent }
    }

    /// (access key, region) of every signed request seen.
    fn signatures(&self) -> Vec<(String, String)> {
        let sent = String::from_utf8_lossy(&self.sent.lock().unwrap()).to_string();
        sent.split("Credential=")
            .skip(1)
            .filter_map(|rest| {
                let mut parts = rest.split('/');
                Some((parts.next()?.to_string(), {
                    parts.next()?;
                    parts.next()?.to_string()
                }))
            })
            .collect()
    }
}

#[test]
fn dynamodb_credentials_and_region_come_from_the_named_profile() {
    let s = Scratch::new();
    let recorder = Recorder::start("127.0.0.1:5000");
    let profile_key = "AKIADWPROFILE0000001";
    let default_key = "AKIADWDEFAULT0000001";
    let env_key = "AKIADWENVIRONMENT001";
    let secret = "profile-secret-5b0e7d";
    s.write(
        "credentials",
        &format!(
            "[default]\naws_access_key_id = {default_key}\naws_secret_access_key = default-secret\n\n[dwtest]\naws_access_key_id = {profile_key}\naws_secret_access_key = {secret}\n"
        ),
    );
    s.write(
        "config",
        "[default]\nregion = us-west-2\n\n[profile dwtest]\nregion = eu-west-3\n",
    );
    let text = moto_scenario("profile", "profile = \"dwtest\"", "", &recorder.addr);
    let file = s.write("profile.toml", &text);
    let out = Command::new(bin())
        .args(["run", file.to_str().unwrap(), "--results-dir"])
        .arg(s.results())
        .env("AWS_SHARED_CREDENTIALS_FILE", s.path().join("credentials"))
        .env("AWS_CONFIG_FILE", s.path().join("config"))
        // A key in the environment too: the profile named in the scenario wins.
        .env("AWS_ACCESS_KEY_ID", env_key)
        .env("AWS_SECRET_ACCESS_KEY", "env-secret")
        .env_remove("AWS_REGION")
        .env_remove("AWS_PROFILE")
        .current_dir(repo())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let signed = recorder.signatures();
    // DescribeTable x2, CreateTable x2, 20 x 2 PutItem, scans, DeleteTable x2.
    assert!(signed.len() >= 44, "{} signed requests", signed.len());
    assert!(
        signed
            .iter()
            .all(|(key, region)| key == profile_key && region == "eu-west-3"),
        "{:?}",
        signed
            .iter()
            .filter(|(k, r)| k != profile_key || r != "eu-west-3")
            .take(3)
            .collect::<Vec<_>>()
    );
    crate::common::assert_no_secrets(&out, &s.results(), &[secret, "env-secret"]);
}
