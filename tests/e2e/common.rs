//! Helpers shared by the end-to-end tests: run the real binary, read its result.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use dualwrite::checker::{self, CheckerReport, CollectedScan};
use dualwrite::history::{History, HistoryEntry};
use dualwrite::reader::entry::ReadEntry;
use dualwrite::result::{ReadersResult, RunResult};
use dualwrite::scenario::{self, Scenario, Side};
use dualwrite::store::{self, Stores};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dualwrite")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared servers stay up while a test uses them: every test holds this lock
/// shared (through its `Scratch` or `lock`), and a test that kills or pauses a
/// shared server (moto, FerretDB, mongoeco) holds it alone, taken first, before
/// any store lock. Tests on proxies of their own would otherwise meet a server
/// another test killed.
static SERVERS: std::sync::RwLock<()> = std::sync::RwLock::new(());

thread_local! {
    // libtest runs each test on a thread of its own: the guard lives until the
    // test's thread ends.
    static SHARED: std::cell::RefCell<Option<std::sync::RwLockReadGuard<'static, ()>>> =
        const { std::cell::RefCell::new(None) };
    static EXCLUSIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Holds the servers up for the rest of this test (once per test thread).
pub fn servers_stay_up() {
    if EXCLUSIVE.get() {
        return;
    }
    SHARED.with(|held| {
        let mut held = held.borrow_mut();
        if held.is_none() {
            *held = Some(SERVERS.read().unwrap_or_else(|p| p.into_inner()));
        }
    });
}

/// For a test that kills or pauses a shared server: waits until no other test
/// uses the servers, and keeps them to itself. Call it first in the test.
pub fn servers_to_myself() -> std::sync::RwLockWriteGuard<'static, ()> {
    SHARED.with(|held| held.borrow_mut().take());
    EXCLUSIVE.set(true);
    SERVERS.write().unwrap_or_else(|p| p.into_inner())
}

/// A scratch directory for one test (results, scenario files).
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        servers_stay_up();
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn results(&self) -> PathBuf {
        self.path().join("results")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `dualwrite <args> --results-dir <scratch>/results` (for `run`).
    pub fn dualwrite(&self, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(args).current_dir(repo());
        if args.first() == Some(&"run") {
            cmd.arg("--results-dir").arg(self.results()).arg("--quiet");
        }
        cmd.output().expect("run dualwrite")
    }

    /// Runs one scenario file; returns the exit code, the result and the history.
    pub fn run(&self, file: &Path) -> Run {
        let out = self.dualwrite(&["run", file.to_str().unwrap()]);
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let scenario = scenario::load(file).expect("valid scenario");
        let latest = self.results().join(&scenario.name).join("latest");
        let result = RunResult::read(&latest)
            .unwrap_or_else(|e| panic!("no result ({e:#}); exit {code}\n{stdout}\n{stderr}"));
        let (_, history) = History::read_jsonl(&latest.join("history.jsonl"))
            .unwrap_or_else(|e| panic!("no history ({e}); exit {code}\n{stdout}\n{stderr}"));
        Run {
            code,
            result,
            history,
            stdout,
            stderr,
        }
    }
}

pub struct Run {
    pub code: i32,
    pub result: RunResult,
    pub history: Vec<HistoryEntry>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The checker's counts (the test fails, explained, if it did not run).
    pub fn checker(&self) -> &CheckerReport {
        self.result
            .checker
            .as_ref()
            .unwrap_or_else(|| panic!("the checker did not run: {}", self.explain()))
    }

    /// Operations whose history matches a predicate.
    pub fn count(&self, f: impl Fn(&HistoryEntry) -> bool) -> u64 {
        self.history.iter().filter(|e| f(e)).count() as u64
    }

    pub fn explain(&self) -> String {
        format!(
            "exit {}\nchecker: {:?}\nworkload: {:?}\nrelay: {:?}\nclient counts: {:?}\nnotes: {:?}\nstderr: {}",
            self.code,
            self.result.checker,
            self.result.workload,
            self.result.relay.as_ref().map(|r| &r.stats),
            self.result.client_counts,
            self.result.notes,
            self.stderr
        )
    }
}

/// A run with readers: its reads (`reads.jsonl`) beside its result and history.
pub struct ReadRun {
    pub run: Run,
    pub reads: Vec<ReadEntry>,
}

