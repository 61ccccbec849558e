//! The result of one run: one versioned JSON document (schema in docs/RESULTS.md),
//! written atomically into the run's own directory beside its history and scenario.
//! Every type of the document is here, in one module; the modules that fill a
//! part (driver, nemesis, relay, checker, stores) re-export theirs. Reports are
//! rendered from these files only.

mod app;
mod capacity;
mod readers;
mod replicas;

pub use app::*;
pub use capacity::*;
pub use readers::*;
pub use replicas::*;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::scenario::{Expect, ReadConsistency, Side};

/// 2: `checker` is null when the checker did not run; `availability`,
/// `warnings`, `faults_injected`; attribution `recovery` tails and causes.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    pub schema_version: u32,
    pub tool: Tool,
    pub run_id: String,
    pub scenario: ScenarioInfo,
    pub seed: u64,
    /// Which of `run --repeat N`'s runs this is; absent for a single run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
    pub target: String,
    pub pattern: String,
    pub pattern_options: serde_json::Value,
    pub server: ServerInfo,
    pub namespace: String,
    pub started_at: String,
    pub finished_at: String,
    /// False when the run was interrupted or failed before the checker finished.
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    pub workload: WorkloadResult,
    /// From each operation's intended start (includes waiting: no coordinated omission).
    pub latency_ms: Latency,
    /// From each operation's actual start: the store and pattern's own service time.
    #[serde(default)]
    pub service_ms: Latency,
    pub timeline: Vec<Second>,
    pub faults: Vec<FaultWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayResult>,
    /// Errors the stores' own fault sources injected, by `kind@side`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub faults_injected: BTreeMap<String, u64>,
    /// What the stores' clients did on their own, out of the application's sight
    /// (a Kafka producer's own resends after lost answers), by `name@side`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client_counts: BTreeMap<String, u64>,
    /// `[app]`: the service (and relay) dualwrite ran or attached to, and what
    /// happened to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppResult>,
    /// What each replica held, for a store whose records live on several nodes
    /// (the Cassandra cluster); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaReport>,
    /// What the operations got: how much of the run was acknowledged, refused, or
    /// left indeterminate, overall and after the last fault window.
    #[serde(default)]
    pub availability: Availability,
    /// Capacity per logical operation: units, mutations, documents, per store
    /// (absent in results written before it; a store without counters adds none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityResult>,
    /// What readers saw during the run (`[readers]`); absent without readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readers: Option<ReadersResult>,
    /// The checker's counts; null when it did not run (an interrupted run, an
    /// error before or during the scans): never zeros that were not counted.
    pub checker: Option<CheckerReport>,
    /// Whether the checker ran (false on an interrupted run without --check-on-interrupt).
    pub checked: bool,
    pub expect: Expect,
    pub verdict: Verdict,
    pub verdict_reasons: Vec<String>,
    /// Reasons a PASS may prove little (most operations indeterminate, a store
    /// that never recovered).
    #[serde(default)]
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

/// One run of a series (`dualwrite run --repeat N`): the runs of one scenario
/// with seeds `seed .. seed+N-1`, which `compare` folds into one row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Repeat {
    /// 1-based position in the series.
    pub index: u32,
    /// How many runs the series asked for.
    pub of: u32,
    /// The series' id, shared by its runs (unique per `run --repeat` invocation
    /// and scenario file).
    pub group: String,
}

/// Fractions of operations by outcome, and what happened after the faults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Availability {
    pub ok_fraction: f64,
    pub fail_fraction: f64,
    pub unknown_fraction: f64,
    /// Operations whose intended start came after the last fault window ended
    /// (absent without faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_faults: Option<AfterFaults>,
    /// Whether any of those was acknowledged (absent when none ran after the faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct AfterFaults {
    pub ops: u64,
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
}

