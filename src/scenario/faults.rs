//! The validated fault schedule: what each `[[faults]]` entry injects, where
//! and when.

use serde::Serialize;
use std::time::Duration;

use super::{NodeId, Side, duration_ms, fmt_duration, opt_duration_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Upstream,
    Downstream,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        }
    }
}

/// Whether an SDK-injected error is raised before the request is sent or after the
/// server applied it (an ambiguous write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InjectWhen {
    Before,
    After,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    Latency {
        latency_ms: u64,
        jitter_ms: u64,
    },
    Bandwidth {
        rate_kbps: u64,
    },
    SlowClose {
        delay_ms: u64,
    },
    Timeout {
        timeout_ms: u64,
    },
    ResetPeer {
        timeout_ms: u64,
    },
    Slicer {
        average_size: u64,
        size_variation: u64,
        delay_us: u64,
    },
    LimitData {
        bytes: u64,
    },
    /// The proxy is disabled: connections refused, open ones closed.
    Down,
    /// The relay task is killed and restarted after `duration`.
    RelayCrash,
    /// Errors injected in the DynamoDB SDK for one side.
    SdkError {
        error: String,
        rate: f64,
        when: InjectWhen,
    },
    /// MongoDB `configureFailPoint failCommand`.
    FailCommand {
        commands: Vec<String>,
        error_code: i32,
        error_labels: Vec<String>,
        close_connection: bool,
        times: Option<u32>,
    },
    /// SIGKILL of a locally managed server, restarted after `duration`.
    ProcessKill {
        server: String,
    },
    /// SIGSTOP of a locally managed server, SIGCONT after `duration`.
    ProcessPause {
        server: String,
    },
    /// SIGKILL of a process dualwrite started for `[app]` (`service` or
    /// `relay`), started again after `duration`.
    #[serde(rename = "process-kill")]
    AppKill {
        process: String,
    },
    /// SIGSTOP of such a process, SIGCONT after `duration`.
    #[serde(rename = "process-pause")]
    AppPause {
        process: String,
    },
    /// Cassandra cluster: nodes that cannot talk to each other (clients still
    /// reach every node).
    Partition {
        #[serde(flatten)]
        cut: NodeCut,
    },
    /// Cassandra cluster: `percent` % of the packets between each listed node and
    /// every other node dropped.
    Loss {
        nodes: Vec<NodeId>,
        percent: u8,
    },
    /// Cassandra cluster: each packet between each listed node and every other
    /// node held for `delay_ms`.
    Delay {
        nodes: Vec<NodeId>,
        delay_ms: u32,
    },
    /// Cassandra cluster: SIGKILL of one node's JVM, restarted after `duration`.
    NodeKill {
        node: NodeId,
    },
    /// Cassandra cluster: SIGSTOP of one node's JVM, SIGCONT after `duration`.
    NodePause {
        node: NodeId,
    },
}

/// Which nodes a `partition` separates.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum NodeCut {
    /// `nodes` on one side, every other node on the other (one node: isolated).
    Halves { nodes: Vec<NodeId> },
    /// Messages from `from` never reach `to`; the other way works.
    OneWay { from: NodeId, to: NodeId },
}

