//! What each replica held (the Cassandra cluster), docs/CLUSTER.md.

use super::*;

/// What each replica of a store on several nodes held (the Cassandra cluster),
/// beside the checker's final scan that reads them all (docs/RESULTS.md "replicas").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplicaReport {
    /// How the final scan read (`ALL`: every replica, merged): the counts of `checker`.
    pub final_read: String,
    /// When the load ended, before the fault windows still in force were removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_end: Option<ReplicaSnapshot>,
    /// After the settle period, just before the final scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<ReplicaSnapshot>,
    /// Seconds since the load started when the replicas were first seen holding
    /// the same records (polled after the load); absent when they never were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreed_s: Option<f64>,
    /// Milliseconds from the end of the last fault window (without faults: the
    /// load's end) until `agreed_s`; its precision is one poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreed_after_ms: Option<u64>,
    /// Rounds of per-replica scans after the load, until agreement or the end of
    /// the settle period.
    pub polls: u32,
}

/// Every replica's view at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplicaSnapshot {
    /// Seconds since the load started.
    pub t_s: f64,
    /// Labels of the fault windows in force then.
    #[serde(default)]
    pub faults_in_force: Vec<String>,
    /// Every replica answered, and all held the same records on both sides.
    pub agree: bool,
    pub replicas: Vec<ReplicaView>,
}

/// What one replica held on its own: a read at ONE coordinated by that node.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplicaView {
    pub node: String,
    /// Why it could not be read (a killed or paused node): its counts are zeros
    /// that were not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub scanned_primary: u64,
    pub scanned_secondary: u64,
    /// Orders another replica holds on that side and this one lacks.
    pub missing_primary: u64,
    pub missing_secondary: u64,
    /// Orders this replica holds in another form than some other replica does
    /// (other fields, another number of copies).
    pub differing: u64,
    /// The checker's counts over this replica alone: what a reader of it sees.
    pub orphans: u64,
    pub ghosts: u64,
    pub duplicates: u64,
    pub mismatches: u64,
    pub lost_acks: u64,
    pub divergence: u64,
    /// Up to 10 order keys per kind (`missing_primary`, `orphans`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub samples: BTreeMap<String, Vec<String>>,
    /// The traced read that proves the scan read this node alone (at check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<ReplicaTrace>,
}

/// A traced read on one replica: who coordinated it, where its steps ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplicaTrace {
    /// The node's address.
    pub address: String,
    pub coordinator: Option<String>,
    pub events: u64,
    /// Distinct addresses the trace's events ran on.
    pub sources: Vec<String>,
    /// The node coordinated and every step ran on it: the scan read it alone.
    pub proven: bool,
}