impl Availability {
    /// From the history's outcomes and the applied fault windows.
    pub fn of(history: &crate::history::History, windows: &[FaultWindow]) -> Self {
        use crate::history::Outcome;
        let (mut ok, mut fail, mut unknown) = (0u64, 0u64, 0u64);
        let last_end_ms = windows
            .iter()
            .filter_map(|w| w.end_s.or(w.start_s.map(|_| f64::MAX)))
            .fold(None::<f64>, |m, e| Some(m.map_or(e, |m| m.max(e))))
            .map(|s| (s * 1000.0).ceil() as u64);
        let mut after = last_end_ms.map(|_| AfterFaults::default());
        for (_, op) in history.iter() {
            let outcome = op.outcome();
            match outcome {
                Some(Outcome::Ok) => ok += 1,
                Some(Outcome::Fail) => fail += 1,
                Some(Outcome::Unknown) => unknown += 1,
                None => continue,
            }
            if let (Some(a), Some(end)) = (after.as_mut(), last_end_ms)
                && u64::from(op.intended_ms) >= end
            {
                a.ops += 1;
                match outcome {
                    Some(Outcome::Ok) => a.ok += 1,
                    Some(Outcome::Fail) => a.fail += 1,
                    _ => a.unknown += 1,
                }
            }
        }
        let total = (ok + fail + unknown).max(1) as f64;
        let round = |x: u64| (x as f64 / total * 10_000.0).round() / 10_000.0;
        let recovered = after.as_ref().filter(|a| a.ops > 0).map(|a| a.ok > 0);
        Self {
            ok_fraction: round(ok),
            fail_fraction: round(fail),
            unknown_fraction: round(unknown),
            after_faults: after,
            recovered,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Default for Tool {
    fn default() -> Self {
        Self {
            name: "dualwrite".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ScenarioInfo {
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub description: String,
    /// Short forms of the fault schedule (`down@secondary/downstream 5s+3s`).
    pub faults: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Ops {
    pub planned: u64,
    pub total: u64,
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct WorkloadResult {
    pub target_tps: f64,
    pub achieved_tps: f64,
    pub load_s: f64,
    pub concurrency: usize,
    pub ops: Ops,
    pub retries: u64,
    pub delayed: u64,
    pub max_start_delay_ms: f64,
    pub errors: BTreeMap<String, u64>,
    /// The first full error text per error class.
    #[serde(default)]
    pub error_samples: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    pub count: u64,
}

impl Latency {
    /// From a histogram of microseconds.
    pub fn from_us(h: &hdrhistogram::Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |v: u64| (v as f64 / 1000.0 * 1000.0).round() / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
            count: h.len(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RelayResult {
    #[serde(flatten)]
    pub stats: RelayStats,
    /// From each operation's intended start until its event reached the secondary.
    pub time_to_consistency_ms: Latency,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Error,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

// ---- The parts of the result document that other modules fill. ----

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Second {
    pub t: u64,
    /// Operations whose intended start fell in this second.
    pub attempted: u64,
    /// Completions in this second, by outcome.
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
    /// Latency of the completions in this second (from the intended start).
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One fault window as applied (times in seconds since the load started).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultWindow {
    /// Index of the `[[faults]]` entry, and of the repetition within it.
    pub fault: usize,
    pub window: usize,
    pub kind: String,
    /// The connection a fault acts on; absent for process faults (see `server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    pub direction: String,
    pub toxicity: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// The server a process fault acts on (`side` means nothing for those), or
    /// the cluster a node fault acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The nodes a fault between the cluster's nodes acts on: `c3`, `c1,c2` (a
    /// partition: those against the others), `c3->c1` (one-way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
    pub planned_start_s: f64,
    pub planned_end_s: f64,
    /// When it was really applied / removed; `None` if it never was.
    pub start_s: Option<f64>,
    pub end_s: Option<f64>,
    /// When the faulted side next acknowledged a write after the window ended: the
    /// end of its recovery tail (a driver reconnecting after a reset, a pool
    /// refilling). `None` when it never did, or for windows without a side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FaultWindow {
    /// Whether a moment (ms since load start) falls inside the applied window.
    pub fn contains_ms(&self, ms: u64) -> bool {
        let t = ms as f64 / 1000.0;
        match (self.start_s, self.end_s) {
            (Some(s), Some(e)) => t >= s && t < e,
            (Some(s), None) => t >= s,
            _ => false,
        }
    }

    /// Whether the applied window overlaps `[from_ms, to_ms]`.
    pub fn overlaps_ms(&self, from_ms: u64, to_ms: u64) -> bool {
        let (from, to) = (from_ms as f64 / 1000.0, to_ms as f64 / 1000.0);
        match (self.start_s, self.end_s) {
            (Some(s), Some(e)) => from < e && to >= s,
            (Some(s), None) => to >= s,
            _ => false,
        }
    }

    /// Whether `[from_ms, to_ms]` overlaps the window's recovery tail: from its
    /// end until the side's first acknowledged write after it.
    pub fn tail_overlaps_ms(&self, from_ms: u64, to_ms: u64) -> bool {
        let (from, to) = (from_ms as f64 / 1000.0, to_ms as f64 / 1000.0);
        match (self.end_s, self.recovered_s) {
            (Some(e), Some(r)) if r > e => from < r && to >= e,
            _ => false,
        }
    }

    /// Milliseconds from the window's end to the side's first acknowledged write.
    pub fn recovery_ms(&self) -> Option<f64> {
        match (self.end_s, self.recovered_s) {
            (Some(e), Some(r)) => Some(((r - e).max(0.0) * 1000.0).round()),
            _ => None,
        }
    }

    pub fn label(&self) -> String {
        let target = match (&self.nodes, &self.server, self.side) {
            (Some(nodes), _, _) => nodes.clone(),
            (None, Some(server), _) => server.clone(),
            (None, None, Some(side)) => side.to_string(),
            (None, None, None) => "?".into(),
        };
        format!("#{}.{} {}@{}", self.fault, self.window, self.kind, target)
    }
}

/// Relay figures for the result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RelayStats {
    pub workers: u32,
    pub delivered: u64,
    /// Simulated crashes from the crash policy.
    pub self_crashes: u64,
    /// Crashes from `relay-crash` faults.
    pub fault_crashes: u64,
    pub errors: u64,
    /// The first distinct errors that stopped a worker (up to 5), in full.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_samples: Vec<String>,
    /// Pending events when the load stopped.
    pub pending_at_load_end: u64,
    /// Pending events when the checker started (0 = drained).
    pub pending_at_check: u64,
    pub drained: bool,
    /// Time from the load's end until drained, milliseconds.
    pub drain_ms: u64,
    /// Orders published again because the application set their outbox flag again
    /// after the relay had cleared it (`rearm = true`).
    #[serde(default)]
    pub rearmed: u64,
    /// `at-least-once` or `exactly-once` (`relay.delivery`); empty in older files.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub delivery: String,
    /// Events the source handed out again that an exactly-once sink had already
    /// committed (a crash between publishing and marking): marked, not published.
    /// Absent when zero (always, at least once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub already_published: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What landed for operations the client did not see succeed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Landed {
    pub none: u64,
    pub primary_only: u64,
    pub secondary_only: u64,
    pub both: u64,
}

impl Landed {
    pub(crate) fn add(&mut self, p: bool, s: bool) {
        match (p, s) {
            (false, false) => self.none += 1,
            (true, false) => self.primary_only += 1,
            (false, true) => self.secondary_only += 1,
            (true, true) => self.both += 1,
        }
    }
}

/// Divergent records of one category, tied to the fault windows in force at any
/// time between their intended start and their end. `outside` counts those that fell in no window: the alarming ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Attribution {
    /// Fault windows in force at any time between the operation's intended start and its end.
    pub windows: BTreeMap<String, u64>,
    /// Operations that fell in a window's recovery tail (after it ended, before the
    /// side's first success): after-effects, not unexplained divergence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recovery: BTreeMap<String, u64>,
    /// Duplicates with a known cause outside any window: a relay's own crash
    /// between publish and mark, an outbox flag set again by an application retry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub causes: BTreeMap<String, u64>,
    /// In no window, no recovery tail, no known cause: the alarming ones.
    pub outside: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CheckerReport {
    pub orphans: u64,
    pub ghosts: u64,
    pub duplicates: u64,
    pub mismatches: u64,
    pub lost_acks: u64,
    pub strays: u64,
    /// orphans + ghosts + duplicates + mismatches + lost_acks (one record can count
    /// in two categories: an acknowledged orphan is also a lost ack).
    pub divergence: u64,
    /// Distinct operations with any divergence.
    pub divergent_ops: u64,
    /// Operations answered `fail`, by what actually landed.
    pub ambiguous_fail: Landed,
    /// Operations answered `unknown`, by what actually landed.
    pub ambiguous_unknown: Landed,
    pub scanned_primary: u64,
    pub scanned_secondary: u64,
    /// Up to 10 order ids per category (strays: keys).
    pub samples: BTreeMap<String, Vec<String>>,
    pub attribution: BTreeMap<String, Attribution>,
    /// Divergent operations per second of intended start (for charts).
    pub divergent_by_second: Vec<u64>,
}

pub const CATEGORIES: [&str; 6] = [
    "orphans",
    "ghosts",
    "duplicates",
    "mismatches",
    "lost_acks",
    "strays",
];

impl CheckerReport {
    pub fn count(&self, category: &str) -> u64 {
        match category {
            "orphans" => self.orphans,
            "ghosts" => self.ghosts,
            "duplicates" => self.duplicates,
            "mismatches" => self.mismatches,
            "lost_acks" => self.lost_acks,
            "strays" => self.strays,
            "divergence" => self.divergence,
            _ => 0,
        }
    }
}

/// What the server is and can do, recorded in every result.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ServerInfo {
    pub product: String,
    pub version: String,
    /// Capability name -> supported.
    pub capabilities: BTreeMap<String, bool>,
    /// Behaviours this server cannot exercise (so a zero means less than it seems).
    pub not_exercised: Vec<String>,
}

/// Where one run's files live.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `<results>/<scenario>/<run_id>/`, checking the directory is writable
    /// and has room before any load starts.
    pub fn create(results: &Path, scenario: &str, run_id: &str) -> anyhow::Result<Self> {
        let path = results.join(scenario).join(run_id);
        std::fs::create_dir_all(&path).with_context(|| {
            format!("cannot create the results directory {} (check permissions, or pass --results-dir DIR)", path.display())
        })?;
        // A probe write catches read-only mounts and full disks before the load starts.
        let probe = path.join(".write-probe");
        std::fs::write(&probe, vec![0u8; 1 << 20])
            .and_then(|_| std::fs::remove_file(&probe))
            .with_context(|| {
                format!("cannot write 1 MiB to {} (disk full or read-only?); free space or pass --results-dir DIR", path.display())
            })?;
        Ok(Self { path })
    }

    pub fn result_file(&self) -> PathBuf {
        self.path.join("result.json")
    }

    pub fn history_file(&self) -> PathBuf {
        self.path.join("history.jsonl")
    }

    /// Every read of `[readers]`, one line each (docs/HISTORY.md).
    pub fn reads_file(&self) -> PathBuf {
        self.path.join("reads.jsonl")
    }

    pub fn scenario_file(&self) -> PathBuf {
        self.path.join("scenario.toml")
    }

    /// Points `<results>/<scenario>/latest` at this run (atomically replaced).
    pub fn mark_latest(&self) -> std::io::Result<()> {
        let parent = self.path.parent().expect("run dir has a parent");
        let name = self.path.file_name().expect("run dir has a name");
        let tmp = parent.join(format!(".latest-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(name, &tmp)?;
        std::fs::rename(&tmp, parent.join("latest"))
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory,
/// flushed and synced, then renamed over the target. Readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl RunResult {
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(self)?;
        json.push(b'\n');
        write_atomic(path, &json).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Reads a result file, or `result.json` inside a run directory.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let file = if path.is_dir() {
            path.join("result.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let result: RunResult = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a dualwrite result (schema {SCHEMA_VERSION})",
                file.display()
            )
        })?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{History, OpSummary, Outcome, SideOutcome};

    fn window(start: f64, end: f64) -> FaultWindow {
        FaultWindow {
            fault: 0,
            window: 0,
            kind: "down".into(),
            side: Some(Side::Primary),
            direction: "downstream".into(),
            toxicity: 1.0,
            proxy: None,
            server: None,
            nodes: None,
            planned_start_s: start,
            planned_end_s: end,
            start_s: Some(start),
            end_s: Some(end),
            recovered_s: None,
            error: None,
        }
    }

    #[test]
    fn availability_counts_outcomes_and_what_came_after_the_last_window() {
        let mut h = History::default();
        // 0-3 s: ok; 3-5 s: unknown (the window 3-5 s); after 5 s: still unknown.
        for id in 0..10u64 {
            let outcome = if id < 3 {
                Outcome::Ok
            } else {
                Outcome::Unknown
            };
            h.record(
                id,
                OpSummary::new(
                    outcome,
                    SideOutcome::Unknown,
                    SideOutcome::Skipped,
                    id as u32 * 1000,
                ),
            );
        }
        let a = Availability::of(&h, &[window(3.0, 5.0)]);
        assert_eq!((a.ok_fraction, a.unknown_fraction), (0.3, 0.7));
        let after = a.after_faults.clone().unwrap();
        assert_eq!((after.ops, after.ok, after.unknown), (5, 0, 5));
        assert_eq!(a.recovered, Some(false), "nothing acknowledged after 5 s");
        // Without faults there is nothing to recover from.
        let a = Availability::of(&h, &[]);
        assert_eq!((a.after_faults, a.recovered), (None, None));
    }
}