fn node_list(nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(NodeId::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl FaultKind {
    pub const NAMES: [&'static str; 18] = [
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
        "down",
        "relay-crash",
        "sdk-error",
        "fail-command",
        "process-kill",
        "process-pause",
        "partition",
        "loss",
        "delay",
        "node-kill",
        "node-pause",
    ];

    /// The kinds that act between the nodes of the Cassandra cluster.
    pub const NODE_NAMES: [&'static str; 5] =
        ["partition", "loss", "delay", "node-kill", "node-pause"];

    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Latency { .. } => "latency",
            FaultKind::Bandwidth { .. } => "bandwidth",
            FaultKind::SlowClose { .. } => "slow_close",
            FaultKind::Timeout { .. } => "timeout",
            FaultKind::ResetPeer { .. } => "reset_peer",
            FaultKind::Slicer { .. } => "slicer",
            FaultKind::LimitData { .. } => "limit_data",
            FaultKind::Down => "down",
            FaultKind::RelayCrash => "relay-crash",
            FaultKind::SdkError { .. } => "sdk-error",
            FaultKind::FailCommand { .. } => "fail-command",
            FaultKind::ProcessKill { .. } | FaultKind::AppKill { .. } => "process-kill",
            FaultKind::ProcessPause { .. } | FaultKind::AppPause { .. } => "process-pause",
            FaultKind::Partition { .. } => "partition",
            FaultKind::Loss { .. } => "loss",
            FaultKind::Delay { .. } => "delay",
            FaultKind::NodeKill { .. } => "node-kill",
            FaultKind::NodePause { .. } => "node-pause",
        }
    }

    /// Faults between the nodes of the Cassandra cluster (they have no side).
    pub fn is_node(&self) -> bool {
        matches!(
            self,
            FaultKind::Partition { .. }
                | FaultKind::Loss { .. }
                | FaultKind::Delay { .. }
                | FaultKind::NodeKill { .. }
                | FaultKind::NodePause { .. }
        )
    }

    /// The nodes a node fault acts on, as labels show them: `c3`, `c1,c2`
    /// (a partition: those nodes against the others), `c3->c1` (one-way).
    pub fn nodes(&self) -> Option<String> {
        match self {
            FaultKind::Partition {
                cut: NodeCut::Halves { nodes },
            } => Some(node_list(nodes)),
            FaultKind::Partition {
                cut: NodeCut::OneWay { from, to },
            } => Some(format!("{from}->{to}")),
            FaultKind::Loss { nodes, .. } | FaultKind::Delay { nodes, .. } => {
                Some(node_list(nodes))
            }
            FaultKind::NodeKill { node } | FaultKind::NodePause { node } => Some(node.to_string()),
            _ => None,
        }
    }

    /// The `[app]` process a process fault acts on (`service`, `relay`).
    pub fn app_process(&self) -> Option<&str> {
        match self {
            FaultKind::AppKill { process } | FaultKind::AppPause { process } => Some(process),
            _ => None,
        }
    }

    /// What a process fault acts on: a stack server or an `[app]` process.
    pub fn process_target(&self) -> Option<&str> {
        self.server().or(self.app_process())
    }

    /// The server a process fault acts on (it has no side).
    pub fn server(&self) -> Option<&str> {
        match self {
            FaultKind::ProcessKill { server } | FaultKind::ProcessPause { server } => Some(server),
            _ => None,
        }
    }

    /// Toxiproxy toxics (and `down`) act on a proxy; the others have their own source.
    pub fn is_network(&self) -> bool {
        !matches!(
            self,
            FaultKind::RelayCrash
                | FaultKind::SdkError { .. }
                | FaultKind::FailCommand { .. }
                | FaultKind::ProcessKill { .. }
                | FaultKind::ProcessPause { .. }
                | FaultKind::AppKill { .. }
                | FaultKind::AppPause { .. }
        ) && !self.is_node()
    }
}

/// One entry of the fault schedule (possibly repeating).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultSpec {
    /// Position in the file's `[[faults]]` list.
    pub index: usize,
    #[serde(flatten)]
    pub kind: FaultKind,
    pub side: Side,
    pub direction: Direction,
    pub toxicity: f32,
    #[serde(with = "duration_ms")]
    pub start: Duration,
    #[serde(with = "duration_ms")]
    pub duration: Duration,
    #[serde(with = "opt_duration_ms")]
    pub every: Option<Duration>,
}

impl FaultSpec {
    /// The planned windows `[start, end)` within a load of `run` length.
    pub fn windows(&self, run: Duration) -> Vec<(Duration, Duration)> {
        let mut windows = Vec::new();
        let mut start = self.start;
        while start < run {
            windows.push((start, start + self.duration));
            match self.every {
                Some(every) if !every.is_zero() => start += every,
                _ => break,
            }
        }
        windows
    }

    /// Short form for tables: `timeout@secondary/upstream 5s+3s`. The direction is
    /// spelled out: `latency@primary/down` read like a `down` fault.
    pub fn short(&self) -> String {
        let dir = if self.kind.is_network() {
            match self.direction {
                Direction::Upstream => "/upstream",
                Direction::Downstream => "/downstream",
            }
        } else {
            ""
        };
        let every = self
            .every
            .map(|e| format!(" every {}", fmt_duration(e)))
            .unwrap_or_default();
        let target = self
            .kind
            .nodes()
            .or_else(|| self.kind.process_target().map(str::to_string))
            .unwrap_or_else(|| self.side.to_string());
        format!(
            "{}@{}{} {}+{}{}",
            self.kind.name(),
            target,
            dir,
            fmt_duration(self.start),
            fmt_duration(self.duration),
            every
        )
    }
}
