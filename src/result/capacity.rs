//! Capacity and cost per order, docs/RESULTS.md.

use super::*;

/// Capacity and cost per logical operation (docs/RESULTS.md, "capacity"): what
/// each store's own accounting says the run used, divided by its orders.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CapacityResult {
    /// What the per-order figures divide by: every operation the driver issued,
    /// whatever its outcome (failed and indeterminate operations cost too).
    pub orders: u64,
    pub figures: Vec<CapacityFigure>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl CapacityResult {
    /// The figure `name` of `store`, if the run has it.
    pub fn figure(&self, store: &str, name: &str) -> Option<&CapacityFigure> {
        self.figures
            .iter()
            .find(|f| f.store == store && f.name == name)
    }
}

/// Where a capacity figure comes from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CapacitySource {
    /// The server's own answer for every counted call (`ConsumedCapacity`).
    Reported,
    /// The store's published sizing rules, for every counted call.
    Modelled,
    /// Reported where the server answered with it, modelled for the rest.
    Mixed,
    /// Calls the client counted itself (e.g. stream read requests).
    Counted,
    /// A server counter read before and after the load (`serverStatus`, metrics).
    ServerCounter,
    /// The server does not expose it: `missing` says which server; never a zero.
    NotReported,
}

impl CapacitySource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reported => "reported",
            Self::Modelled => "modelled",
            Self::Mixed => "mixed",
            Self::Counted => "counted",
            Self::ServerCounter => "server counter",
            Self::NotReported => "not reported",
        }
    }
}

/// One figure of one store: `write_units` (WCU), `read_units` (RCU),
/// `stream_read_requests`, `mutations`, `batchlog_writes`, `paxos_writes`,
/// `documents_written`, `write_operations`, `transactions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CapacityFigure {
    pub store: String,
    pub name: String,
    pub unit: String,
    /// Over the whole run (load and the relay's drain); null when not reported.
    pub total: Option<f64>,
    pub per_order: Option<f64>,
    pub source: CapacitySource,
    /// The counter is the whole server's: other clients' work in the same window
    /// (other runs on a shared server) is included.
    #[serde(default)]
    pub server_wide: bool,
    /// Why there is no figure (`not reported by ferretdb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    /// Calls counted, retries included; of them, answered with the server's figure;
    /// and with no answer at all (modelled: they may not have reached the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_attempts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unanswered: Option<u64>,
    /// The model's total for every call, beside a reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modelled_total: Option<f64>,
    /// What the server reported for the calls it reported on, beside a modelled
    /// figure (a server whose reports are not the real accounting: moto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_total: Option<f64>,
    /// The total by operation and side (`PutItem@primary`) or by counter.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, f64>,
}