impl ReadRun {
    /// Runs `file`; every read the result counts is in `reads.jsonl`.
    pub fn new(s: &Scratch, file: &Path) -> Self {
        let run = s.run(file);
        let name = scenario::load(file).expect("valid scenario").name;
        let dir = s.results().join(name).join("latest");
        let reads = dualwrite::reader::entry::read_jsonl(&dir.join("reads.jsonl"))
            .unwrap_or_else(|e| panic!("no reads.jsonl ({e}): {}", run.explain()));
        let r = Self { run, reads };
        assert_eq!(
            r.reads.len() as u64,
            r.readers().reads.total,
            "{}",
            r.explain()
        );
        r
    }

    pub fn readers(&self) -> &ReadersResult {
        self.run
            .result
            .readers
            .as_ref()
            .unwrap_or_else(|| panic!("no readers' result: {}", self.run.explain()))
    }

    pub fn op(&self, id: u64) -> &HistoryEntry {
        self.run
            .history
            .iter()
            .find(|e| e.id == id)
            .expect("every read order is in the history")
    }

    pub fn explain(&self) -> String {
        format!(
            "{}\nreaders: {:?}",
            self.run.explain(),
            self.run.result.readers
        )
    }
}

/// Parses scenario text (no file needed).
pub fn parse(text: &str) -> Arc<Scenario> {
    Arc::new(scenario::parse(Path::new("test.toml"), text).expect("valid scenario"))
}

/// A fresh namespace on the scenario's stores, for planting records.
pub async fn fresh_store(scenario: Arc<Scenario>) -> Stores {
    store::connect_fresh(scenario)
        .await
        .expect("store reachable (scripts/stack up)")
        .0
}

/// Scans both sides and runs the checker against `history`.
pub async fn check(stores: &Stores, history: &History, scenario: &Scenario) -> CheckerReport {
    let (primary, secondary) = stores.sides().await.unwrap();
    let mut p = CollectedScan::default();
    primary.scan(&mut p).await.unwrap();
    let mut s = CollectedScan::default();
    secondary.scan(&mut s).await.unwrap();
    checker::check(
        p,
        s,
        history,
        &scenario.check.fields,
        &[],
        &checker::Causes::new(),
    )
}

/// Tests that fault one store's proxies must not overlap: one lock per store of
/// the registry. Tests of different stores run in parallel.
pub fn lock(store: &str) -> std::sync::MutexGuard<'static, ()> {
    use std::sync::{Mutex, OnceLock};
    servers_stay_up();
    static LOCKS: OnceLock<Vec<(&'static str, Mutex<()>)>> = OnceLock::new();
    let locks = LOCKS.get_or_init(|| {
        dualwrite::store::REGISTRY
            .iter()
            .map(|s| (s.name, Mutex::new(())))
            .collect()
    });
    let (_, lock) = locks
        .iter()
        .find(|(name, _)| *name == store)
        .unwrap_or_else(|| panic!("no store `{store}` in the registry"));
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Toxiproxy proxies of one test alone, `<prefix>_primary`, `_secondary` and
/// `_relay`, in front of one server and listening on ports Toxiproxy picks;
/// deleted when dropped. Runs of other tests (or engineers) on the default
/// proxies neither block this test nor are disturbed by its faults.
pub struct OwnProxies {
    pub prefix: String,
}

impl OwnProxies {
    pub fn new(tag: &str, upstream: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let proxies = Self {
            prefix: format!("dw{tag}_{}x{n}", std::process::id()),
        };
        let prefix = proxies.prefix.clone();
        let upstream = upstream.to_string();
        toxiproxy_blocking(|client| async move {
            for side in Side::ALL {
                let name = proxies_name(&prefix, side);
                let r = client
                    .post("http://127.0.0.1:8474/proxies")
                    .json(&serde_json::json!({
                        "name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true
                    }))
                    .send()
                    .await
                    .expect("Toxiproxy up (scripts/stack up)");
                assert!(r.status().is_success(), "creating {name}: {}", r.status());
            }
        });
        proxies
    }

    pub fn name(&self, side: Side) -> String {
        proxies_name(&self.prefix, side)
    }

    /// The `[target]` table routing every connection through these proxies (no
    /// `server` line when `server` is empty: the store's default).
    pub fn target(&self, store: &str, server: &str) -> String {
        let server = if server.is_empty() {
            String::new()
        } else {
            format!("server = \"{server}\"\n")
        };
        let (p, s, r) = (
            self.name(Side::Primary),
            self.name(Side::Secondary),
            self.name(Side::Relay),
        );
        format!(
            "[target]\nstore = \"{store}\"\n{server}[target.primary]\nproxy = \"{p}\"\n[target.secondary]\nproxy = \"{s}\"\n[target.relay]\nproxy = \"{r}\"\n"
        )
    }
}

impl Drop for OwnProxies {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        toxiproxy_blocking(|client| async move {
            for side in Side::ALL {
                let name = proxies_name(&prefix, side);
                let _ = client
                    .delete(format!("http://127.0.0.1:8474/proxies/{name}"))
                    .send()
                    .await;
            }
        });
    }
}

