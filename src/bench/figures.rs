//! The figures of one `dualwrite bench` as a JSON document (`bench --json FILE`,
//! schema in docs/BENCH.md): rewritten atomically after every measured part, so a
//! part that fails later does not lose the figures before it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::result::Tool;

pub const BENCH_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchResult {
    pub schema_version: u32,
    pub tool: Tool,
    pub started_at: String,
    pub cores: usize,
    /// The flags that shaped the figures (a quick run's are noisier).
    pub sink_ops: u64,
    pub checker_records: u64,
    pub quick: bool,
    pub harness_only: bool,
    pub harness: HarnessFigures,
    /// The rule that chose each pattern row's latency rate (`--latency-rule`,
    /// `--latency-fraction`), e.g. "each row at 50% of its own maximum".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_rule: Option<String>,
    /// By store name; a store that could not be measured has `skipped` set.
    pub stores: BTreeMap<String, StoreFigures>,
    /// The seed's claims next to this run's figures (src/bench/claims.rs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimFigures>,
    /// The summary lines as printed.
    pub summary: Vec<String>,
}

/// One claim of the seed beside what this run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClaimFigures {
    /// The store the claim is about.
    pub store: String,
    pub claim: String,
    /// This run's figure, in words, or why it was not measured.
    pub measured: String,
    /// Why the figure differs here (server, topology, workload).
    pub why: String,
    /// The numbers behind `measured`, by name (ms, ratios, units).
    #[serde(default)]
    pub figures: BTreeMap<String, f64>,
}

/// The harness's own figures, measured without any store.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HarnessFigures {
    /// Operations/s through the driver, history and histograms on a no-I/O sink.
    pub driver_ceiling_ops_s: Option<f64>,
    /// The fastest rate any store reached in this run (single write or naive).
    pub fastest_store_ops_s: Option<f64>,
    /// `driver_ceiling_ops_s / fastest_store_ops_s` (goal >= 100).
    pub driver_ceiling_x_fastest_store: Option<f64>,
    /// Resident memory growth per operation over the driver-ceiling load (goal <= 64).
    pub history_bytes_per_op: Option<f64>,
    /// Peak memory per record of the in-memory checker (goal <= 64).
    pub checker_bytes_per_record: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StoreFigures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The server measured (the store's bench server, e.g. moto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Naive through dualwrite vs a bare loop of the same writes.
    pub dualwrite_ops_s: Option<f64>,
    pub bare_ops_s: Option<f64>,
    /// `dualwrite_ops_s / bare_ops_s` (goal >= 0.95).
    pub dualwrite_vs_bare: Option<f64>,
    /// p50 through dualwrite / p50 of the bare loop (goal <= 1.05).
    pub p50_vs_bare: Option<f64>,
    /// The single write's maximum (bare client, closed loop).
    pub single_write_max_ops_s: Option<f64>,
    /// Worst achieved/target rate below 0.8x capacity (goal >= 0.99).
    pub rate_accuracy_worst: Option<f64>,
    /// Scan + compare vs a bare scan, records/s ratio (goal >= 0.9).
    pub checker_vs_bare_scan: Option<f64>,
    /// The pattern-overhead table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<PatternFigures>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PatternFigures {
    pub pattern: String,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ops_s: Option<f64>,
    /// The rate p50 and p99 were measured at (below `max_ops_s`, by the rule).
    #[serde(default)]
    pub latency_rate_ops_s: Option<f64>,
    /// Operations of the latency run started late (0: it was below capacity).
    #[serde(default)]
    pub late_ops: Option<u64>,
    /// The relay's time to consistency p50 in the latency run (relay patterns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttc_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_run: Option<String>,
}

impl BenchResult {
    pub fn new(sink_ops: u64, checker_records: u64, quick: bool, harness_only: bool) -> Self {
        Self {
            schema_version: BENCH_SCHEMA_VERSION,
            tool: Tool::default(),
            started_at: chrono::Utc::now().to_rfc3339(),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            sink_ops,
            checker_records,
            quick,
            harness_only,
            harness: HarnessFigures::default(),
            latency_rule: None,
            stores: BTreeMap::new(),
            claims: Vec::new(),
            summary: Vec::new(),
        }
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the baseline {}", path.display()))?;
        let result: Self = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a bench result (write one with `dualwrite bench --json {}`)",
                path.display(),
                path.display()
            )
        })?;
        anyhow::ensure!(
            result.schema_version == BENCH_SCHEMA_VERSION,
            "{} has bench schema {}, this build reads {}",
            path.display(),
            result.schema_version,
            BENCH_SCHEMA_VERSION
        );
        Ok(result)
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        json.push(b'\n');
        crate::result::write_atomic(path, &json)
    }
}
