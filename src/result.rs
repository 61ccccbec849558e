//! The result of one run: one versioned JSON document (schema in docs/RESULTS.md),
//! written atomically into the run's own directory beside its history and scenario.
//! Reports are rendered from these files only.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::checker::{CATEGORIES, CheckerReport};
use crate::driver::Second;
use crate::fault::FaultWindow;
use crate::relay::RelayStats;
use crate::scenario::Expect;
use crate::store::ServerInfo;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    pub schema_version: u32,
    pub tool: Tool,
    pub run_id: String,
    pub scenario: ScenarioInfo,
    pub seed: u64,
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
    pub checker: CheckerReport,
    /// Whether the checker ran (false on an interrupted run without --check-on-interrupt).
    pub checked: bool,
    pub expect: Expect,
    pub verdict: Verdict,
    pub verdict_reasons: Vec<String>,
    pub notes: Vec<String>,
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
    /// Short forms of the fault schedule (`down@secondary/down 5s+3s`).
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

/// Compares the checker's counts with the allowed maxima.
pub fn judge(checker: &CheckerReport, expect: &Expect) -> (Verdict, Vec<String>) {
    let limits = [
        ("orphans", expect.orphans),
        ("ghosts", expect.ghosts),
        ("duplicates", expect.duplicates),
        ("mismatches", expect.mismatches),
        ("lost_acks", expect.lost_acks),
        ("strays", expect.strays),
        ("divergence", expect.divergence),
    ];
    let mut reasons = Vec::new();
    for (category, limit) in limits {
        let count = checker.count(category);
        if let Some(max) = limit
            && count > max
        {
            let samples = checker
                .samples
                .get(category)
                .map(|s| s.join(", "))
                .unwrap_or_default();
            let samples = if samples.is_empty() {
                String::new()
            } else {
                format!(" (e.g. {samples})")
            };
            reasons.push(format!("{category}: {count} > allowed {max}{samples}"));
        }
    }
    debug_assert!(
        CATEGORIES
            .iter()
            .all(|c| limits.iter().any(|(l, _)| l == c))
    );
    if reasons.is_empty() {
        (Verdict::Pass, reasons)
    } else {
        (Verdict::Fail, reasons)
    }
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
