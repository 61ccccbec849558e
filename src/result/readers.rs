//! What readers saw (`[readers]`), docs/READERS.md.

use super::*;

/// What readers saw while the run went on (`crate::reader`): reads of both sides
/// of the orders they followed, at each delay after the write's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReadersResult {
    pub plan: ReadersPlan,
    pub followed: Followed,
    pub reads: ReadOps,
    /// From each read's planned start (its write's answer + its delay) to its end.
    pub latency_ms: Latency,
    /// Reads of acknowledged orders, one entry per delay.
    pub by_delay: Vec<DelayReads>,
    /// Reads of orders whose write failed or is unknown, one entry per delay.
    pub unacknowledged_by_delay: Vec<DelayReads>,
    /// Reader-side time to consistency: from an acknowledged order's intended
    /// start to the end of the first read that saw both sides.
    pub time_to_consistency_ms: Latency,
    /// Followed acknowledged orders no read ever saw on both sides.
    pub never_consistent: u64,
    /// Up to 10 of them (order keys).
    pub never_consistent_samples: Vec<String>,
    /// By name (`read_your_write`, `visible_ghost`, `non_monotonic`,
    /// `failed_write_visible`), each always present.
    pub anomalies: BTreeMap<String, Anomaly>,
    /// Reads of acknowledged orders per second of their start (for charts).
    pub timeline: Vec<ReadSecond>,
    /// Failed or unknown side reads by `<side> <error class>`.
    pub errors: BTreeMap<String, u64>,
}

impl ReadersResult {
    /// Reads that saw one side of an order without the other, over every delay,
    /// acknowledged or not.
    pub fn partial_reads(&self) -> u64 {
        self.by_delay
            .iter()
            .chain(&self.unacknowledged_by_delay)
            .map(|d| d.primary_only + d.secondary_only)
            .sum()
    }

    /// Anomalous reads of every kind.
    pub fn anomalous_reads(&self) -> u64 {
        self.anomalies.values().map(|a| a.reads).sum()
    }

    /// The partial-read fraction of acknowledged orders at one delay.
    pub fn partial_fraction_at(&self, delay_ms: u64) -> Option<f64> {
        self.by_delay
            .iter()
            .find(|d| d.delay_ms == delay_ms)
            .and_then(|d| d.partial_fraction)
    }
}

/// The readers as configured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReadersPlan {
    /// Reads per second allowed; absent = every order followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    pub concurrency: usize,
    pub delays_ms: Vec<u64>,
    pub unacknowledged: f64,
    /// Read options per side (absent fields: the store's default).
    pub primary: ReadConsistency,
    pub secondary: ReadConsistency,
}

/// Which orders the readers followed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Followed {
    /// Acknowledged orders read at every delay.
    pub acknowledged: u64,
    /// Orders whose write failed or is unknown read at every delay.
    pub unacknowledged: u64,
    /// Orders not followed because the read rate was spent.
    pub over_budget: u64,
    /// Unacknowledged orders left out of the `unacknowledged` sample.
    pub not_sampled: u64,
}

/// Reads by outcome: `ok` both sides answered, `fail` a side certainly did not
/// serve the read (and none is unknown), `unknown` a side's answer was lost.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReadOps {
    pub total: u64,
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
    /// Reads that started more than 10 ms after their planned time (the
    /// concurrency cap reached).
    pub late: u64,
    pub max_late_ms: f64,
}

/// What the reads at one delay saw. Fractions are of the answered reads
/// (`null` when none answered).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct DelayReads {
    pub delay_ms: u64,
    pub reads: u64,
    /// Both sides answered.
    pub answered: u64,
    pub both: u64,
    pub primary_only: u64,
    pub secondary_only: u64,
    pub neither: u64,
    /// Reads a side did not answer (by the read's outcome).
    pub fail: u64,
    pub unknown: u64,
    pub both_fraction: Option<f64>,
    pub primary_only_fraction: Option<f64>,
    pub secondary_only_fraction: Option<f64>,
    pub neither_fraction: Option<f64>,
    /// primary only + secondary only: a reader saw half an order.
    pub partial_fraction: Option<f64>,
}

/// Reads of one kind of anomaly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Anomaly {
    pub reads: u64,
    /// Distinct orders.
    pub orders: u64,
    /// Up to 10 order keys.
    pub samples: Vec<String>,
}

/// Reads of acknowledged orders that started in one second.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReadSecond {
    pub t: u64,
    pub reads: u64,
    pub answered: u64,
    pub partial: u64,
    /// Reads a side did not answer (fail or unknown).
    pub unanswered: u64,
}