fn proxies_name(prefix: &str, side: Side) -> String {
    format!("{prefix}_{side}")
}

/// Runs `f` with an HTTP client on a runtime of its own (tests are synchronous).
fn toxiproxy_blocking<F, Fut>(f: F)
where
    F: FnOnce(reqwest::Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f(reqwest::Client::new()));
}

/// The state of a Toxiproxy proxy: (enabled, names of its toxics).
pub fn proxy_state(name: &str) -> (bool, Vec<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = dualwrite::fault::toxiproxy::Toxiproxy::new("http://127.0.0.1:8474");
    let p = rt.block_on(t.proxy(name)).expect("toxiproxy up");
    (p.enabled, p.toxics.into_iter().map(|t| t.name).collect())
}

/// The checker proven on planted divergence: writes a known mix straight into the
/// store's two sides (bypassing any pattern), runs the checker, asserts exact counts.
/// 0..4 consistent; 4, 5 orphans; 6 ghost; 7 on the secondary 3 times (2 extra);
/// 8 mismatched amount; 9 missing everywhere (lost ack); one foreign key (stray).
/// `secondary` is what the history says of the secondary write (`Async` for relays).
pub async fn planted_divergence_is_counted_exactly(
    scenario: Arc<Scenario>,
    secondary: dualwrite::history::SideOutcome,
    label: &str,
) {
    use dualwrite::history::{OpSummary, Outcome, SideOutcome};
    use dualwrite::store::Record;
    let stores = fresh_store(scenario.clone()).await;
    let (p_side, s_side) = stores.sides().await.unwrap();
    let rec = |id: u64, amount: u64| Record {
        order_id: id,
        customer_id: 3,
        amount_cents: amount,
    };
    let mut history = History::default();
    for id in 0..10 {
        history.record(
            id,
            OpSummary::new(Outcome::Ok, SideOutcome::Ok, secondary, 0),
        );
    }
    for id in 0..4 {
        p_side.plant(rec(id, 100), 1).await.unwrap();
        s_side.plant(rec(id, 100), 1).await.unwrap();
    }
    p_side.plant(rec(4, 100), 1).await.unwrap();
    p_side.plant(rec(5, 100), 1).await.unwrap();
    s_side.plant(rec(6, 100), 1).await.unwrap();
    p_side.plant(rec(7, 100), 1).await.unwrap();
    s_side.plant(rec(7, 100), 3).await.unwrap();
    p_side.plant(rec(8, 100), 1).await.unwrap();
    s_side.plant(rec(8, 999), 1).await.unwrap();
    s_side.plant_foreign("not-an-order").await.unwrap();
    let c = check(&stores, &history, &scenario).await;
    stores.drop_namespace().await.unwrap();
    assert_eq!(c.orphans, 2, "{label}: {c:?}");
    assert_eq!(c.ghosts, 1, "{label}: {c:?}");
    assert_eq!(c.duplicates, 2, "{label}: {c:?}");
    assert_eq!(c.mismatches, 1, "{label}: {c:?}");
    // 4, 5, 6 (one side missing) and 9 (both).
    assert_eq!(c.lost_acks, 4, "{label}: {c:?}");
    assert_eq!(c.strays, 1, "{label}: {c:?}");
    assert_eq!(c.divergence, 10, "{label}: {c:?}");
    assert_eq!(
        (c.scanned_primary, c.scanned_secondary),
        (8, 10),
        "{label}: {c:?}"
    );
}

/// Every file under a directory (symbolic links not followed).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_under(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

/// Asserts that no secret appears in a command's output nor in any file it left
/// under `dir` (result, history, scenario copy, reports). Panics naming the
/// place, never the secret.
pub fn assert_no_secrets(out: &Output, dir: &Path, secrets: &[&str]) {
    let mut places = vec![
        (
            "stdout".to_string(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        ),
        (
            "stderr".to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        ),
    ];
    for f in files_under(dir) {
        places.push((
            f.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default()).to_string(),
        ));
    }
    for (i, secret) in secrets.iter().enumerate() {
        assert!(secret.len() >= 8, "secret #{i} is too short to search for");
        for (place, text) in &places {
            assert!(!text.contains(secret), "secret #{i} leaked into {place}");
        }
    }
}
