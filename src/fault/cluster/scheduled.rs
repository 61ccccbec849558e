//! The cluster's faults as a run's schedule uses them: a scenario's node fault
//! (`partition`, `loss`, `delay`, `node-kill`, `node-pause`) becomes a
//! [`NodeFault`], applied at its window's start and healed at its end, the
//! applied handle kept per window in between. A run holds one of these (and with
//! it the cluster's lock) from its set-up to its end, and resets the cluster first.

use std::collections::HashMap;

use anyhow::Context;

use super::{Applied, ClusterNemesis, ClusterState, NodeFault, Partition};
use crate::scenario::{FaultKind, FaultSpec, NodeCut};

/// One run's hold on the cluster.
pub struct ScheduledFaults {
    nemesis: ClusterNemesis,
    /// (fault index, window index) -> the fault in force.
    applied: tokio::sync::Mutex<HashMap<(usize, usize), Applied>>,
}

/// The node fault a scenario's fault kind stands for; `None` for other kinds.
pub fn node_fault(kind: &FaultKind, state: &ClusterState) -> Option<NodeFault> {
    Some(match kind {
        FaultKind::Partition {
            cut: NodeCut::Halves { nodes },
        } => NodeFault::Partition(Partition::halves(nodes, state)),
        FaultKind::Partition {
            cut: NodeCut::OneWay { from, to },
        } => NodeFault::Partition(Partition::OneWay {
            from: *from,
            to: *to,
        }),
        FaultKind::Loss { nodes, percent } => NodeFault::Loss {
            nodes: nodes.clone(),
            percent: *percent,
        },
        FaultKind::Delay { nodes, delay_ms } => NodeFault::Delay {
            nodes: nodes.clone(),
            delay_ms: *delay_ms,
        },
        FaultKind::NodeKill { node } => NodeFault::Kill(*node),
        FaultKind::NodePause { node } => NodeFault::Pause(*node),
        _ => return None,
    })
}

impl ScheduledFaults {
    /// Takes the cluster (its lock), checks every node fault of the schedule
    /// against it, and heals whatever an earlier process left: returns one line
    /// per thing healed.
    pub async fn take(
        nemesis: ClusterNemesis,
        specs: &[FaultSpec],
    ) -> anyhow::Result<(Self, Vec<String>)> {
        for spec in specs {
            if let Some(fault) = node_fault(&spec.kind, nemesis.state()) {
                fault
                    .validate(nemesis.state())
                    .with_context(|| format!("faults[{}] ({})", spec.index, spec.short()))?;
            }
        }
        let healed = nemesis
            .reset()
            .await
            .context("resetting the Cassandra cluster")?;
        Ok((
            Self {
                nemesis,
                applied: Default::default(),
            },
            healed,
        ))
    }

    pub fn state(&self) -> &ClusterState {
        self.nemesis.state()
    }

    /// Applies (returns once in force) or heals the node fault of one window. A
    /// window whose apply failed has nothing to heal (apply takes back what it
    /// half did).
    pub async fn act(
        &self,
        kind: &FaultKind,
        window: (usize, usize),
        apply: bool,
    ) -> anyhow::Result<()> {
        let fault = node_fault(kind, self.state())
            .with_context(|| format!("`{}` is not a fault between nodes", kind.name()))?;
        if apply {
            let applied = self.nemesis.apply(&fault).await?;
            self.applied.lock().await.insert(window, applied);
            return Ok(());
        }
        let Some(applied) = self.applied.lock().await.remove(&window) else {
            return Ok(());
        };
        self.nemesis.heal(applied).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::tests::sample;
    use super::*;
    use crate::scenario::NodeId;

    fn n(i: u8) -> NodeId {
        NodeId::new(i).unwrap()
    }

    #[test]
    fn scenario_kinds_become_node_faults() {
        let s = sample();
        let isolate = FaultKind::Partition {
            cut: NodeCut::Halves { nodes: vec![n(3)] },
        };
        assert_eq!(
            node_fault(&isolate, &s),
            Some(NodeFault::Partition(Partition::Groups(vec![
                vec![n(3)],
                vec![n(1), n(2)]
            ])))
        );
        let one_way = FaultKind::Partition {
            cut: NodeCut::OneWay {
                from: n(3),
                to: n(1),
            },
        };
        assert_eq!(
            node_fault(&one_way, &s),
            Some(NodeFault::Partition(Partition::OneWay {
                from: n(3),
                to: n(1)
            }))
        );
        assert_eq!(
            node_fault(&FaultKind::NodeKill { node: n(2) }, &s),
            Some(NodeFault::Kill(n(2)))
        );
        assert_eq!(node_fault(&FaultKind::Down, &s), None);
    }
}
